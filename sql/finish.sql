-- Ending jobs: finishing, failing, requeueing and expiring results.

-- pq_finish_many(job_ids, worker_name, results, default_result_ttl): record the success of
-- jobs, results[i] being the result of job_ids[i]. A result is kept for the job's
-- result_ttl seconds, else default_result_ttl (the worker's PQ_DEFAULT_RESULT_TTL): 0
-- deletes the job at once (a job of a flow expires at once instead, so that its update
-- chains the flow: sql/flow.sql), -1 keeps it forever. Jobs no longer 'started' by this worker
-- (failed as abandoned after its heartbeat expired, deleted, claimed by another worker)
-- are left as they are and named in a WARNING, so the lost outcome shows in every
-- client's log; a job this worker already finished is not (finishing is idempotent, so a
-- worker that lost its connection mid-call can safely call it again). Returns how many
-- jobs it finished.
-- Locks: the job rows. Notifies: nothing.
CREATE FUNCTION pq_finish_many(job_ids bigint[], worker_name text, results jsonb[],
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
           AND coalesce(j.result_ttl, default_result_ttl) = 0 AND j.flow_id IS NULL
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
COMMENT ON FUNCTION pq_finish_many(bigint[], text, jsonb[], integer) IS
    'Mark started django-pq jobs finished with their results; returns how many were; WARNING naming the jobs not started by that worker any more.';

-- pq_finish(job_id, worker_name, result, default_result_ttl): pq_finish_many for one job;
-- false (and a WARNING) when the job is no longer 'started' by this worker.
CREATE FUNCTION pq_finish(job_id bigint, worker_name text, result jsonb DEFAULT NULL,
                          default_result_ttl integer DEFAULT 500)
RETURNS boolean
LANGUAGE sql AS $$
    SELECT pq_finish_many(ARRAY[job_id], worker_name, ARRAY[result], default_result_ttl) = 1;
$$;
COMMENT ON FUNCTION pq_finish(bigint, text, jsonb, integer) IS
    'Mark a started django-pq job finished with its result; false if it is not started by that worker.';

-- pq_finish_dequeue(job_ids, results, worker_name, default_result_ttl, queue_names, max_jobs):
-- pq_finish_many then pq_dequeue_many in one call, so a worker reports what it did and gets
-- its next jobs in one round trip. Locks, notifies, warns and raises as those two (PQ006
-- for an unregistered worker: nothing is then stored either).
CREATE FUNCTION pq_finish_dequeue(job_ids bigint[], results jsonb[], worker_name text,
                                  default_result_ttl integer, queue_names text[],
                                  max_jobs integer DEFAULT 1)
RETURNS SETOF pq_job
LANGUAGE plpgsql AS $$
BEGIN
    IF cardinality(job_ids) > 0 THEN
        PERFORM pq_finish_many(job_ids, worker_name, results, default_result_ttl);
    END IF;
    RETURN QUERY SELECT * FROM pq_dequeue_many(queue_names, worker_name, max_jobs);
END;
$$;
COMMENT ON FUNCTION pq_finish_dequeue(bigint[], jsonb[], text, integer, text[], integer) IS
    'Finish django-pq jobs and claim the next ones in one call.';

-- pq_release(job_ids, worker_name): put jobs a worker claimed but will not run (it is
-- stopping) back in their queues, as they were (the claim's attempt is not counted).
-- Returns how many.
-- Locks: the job rows. Notifies: pq_jobs (trigger on pq_job).
CREATE FUNCTION pq_release(job_ids bigint[], worker_name text)
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_count integer;
BEGIN
    UPDATE pq_job j
       SET status = CASE WHEN j.scheduled_for IS NOT NULL THEN 'scheduled' ELSE 'queued' END,
           worker = NULL, started_at = NULL, attempts = greatest(j.attempts - 1, 0)
     WHERE j.id = ANY (job_ids) AND j.status = 'started' AND j.worker = worker_name;
    GET DIAGNOSTICS v_count = ROW_COUNT;
    RETURN v_count;
END;
$$;
COMMENT ON FUNCTION pq_release(bigint[], text) IS
    'Put django-pq jobs a stopping worker claimed but did not run back in their queues.';

-- _pq_attempt_error(job, exc_info): the errors entry of a failed attempt of job: its
-- number, the worker, when it started and failed, and the traceback text.
CREATE FUNCTION _pq_attempt_error(job pq_job, exc_info text)
RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_array(jsonb_build_object(
        'attempt', job.attempts, 'worker', job.worker, 'started_at', job.started_at,
        'failed_at', now(), 'exc_info', exc_info));
$$;

-- _pq_fail_job(job, exc_info, move_to_failed, retry): end a failed attempt of job (a
-- started row, locked by the caller). With retry and attempts <= max_retries the job runs
-- again: 'scheduled' retry_intervals[attempts] seconds from now (the last interval
-- repeats), or 'queued' at once when that is 0 or there are none. Otherwise it is
-- 'failed' for good, in the 'failed' queue with move_to_failed, else in its own. Either way
-- exc_info is kept and the attempt's error appended to errors.
-- Notifies: pq_jobs with the job's queue for a retry (a 'queued' one through the trigger).
CREATE FUNCTION _pq_fail_job(job pq_job, exc_info text, move_to_failed boolean, retry boolean)
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_delay integer := coalesce(job.retry_intervals[least(job.attempts, cardinality(job.retry_intervals))], 0);
BEGIN
    IF retry AND job.attempts <= job.max_retries THEN
        UPDATE pq_job j
           SET status = CASE WHEN v_delay > 0 THEN 'scheduled' ELSE 'queued' END,
               scheduled_for = CASE WHEN v_delay > 0 THEN now() + make_interval(secs => v_delay) END,
               exc_info = _pq_fail_job.exc_info, worker = NULL,
               errors = j.errors || _pq_attempt_error(job, _pq_fail_job.exc_info)
         WHERE j.id = job.id;
        IF v_delay > 0 THEN
            PERFORM pg_notify('pq_jobs', job.queue);
        END IF;
        RETURN;
    END IF;
    IF move_to_failed THEN
        PERFORM _pq_ensure_queue('failed');
    END IF;
    UPDATE pq_job j
       SET status = 'failed', exc_info = _pq_fail_job.exc_info, ended_at = now(), expires_at = NULL,
           queue = CASE WHEN move_to_failed THEN 'failed' ELSE j.queue END,
           errors = j.errors || _pq_attempt_error(job, _pq_fail_job.exc_info)
     WHERE j.id = job.id;
END;
$$;

-- pq_fail(job_id, worker_name, exc_info, move_to_failed, retry): record the failure of a
-- job's run with the traceback text. A job with retries left (attempts <= max_retries) is
-- run again after its retry interval, unless retry is false (an exception handler said
-- so); otherwise, with move_to_failed, the job goes to the 'failed' queue (origin keeps
-- its queue), without, it stays in its queue with status 'failed'. Failed jobs are kept
-- until requeued or deleted. Each failed attempt's error is appended to errors. Returns
-- false, with a WARNING naming the job, when the job is not 'started' by this worker (its
-- outcome is then not stored).
-- Locks: the job row. Notifies: pq_jobs for a retry (see _pq_fail_job).
CREATE FUNCTION pq_fail(job_id bigint, worker_name text, exc_info text,
                        move_to_failed boolean DEFAULT true, retry boolean DEFAULT true)
RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    v_job pq_job;
BEGIN
    SELECT * INTO v_job FROM pq_job j
     WHERE j.id = job_id AND j.status = 'started' AND j.worker = worker_name
       FOR UPDATE;
    IF NOT FOUND THEN
        RAISE WARNING 'pq_fail: the failure of job % was not stored: not started by worker % any more',
                job_id, worker_name
            USING HINT = 'The worker was probably reaped after its heartbeat expired and the job failed as abandoned; see the failed queue.';
        RETURN false;
    END IF;
    PERFORM _pq_fail_job(v_job, exc_info, move_to_failed, retry);
    RETURN true;
END;
$$;
COMMENT ON FUNCTION pq_fail(bigint, text, text, boolean, boolean) IS
    'Record the failure of a started django-pq job: retried while it has retries left, else failed (to the failed queue); WARNING if it is not started by that worker.';

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
    PERFORM _pq_ensure_queue(v_origin);
    UPDATE pq_job j
       SET status = 'queued', queue = j.origin, exc_info = NULL, result = NULL, worker = NULL,
           started_at = NULL, ended_at = NULL, expires_at = NULL, enqueued_at = now()
     WHERE j.id = job_id;
END;
$$;
COMMENT ON FUNCTION pq_requeue(bigint) IS 'Put a failed django-pq job back on its origin queue.';

-- pq_expire_jobs(): delete jobs whose result TTL has run out, at most 10,000 a call, and
-- return how many; and the finished flows expired with their final job once no job of
-- theirs is kept. Locks: the deleted rows (SKIP LOCKED, so it never waits). Notifies: nothing.
CREATE FUNCTION pq_expire_jobs()
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_count integer;
BEGIN
    DELETE FROM pq_job j WHERE j.id = ANY (ARRAY(  -- run once: see pq_dequeue_many
        SELECT e.id FROM pq_job e WHERE e.expires_at < now()
         LIMIT 10000 FOR UPDATE SKIP LOCKED));
    GET DIAGNOSTICS v_count = ROW_COUNT;
    DELETE FROM pq_flow f
     WHERE f.expires_at < now() AND NOT EXISTS (SELECT 1 FROM pq_job j WHERE j.flow_id = f.id);
    RETURN v_count;
END;
$$;
COMMENT ON FUNCTION pq_expire_jobs() IS 'Delete django-pq jobs whose result TTL has expired; returns the count.';
