-- Reverse of django-pq SQL migration 0005: no scheduling functions, columns or view.

DROP VIEW pq_schedules;
DROP TRIGGER pq_job_100_repeat_once ON pq_job;
DROP TRIGGER pq_job_100_repeat ON pq_job;
DROP FUNCTION _pq_repeat_once();
DROP FUNCTION _pq_repeat_job();
DROP FUNCTION pq_unschedule(text);
DROP FUNCTION pq_schedule_cron(text, text, text, jsonb, jsonb, text, text, integer, integer, text);
DROP FUNCTION pq_schedule(text, text, jsonb, jsonb, timestamptz, integer, timestamptz, interval, time, time, integer[], text, integer, integer, text, bytea, text);
DROP FUNCTION _pq_schedule_job(text, text, jsonb, jsonb, timestamptz, integer, timestamptz, interval, time, time, integer[], text, integer, integer, text, bytea, text);
DROP FUNCTION _pq_put_schedule(pq_job);
DROP FUNCTION _pq_check_schedule_name(text, text);
DROP FUNCTION _pq_check_schedule(text, timestamptz, integer, timestamptz, interval, time, time, integer[], text);
DROP FUNCTION _pq_next_run(timestamptz, timestamptz, interval, time, time, smallint[], text);
DROP FUNCTION _pq_allowed_run(timestamptz, timestamptz, interval, time, time, smallint[], text);
DROP FUNCTION _pq_grid_index(timestamptz, boolean, timestamptz, interval, text);
DROP FUNCTION _pq_schedule_adjust(timestamptz, time, time, smallint[], text);
DROP FUNCTION _pq_schedule_allowed(timestamptz, time, time, smallint[], text);
DROP FUNCTION _pq_window_day(timestamptz, time, time, text);
DROP FUNCTION _pq_schedule_step(timestamptz, interval, text, bigint);
DROP FUNCTION _pq_interval_parts(interval);
DROP FUNCTION pq_cron_next(text, timestamptz, text);
DROP FUNCTION _pq_cron_next_local(varbit[], timestamp);
DROP FUNCTION _pq_check_cron(text, text);
DROP FUNCTION _pq_cron_parse(text, text);
DROP FUNCTION _pq_zoned(timestamp, text);
DROP FUNCTION _pq_check_time_zone(text, text);
CREATE OR REPLACE FUNCTION _pq_notify_jobs()
RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('pq_jobs', n.queue)
       FROM (SELECT DISTINCT j.queue FROM pq_new_jobs j WHERE j.status = 'queued') AS n;
    RETURN NULL;
END;
$$;

COMMENT ON FUNCTION _pq_notify_jobs() IS 'Trigger: NOTIFY pq_jobs once per queue an insert added ready jobs to.';

CREATE OR REPLACE FUNCTION pq_version()
RETURNS integer
LANGUAGE sql IMMUTABLE AS $$
    SELECT 4;
$$;

DROP INDEX pq_job_schedule_next;
DROP INDEX pq_job_schedule_tick;
ALTER TABLE pq_job
    DROP COLUMN time_zone,
    DROP COLUMN repeat_from,
    DROP COLUMN cron,
    DROP COLUMN schedule_name;

REVOKE ALL ON FUNCTION pq_enqueue(text, text, jsonb, jsonb, integer, integer, text, timestamptz, bytea) FROM PUBLIC;
REVOKE ALL ON FUNCTION pq_enqueue_many(text, text[], jsonb[], jsonb[], integer, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION _pq_enqueue_job(text, text, jsonb, jsonb, integer, integer, text, timestamptz, bytea) FROM PUBLIC;

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
