-- Remove django-pq from the current schema (all jobs are lost): psql -f sql/uninstall.sql
DROP TABLE IF EXISTS pq_job, pq_flow, pq_worker, pq_queue CASCADE;
DO $$
DECLARE
    v_fn regprocedure;
BEGIN
    FOR v_fn IN
        SELECT p.oid::regprocedure FROM pg_proc p
         WHERE p.pronamespace = current_schema()::regnamespace
           AND (p.proname LIKE 'pq\_%' OR p.proname LIKE '\_pq\_%')
    LOOP
        EXECUTE format('DROP FUNCTION %s', v_fn);
    END LOOP;
END;
$$;
