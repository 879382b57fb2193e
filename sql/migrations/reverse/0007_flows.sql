-- Reverse of django-pq SQL migration 0007: no flow functions, trigger, index or checks.

DROP TRIGGER pq_job_200_flow ON pq_job;
DROP FUNCTION _pq_flow_job_moved();
DROP FUNCTION pq_flow_start(bigint);
DROP FUNCTION _pq_flow_release(bigint);
DROP FUNCTION pq_flow_enqueue(bigint, text, jsonb, jsonb, integer, integer, text, timestamptz, bytea);
DROP FUNCTION _pq_flow_enqueue_job(bigint, text, jsonb, jsonb, integer, integer, text, timestamptz, bytea);
DROP FUNCTION pq_flow_create(text, text);
DROP FUNCTION _pq_flow_for_update(text, bigint);
DROP FUNCTION _pq_check_flow_name(text, text);
CREATE OR REPLACE FUNCTION pq_finish_many(job_ids bigint[], worker_name text, results jsonb[],
                               default_result_ttl integer DEFAULT 500)
RETURNS integer
LANGUAGE plpgsql
SET enable_seqscan = off  -- never a scan of the whole table: see pq_dequeue_many
AS $$
DECLARE
    v_deleted bigint[];
    v_updated integer;
    v_lost text;
BEGIN
    IF cardinality(job_ids) IS DISTINCT FROM cardinality(results) THEN
        RAISE EXCEPTION 'pq_finish_many: % job ids but % results', cardinality(job_ids), cardinality(results)
            USING ERRCODE = 'PQ001', HINT = 'Pass one result (NULL for none) per job id.';
    END IF;
    WITH gone AS (
        DELETE FROM pq_job j
         WHERE j.id = ANY (job_ids) AND j.status = 'started' AND j.worker = worker_name
           AND coalesce(j.result_ttl, default_result_ttl) = 0
     RETURNING j.id)
    SELECT coalesce(array_agg(gone.id), '{}') INTO v_deleted FROM gone;
    UPDATE pq_job j
       SET status = 'finished', result = done.result, ended_at = now(),
           expires_at = CASE WHEN coalesce(j.result_ttl, default_result_ttl) < 0 THEN NULL
                             ELSE now() + make_interval(secs => coalesce(j.result_ttl, default_result_ttl)) END
      FROM unnest(job_ids, results) AS done (id, result)
     WHERE j.id = done.id AND j.status = 'started' AND j.worker = worker_name;
    GET DIAGNOSTICS v_updated = ROW_COUNT;
    -- Counts first: the ids are looked at only when some job was not stored.
    IF cardinality(v_deleted) + v_updated < cardinality(job_ids) THEN
        SELECT string_agg(DISTINCT x.id::text, ', ') INTO v_lost
          FROM unnest(job_ids) AS x (id)
         WHERE x.id <> ALL (v_deleted)
           AND NOT EXISTS (SELECT 1 FROM pq_job f
                            WHERE f.id = x.id AND f.status = 'finished' AND f.worker = worker_name);
        IF v_lost IS NOT NULL THEN
            RAISE WARNING 'pq_finish_many: the outcome of job(s) % was not stored: not started by worker % any more',
                    v_lost, worker_name
                USING HINT = 'The worker was probably reaped after its heartbeat expired and the jobs failed as abandoned; see the failed queue.';
        END IF;
    END IF;
    RETURN cardinality(v_deleted) + v_updated;
END;
$$;

CREATE OR REPLACE FUNCTION pq_expire_jobs()
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_count integer;
BEGIN
    DELETE FROM pq_job j WHERE j.id = ANY (ARRAY(  -- run once: see pq_dequeue_many
        SELECT e.id FROM pq_job e WHERE e.expires_at < now()
         LIMIT 10000 FOR UPDATE SKIP LOCKED));
    GET DIAGNOSTICS v_count = ROW_COUNT;
    DELETE FROM pq_flow f WHERE f.expires_at < now();
    RETURN v_count;
END;
$$;

CREATE OR REPLACE FUNCTION pq_version()
RETURNS integer
LANGUAGE sql IMMUTABLE AS $$
    SELECT 5;
$$;

DROP INDEX pq_job_flow;
DROP INDEX pq_job_schedule_runs;
DROP INDEX pq_job_failed_origin;
ALTER TABLE pq_flow
    DROP CONSTRAINT pq_flow_name_check,
    DROP CONSTRAINT pq_flow_status_check,
    ALTER COLUMN status SET DEFAULT 'queued';

REVOKE ALL ON FUNCTION pq_enqueue(text, text, jsonb, jsonb, integer, integer, text, timestamptz, bytea) FROM PUBLIC;
REVOKE ALL ON FUNCTION pq_enqueue_many(text, text[], jsonb[], jsonb[], integer, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION _pq_enqueue_job(text, text, jsonb, jsonb, integer, integer, text, timestamptz, bytea) FROM PUBLIC;
REVOKE ALL ON FUNCTION pq_schedule(text, text, jsonb, jsonb, timestamptz, integer, timestamptz, interval,
                                   time, time, integer[], text, integer, integer, text, bytea, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION _pq_schedule_job(text, text, jsonb, jsonb, timestamptz, integer, timestamptz, interval,
                                        time, time, integer[], text, integer, integer, text, bytea, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION pq_schedule_cron(text, text, text, jsonb, jsonb, text, text, integer, integer, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION pq_unschedule(text) FROM PUBLIC;

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
