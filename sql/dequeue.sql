-- Dequeueing: hand a worker its next job.

-- pq_dequeue_many(queue_names, worker_name, max_jobs): claim up to max_jobs jobs for a
-- worker and return them (no row when there is none). Queues are tried in the order given,
-- which is their priority; within a queue, due scheduled jobs come first (oldest due time
-- first), then queued jobs in FIFO order. Claimed jobs are marked 'started' and record the
-- worker; a job enqueued without a timeout gets its queue's default timeout (still NULL
-- when the queue has none).
-- A serial queue hands out one job, and none while one of its jobs is 'started'.
-- A worker whose stop flag is set gets no job.
-- Locks: the claimed job rows (FOR UPDATE SKIP LOCKED, so concurrent workers never wait on
-- each other and never get the same job); for a serial queue, its pq_queue row
-- (FOR UPDATE SKIP LOCKED: a serial queue being claimed by another worker is skipped).
-- Notifies: nothing.
-- Plans: the queue table swings between empty and full faster than its statistics follow:
-- planned on statistics saying "empty", a claim scans and sorts the whole table, which
-- becomes minutes per claim on a large queue. So sequential scans are off in here (SET
-- below), and PostgreSQL plans each call afresh (as it chooses: LIMIT max_jobs makes a
-- generic plan look dear), about 0.25 ms a call; a generic plan, made once per session by a
-- worker starting on an empty queue, cut non-forking workers from 750 to 250 jobs/s.
-- The statements are also written to leave the planner no bad choice:
-- - The jobs to claim are picked by an ARRAY(...) subquery, which runs exactly once. Joined
--   as UPDATE ... FROM (subquery), it may be rescanned once per row of an outer scan, each
--   rescan locking the next jobs: the claim then takes far more than max_jobs jobs and its
--   time grows with the square of the queue (seen: 13,564 jobs claimed by one batch call of
--   100, another call busy for minutes).
-- - The queued claim bounds the queue by a range (queue >= $1 AND queue <= $1) and orders
--   by (queue, id): only pq_job_queued gives that order, so the planner can never walk the
--   primary key instead, past every finished or started job with a lower id, which it does
--   with "queue = $1 ORDER BY id" when most rows of the table look queued.
CREATE FUNCTION pq_dequeue_many(queue_names text[], worker_name text, max_jobs integer)
RETURNS SETOF pq_job
LANGUAGE plpgsql
SET enable_seqscan = off
AS $$
DECLARE
    v_queue text;
    v_serial boolean;
    v_timeout integer;
    v_left integer := max_jobs;
    v_count integer;
BEGIN
    IF max_jobs IS NULL OR max_jobs < 1 THEN
        RAISE EXCEPTION 'pq_dequeue_many: max_jobs must be at least 1, got %', max_jobs
            USING ERRCODE = 'PQ001';
    END IF;
    IF EXISTS (SELECT 1 FROM pq_worker w WHERE w.name = worker_name AND w.stop) THEN
        RETURN;
    END IF;
    FOREACH v_queue IN ARRAY queue_names LOOP
        v_serial := false;
        v_timeout := NULL;
        SELECT q.serial, q.default_timeout INTO v_serial, v_timeout FROM pq_queue q WHERE q.name = v_queue;
        IF v_serial THEN
            PERFORM 1 FROM pq_queue q WHERE q.name = v_queue FOR UPDATE SKIP LOCKED;
            CONTINUE WHEN NOT FOUND;
            CONTINUE WHEN EXISTS (SELECT 1 FROM pq_job j WHERE j.queue = v_queue AND j.status = 'started');
        END IF;

        RETURN QUERY
            UPDATE pq_job j
               SET status = 'started', started_at = now(), worker = worker_name,
                   timeout = coalesce(j.timeout, v_timeout)
             WHERE j.id = ANY (ARRAY(
                    SELECT d.id FROM pq_job d
                     WHERE d.queue = v_queue AND d.status = 'scheduled' AND d.scheduled_for <= now()
                     ORDER BY d.scheduled_for, d.id
                     LIMIT CASE WHEN v_serial THEN 1 ELSE v_left END
                       FOR UPDATE SKIP LOCKED))
         RETURNING j.*;
        GET DIAGNOSTICS v_count = ROW_COUNT;
        v_left := v_left - v_count;
        EXIT WHEN v_left = 0;
        CONTINUE WHEN v_serial AND v_count > 0;

        RETURN QUERY
            UPDATE pq_job j
               SET status = 'started', started_at = now(), worker = worker_name,
                   timeout = coalesce(j.timeout, v_timeout)
             WHERE j.id = ANY (ARRAY(
                    SELECT r.id FROM pq_job r
                     WHERE r.queue >= v_queue AND r.queue <= v_queue AND r.status = 'queued'
                     ORDER BY r.queue, r.id
                     LIMIT CASE WHEN v_serial THEN 1 ELSE v_left END
                       FOR UPDATE SKIP LOCKED))
         RETURNING j.*;
        GET DIAGNOSTICS v_count = ROW_COUNT;
        v_left := v_left - v_count;
        EXIT WHEN v_left = 0;
    END LOOP;
END;
$$;
COMMENT ON FUNCTION pq_dequeue_many(text[], text, integer) IS
    'Claim up to max_jobs django-pq jobs, queues in priority order (FOR UPDATE SKIP LOCKED).';

-- pq_dequeue(queue_names, worker_name): claim the next job for a worker (at most one row),
-- as pq_dequeue_many(queue_names, worker_name, 1).
CREATE FUNCTION pq_dequeue(queue_names text[], worker_name text)
RETURNS SETOF pq_job
LANGUAGE sql AS $$
    SELECT * FROM pq_dequeue_many(queue_names, worker_name, 1);
$$;
COMMENT ON FUNCTION pq_dequeue(text[], text) IS
    'Claim the next django-pq job from the first non-empty queue given (FOR UPDATE SKIP LOCKED); no row if none.';

-- pq_next_due(queue_names): the earliest time a scheduled job of these queues becomes due,
-- NULL if none. Workers use it to bound how long they sleep. Locks: none.
CREATE FUNCTION pq_next_due(queue_names text[])
RETURNS timestamptz
LANGUAGE sql STABLE AS $$
    SELECT min(j.scheduled_for) FROM pq_job j
     WHERE j.queue = ANY (queue_names) AND j.status = 'scheduled';
$$;
COMMENT ON FUNCTION pq_next_due(text[]) IS 'Earliest due time of the scheduled django-pq jobs of the given queues.';
