-- Ending jobs: finishing, failing, requeueing and expiring results.

-- pq_finish(job_id, worker_name, result, default_result_ttl): record a job's success.
-- The result is kept for the job's result_ttl seconds, else default_result_ttl (the
-- worker's PQ_DEFAULT_RESULT_TTL): 0 deletes the job at once, -1 keeps it forever.
-- Returns false, changing nothing, when the job is no longer 'started' by this worker
-- (it was finished already, or failed as abandoned): finishing is idempotent, so a worker
-- that lost its connection mid-call can safely call it again.
-- Locks: the job row. Notifies: nothing.
CREATE FUNCTION pq_finish(job_id bigint, worker_name text, result jsonb DEFAULT NULL,
                          default_result_ttl integer DEFAULT 500)
RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM pq_job j
     WHERE j.id = job_id AND j.status = 'started' AND j.worker = worker_name
       AND coalesce(j.result_ttl, default_result_ttl) = 0;
    IF FOUND THEN
        RETURN true;
    END IF;
    UPDATE pq_job j
       SET status = 'finished', result = pq_finish.result, ended_at = now(),
           expires_at = CASE WHEN coalesce(j.result_ttl, default_result_ttl) < 0 THEN NULL
                             ELSE now() + make_interval(secs => coalesce(j.result_ttl, default_result_ttl)) END
     WHERE j.id = job_id AND j.status = 'started' AND j.worker = worker_name;
    RETURN FOUND;
END;
$$;
COMMENT ON FUNCTION pq_finish(bigint, text, jsonb, integer) IS
    'Mark a started django-pq job finished with its result; false if it is not started by that worker.';

-- pq_fail(job_id, worker_name, exc_info, move_to_failed): record a job's failure with the
-- traceback text. With move_to_failed the job goes to the 'failed' queue (origin keeps
-- its queue); without, it stays in its queue with status 'failed'. Failed jobs are kept
-- until requeued or deleted. Returns false when the job is not 'started' by this worker.
-- Locks: the job row. Notifies: nothing.
CREATE FUNCTION pq_fail(job_id bigint, worker_name text, exc_info text,
                        move_to_failed boolean DEFAULT true)
RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    IF move_to_failed THEN
        PERFORM pq_ensure_queue('failed');
    END IF;
    UPDATE pq_job j
       SET status = 'failed', exc_info = pq_fail.exc_info, ended_at = now(), expires_at = NULL,
           queue = CASE WHEN move_to_failed THEN 'failed' ELSE j.queue END
     WHERE j.id = job_id AND j.status = 'started' AND j.worker = worker_name;
    RETURN FOUND;
END;
$$;
COMMENT ON FUNCTION pq_fail(bigint, text, text, boolean) IS
    'Mark a started django-pq job failed with its traceback and move it to the failed queue.';

-- pq_requeue(job_id): put a failed job back on its origin queue as a new 'queued' job
-- (same id, traceback and result cleared). Raises PQ003 if there is no such job and PQ004
-- if it has not failed. Locks: the job row. Notifies: pq_jobs (trigger on pq_job).
CREATE FUNCTION pq_requeue(job_id bigint)
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_status text;
    v_origin text;
BEGIN
    SELECT j.status, j.origin INTO v_status, v_origin FROM pq_job j WHERE j.id = job_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'pq_requeue: no job with id %', job_id
            USING ERRCODE = 'PQ003', HINT = 'The job may have been deleted or its result expired.';
    END IF;
    IF v_status <> 'failed' THEN
        RAISE EXCEPTION 'pq_requeue: job % is %, only failed jobs can be requeued', job_id, v_status
            USING ERRCODE = 'PQ004';
    END IF;
    PERFORM pq_ensure_queue(v_origin);
    UPDATE pq_job j
       SET status = 'queued', queue = j.origin, exc_info = NULL, result = NULL, worker = NULL,
           started_at = NULL, ended_at = NULL, expires_at = NULL, enqueued_at = now()
     WHERE j.id = job_id;
END;
$$;
COMMENT ON FUNCTION pq_requeue(bigint) IS 'Put a failed django-pq job back on its origin queue.';

-- pq_expire_jobs(): delete jobs whose result TTL has run out, at most 10,000 a call, and
-- return how many. Locks: the deleted rows (SKIP LOCKED, so it never waits). Notifies: nothing.
CREATE FUNCTION pq_expire_jobs()
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_count integer;
BEGIN
    DELETE FROM pq_job j WHERE j.id IN (
        SELECT e.id FROM pq_job e WHERE e.expires_at < now()
         LIMIT 10000 FOR UPDATE SKIP LOCKED);
    GET DIAGNOSTICS v_count = ROW_COUNT;
    DELETE FROM pq_flow f WHERE f.expires_at < now();
    RETURN v_count;
END;
$$;
COMMENT ON FUNCTION pq_expire_jobs() IS 'Delete django-pq jobs whose result TTL has expired; returns the count.';
