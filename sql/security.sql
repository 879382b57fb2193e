-- Security: what each kind of client needs.
--
-- pq_enqueue, _pq_enqueue_job, pq_enqueue_many, the scheduling functions (pq_schedule,
-- _pq_schedule_job, pq_schedule_cron, pq_unschedule) and the flow builders (pq_flow_create,
-- pq_flow_enqueue, _pq_flow_enqueue_job, pq_flow_start) are SECURITY DEFINER: they run with
-- their owner's rights, so a role needs only EXECUTE on them to enqueue, and no rights on
-- the tables. Enqueueing names a function for the workers to run, so none is granted to
-- PUBLIC. Grant per kind of client (the tests in tests/sql/test_security.py run these):
--   An SQL-only enqueuer (psql, another language):
--     GRANT EXECUTE ON FUNCTION pq_enqueue(text, text, jsonb, jsonb, integer, integer, text,
--                                          timestamptz, bytea, integer, integer, integer[]),
--                               pq_enqueue_many(text, text[], jsonb[], jsonb[], integer, integer,
--                                               integer, integer, integer[])
--         TO my_enqueuer;
--   A Django web process (Queue.enqueue calls _pq_enqueue_job, Job.fetch reads pq_job):
--     GRANT EXECUTE ON FUNCTION _pq_enqueue_job(text, text, jsonb, jsonb, integer, integer, text,
--                                              timestamptz, bytea, integer, integer, integer[])
--         TO my_web;
--     GRANT SELECT ON pq_job TO my_web;
--   A worker (claims, finishes, registers, reaps and expires: its functions are not
--   SECURITY DEFINER, so it needs the tables; jobs it runs may enqueue):
--     GRANT SELECT, INSERT, UPDATE, DELETE ON pq_job, pq_queue, pq_worker, pq_flow TO my_worker;
--     GRANT EXECUTE ON FUNCTION _pq_enqueue_job(text, text, jsonb, jsonb, integer, integer, text,
--                                              timestamptz, bytea, integer, integer, integer[])
--         TO my_worker;
--   A scheduler (SQL or Django; pq_schedule and pq_schedule_cron are SECURITY DEFINER too):
--     GRANT EXECUTE ON FUNCTION pq_schedule(text, text, jsonb, jsonb, timestamptz, integer,
--                                           timestamptz, interval, time, time, integer[], text,
--                                           integer, integer, text, bytea, text, integer,
--                                           integer, integer[]),
--                               _pq_schedule_job(same arguments),  -- for Django's Queue.schedule
--                               pq_schedule_cron(text, text, text, jsonb, jsonb, text, text,
--                                                integer, integer, text, integer, integer,
--                                                integer[]),
--                               pq_unschedule(text)
--         TO my_scheduler;
--   A flow builder (SQL or Django's Flow; pq_flow_create, pq_flow_enqueue and pq_flow_start
--   are SECURITY DEFINER too):
--     GRANT EXECUTE ON FUNCTION pq_flow_create(text, text),
--                               pq_flow_enqueue(bigint, text, jsonb, jsonb, integer, integer,
--                                               text, timestamptz, bytea, integer, integer,
--                                               integer[]),
--                               _pq_flow_enqueue_job(same arguments),  -- for Django's Flow
--                               pq_flow_start(bigint)
--         TO my_flow_builder;
--   An admin reader (monitoring, Django admin lists):
--     GRANT SELECT ON pq_job, pq_queue, pq_worker, pq_flow, pq_schedules TO my_reader;
-- A SECURITY DEFINER function must not find objects through the caller's search_path (a
-- caller could shadow pq_job with a temporary table), so it is pinned to this schema.
REVOKE ALL ON FUNCTION pq_enqueue(text, text, jsonb, jsonb, integer, integer, text, timestamptz, bytea,
                                  integer, integer, integer[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION pq_enqueue_many(text, text[], jsonb[], jsonb[], integer, integer, integer, integer,
                                       integer[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION _pq_enqueue_job(text, text, jsonb, jsonb, integer, integer, text, timestamptz, bytea,
                                       integer, integer, integer[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION pq_schedule(text, text, jsonb, jsonb, timestamptz, integer, timestamptz, interval,
                                   time, time, integer[], text, integer, integer, text, bytea, text,
                                   integer, integer, integer[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION _pq_schedule_job(text, text, jsonb, jsonb, timestamptz, integer, timestamptz, interval,
                                        time, time, integer[], text, integer, integer, text, bytea, text,
                                        integer, integer, integer[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION pq_schedule_cron(text, text, text, jsonb, jsonb, text, text, integer, integer, text,
                                        integer, integer, integer[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION pq_unschedule(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION pq_flow_create(text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION pq_flow_enqueue(bigint, text, jsonb, jsonb, integer, integer, text, timestamptz, bytea,
                                       integer, integer, integer[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION _pq_flow_enqueue_job(bigint, text, jsonb, jsonb, integer, integer, text, timestamptz,
                                            bytea, integer, integer, integer[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION pq_flow_start(bigint) FROM PUBLIC;

DO $$
DECLARE
    v_fn regprocedure;
BEGIN
    FOR v_fn IN
        SELECT p.oid::regprocedure FROM pg_proc p
         WHERE p.pronamespace = current_schema()::regnamespace AND p.prosecdef
           AND (p.proname LIKE 'pq\_%' OR p.proname LIKE '\_pq\_%')
    LOOP
        EXECUTE format('ALTER FUNCTION %s SET search_path = %I, pg_temp', v_fn, current_schema());
    END LOOP;
END;
$$;
