-- Security: what a role that only enqueues may do.
--
-- pq_enqueue is SECURITY DEFINER: it runs with its owner's rights, so a role needs only
-- EXECUTE on it to enqueue, and no rights on the tables. Grant it explicitly:
--     GRANT EXECUTE ON FUNCTION pq_enqueue(text, text, jsonb, jsonb, integer, integer, text,
--                                          timestamptz, bytea) TO my_app_role;
-- (and likewise pq_enqueue_many). Enqueueing names a function for the workers to run, so
-- neither is granted to PUBLIC.
-- A SECURITY DEFINER function must not find objects through the caller's search_path (a
-- caller could shadow pq_job with a temporary table), so it is pinned to this schema.
REVOKE ALL ON FUNCTION pq_enqueue(text, text, jsonb, jsonb, integer, integer, text, timestamptz, bytea) FROM PUBLIC;
REVOKE ALL ON FUNCTION pq_enqueue_many(text, text[], jsonb[], jsonb[], integer, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION pq_enqueue_job(text, text, jsonb, jsonb, integer, integer, text, timestamptz, bytea) FROM PUBLIC;

DO $$
DECLARE
    v_fn regprocedure;
BEGIN
    FOR v_fn IN
        SELECT p.oid::regprocedure FROM pg_proc p
         WHERE p.pronamespace = current_schema()::regnamespace AND p.prosecdef
           AND p.proname LIKE 'pq\_%'
    LOOP
        EXECUTE format('ALTER FUNCTION %s SET search_path = %I, pg_temp', v_fn, current_schema());
    END LOOP;
END;
$$;
