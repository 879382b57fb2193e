-- Dequeueing: hand a worker its next job.

-- pq_dequeue_many(queue_names, worker_name, max_jobs): claim up to max_jobs jobs for a
-- worker and return them (no row when there is none). Queues are tried in the order given,
-- which is their priority; within a queue, due scheduled jobs come first (oldest due time
-- first), then queued jobs by priority (highest first), FIFO within a priority. Claimed jobs
-- are marked 'started', record the worker and count one more attempt; a job enqueued
-- without a timeout gets its queue's default timeout (still NULL when the queue has none).
-- queue_names NULL means every queue but failed, also queues with no pq_queue row: first
-- the due scheduled jobs of all non-serial queues (oldest due time first), then queued
-- jobs in queue name order, by priority then FIFO within a queue, each serial queue taken in its name's
-- turn. Its cost does not grow with the number of queues: each step is one index scan
-- (pq_job_due, pq_job_queued between two serial queues' names) that stops after max_jobs
-- rows, plus one step per serial queue (there are few).
-- A serial queue hands out one job, and none while one of its jobs is 'started'.
-- A worker whose stop flag is set gets no job; an unregistered worker (never registered,
-- or reaped after its heartbeat expired while it still runs) raises PQ006 and gets none,
-- so that no job is started under a name nobody heartbeats.
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
-- - The claimed rows are returned in the order they are to run (an UPDATE returns them in
--   the order it met them): the worker runs a batch in that order.
-- - The jobs to claim are picked by an ARRAY(...) subquery, which runs exactly once. Joined
--   as UPDATE ... FROM (subquery), it may be rescanned once per row of an outer scan, each
--   rescan locking the next jobs: the claim then takes far more than max_jobs jobs and its
--   time grows with the square of the queue (seen: 13,564 jobs claimed by one batch call of
--   100, another call busy for minutes).
-- - The queued claim bounds the queue by a range (queue >= $1 AND queue <= $1) and orders
--   by (queue, priority DESC, id): only pq_job_queued gives that order, so the planner can never walk the
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
    v_stop boolean;
    v_serial_queues text[];
    v_after text := '';  -- every queue name sorts after '' (names are not empty)
BEGIN
    IF max_jobs IS NULL OR max_jobs < 1 THEN
        RAISE EXCEPTION 'pq_dequeue_many: max_jobs must be at least 1, got %', max_jobs
            USING ERRCODE = 'PQ001';
    END IF;
    SELECT w.stop INTO v_stop FROM pq_worker w WHERE w.name = worker_name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'pq_dequeue_many: worker % is not registered', coalesce(quote_literal(worker_name), 'NULL')
            USING ERRCODE = 'PQ006',
                  HINT = 'Call pq_register_worker first; a worker reaped after its heartbeat expired must register again.';
    END IF;
    IF v_stop THEN
        RETURN;
    END IF;

    IF queue_names IS NULL THEN
        v_serial_queues := ARRAY(SELECT q.name FROM pq_queue q WHERE q.serial ORDER BY q.name);
        RETURN QUERY
            WITH claimed AS (
                UPDATE pq_job j
                   SET status = 'started', started_at = now(), worker = worker_name,
                       attempts = j.attempts + 1,
                       timeout = coalesce(j.timeout, (SELECT q.default_timeout FROM pq_queue q WHERE q.name = j.queue))
                 WHERE j.id = ANY (ARRAY(
                        SELECT d.id FROM pq_job d
                         WHERE d.status = 'scheduled' AND d.scheduled_for <= now()
                           AND d.queue <> 'failed' AND d.queue <> ALL (v_serial_queues)
                         ORDER BY d.scheduled_for, d.id
                         LIMIT v_left
                           FOR UPDATE SKIP LOCKED))
             RETURNING j.*)
            SELECT * FROM claimed c ORDER BY c.scheduled_for, c.id;
        GET DIAGNOSTICS v_count = ROW_COUNT;
        v_left := v_left - v_count;
        -- The queued jobs of the non-serial queues named between two serial queues (the
        -- range trick keeps the (queue, priority DESC, id) order of pq_job_queued), then that
        -- serial queue.
        FOR v_queue IN SELECT u.name FROM unnest(v_serial_queues || NULL::text) AS u (name) LOOP
            EXIT WHEN v_left = 0;
            IF v_queue IS NULL THEN
                RETURN QUERY
                    WITH claimed AS (
                        UPDATE pq_job j
                           SET status = 'started', started_at = now(), worker = worker_name,
                               attempts = j.attempts + 1,
                               timeout = coalesce(j.timeout, (SELECT q.default_timeout FROM pq_queue q WHERE q.name = j.queue))
                         WHERE j.id = ANY (ARRAY(
                                SELECT r.id FROM pq_job r
                                 WHERE r.queue > v_after AND r.queue <> 'failed' AND r.status = 'queued'
                                 ORDER BY r.queue, r.priority DESC, r.id
                                 LIMIT v_left
                                   FOR UPDATE SKIP LOCKED))
                     RETURNING j.*)
                    SELECT * FROM claimed c ORDER BY c.queue, c.priority DESC, c.id;
            ELSE
                RETURN QUERY
                    WITH claimed AS (
                        UPDATE pq_job j
                           SET status = 'started', started_at = now(), worker = worker_name,
                               attempts = j.attempts + 1,
                               timeout = coalesce(j.timeout, (SELECT q.default_timeout FROM pq_queue q WHERE q.name = j.queue))
                         WHERE j.id = ANY (ARRAY(
                                SELECT r.id FROM pq_job r
                                 WHERE r.queue > v_after AND r.queue < v_queue AND r.queue <> 'failed'
                                   AND r.status = 'queued'
                                 ORDER BY r.queue, r.priority DESC, r.id
                                 LIMIT v_left
                                   FOR UPDATE SKIP LOCKED))
                     RETURNING j.*)
                    SELECT * FROM claimed c ORDER BY c.queue, c.priority DESC, c.id;
                GET DIAGNOSTICS v_count = ROW_COUNT;
                v_left := v_left - v_count;
                EXIT WHEN v_left = 0;
                RETURN QUERY SELECT * FROM pq_dequeue_many(ARRAY[v_queue], worker_name, v_left);
                v_after := v_queue;
            END IF;
            GET DIAGNOSTICS v_count = ROW_COUNT;
            v_left := v_left - v_count;
        END LOOP;
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
            WITH claimed AS (
                UPDATE pq_job j
                   SET status = 'started', started_at = now(), worker = worker_name,
                       attempts = j.attempts + 1,
                       timeout = coalesce(j.timeout, v_timeout)
                 WHERE j.id = ANY (ARRAY(
                        SELECT d.id FROM pq_job d
                         WHERE d.queue = v_queue AND d.status = 'scheduled' AND d.scheduled_for <= now()
                         ORDER BY d.scheduled_for, d.id
                         LIMIT CASE WHEN v_serial THEN 1 ELSE v_left END
                           FOR UPDATE SKIP LOCKED))
             RETURNING j.*)
            SELECT * FROM claimed c ORDER BY c.scheduled_for, c.id;
        GET DIAGNOSTICS v_count = ROW_COUNT;
        v_left := v_left - v_count;
        EXIT WHEN v_left = 0;
        CONTINUE WHEN v_serial AND v_count > 0;

        RETURN QUERY
            WITH claimed AS (
                UPDATE pq_job j
                   SET status = 'started', started_at = now(), worker = worker_name,
                       attempts = j.attempts + 1,
                       timeout = coalesce(j.timeout, v_timeout)
                 WHERE j.id = ANY (ARRAY(
                        SELECT r.id FROM pq_job r
                         WHERE r.queue >= v_queue AND r.queue <= v_queue AND r.status = 'queued'
                         ORDER BY r.queue, r.priority DESC, r.id
                         LIMIT CASE WHEN v_serial THEN 1 ELSE v_left END
                           FOR UPDATE SKIP LOCKED))
             RETURNING j.*)
            SELECT * FROM claimed c ORDER BY c.queue, c.priority DESC, c.id;
        GET DIAGNOSTICS v_count = ROW_COUNT;
        v_left := v_left - v_count;
        EXIT WHEN v_left = 0;
    END LOOP;
END;
$$;
COMMENT ON FUNCTION pq_dequeue_many(text[], text, integer) IS
    'Claim up to max_jobs django-pq jobs, queues in priority order, all but failed when NULL (FOR UPDATE SKIP LOCKED); PQ006 if the worker is not registered.';

-- pq_dequeue(queue_names, worker_name): claim the next job for a worker (at most one row),
-- as pq_dequeue_many(queue_names, worker_name, 1): queue_names NULL for all queues, PQ006
-- for an unregistered worker.
CREATE FUNCTION pq_dequeue(queue_names text[], worker_name text)
RETURNS SETOF pq_job
LANGUAGE sql AS $$
    SELECT * FROM pq_dequeue_many(queue_names, worker_name, 1);
$$;
COMMENT ON FUNCTION pq_dequeue(text[], text) IS
    'Claim the next django-pq job from the first non-empty queue given (FOR UPDATE SKIP LOCKED); no row if none.';

-- pq_next_due(queue_names): the earliest time a scheduled job of these queues (NULL: of
-- every queue) becomes due, NULL if none. Workers use it to bound how long they sleep.
-- Jobs due at or after 9999-12-31 UTC (enqueued before pq_enqueue refused such times) are
-- left out: no Python datetime holds their time, and they never become due.
-- Locks: none. Notifies: nothing.
CREATE FUNCTION pq_next_due(queue_names text[])
RETURNS timestamptz
LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF queue_names IS NULL THEN
        RETURN (SELECT min(j.scheduled_for) FROM pq_job j
                 WHERE j.status = 'scheduled' AND j.scheduled_for < '9999-12-31 00:00:00+00');
    END IF;
    RETURN (SELECT min(j.scheduled_for) FROM pq_job j
             WHERE j.queue = ANY (queue_names) AND j.status = 'scheduled'
               AND j.scheduled_for < '9999-12-31 00:00:00+00');
END;
$$;
COMMENT ON FUNCTION pq_next_due(text[]) IS
    'Earliest due time of the scheduled django-pq jobs of the given queues (NULL: all), before 9999-12-31 UTC.';
