-- Dequeueing: hand a worker its next job.

-- pq_dequeue(queue_names, worker_name): claim the next job for a worker and return it
-- (no row when there is none). Queues are tried in the order given, which is their priority;
-- within a queue, due scheduled jobs come first (oldest due time first), then queued jobs
-- in FIFO order. The job is marked 'started' and records the worker; a job enqueued without
-- a timeout gets its queue's default timeout (still NULL when the queue has none).
-- A serial queue hands out nothing while one of its jobs is 'started'.
-- A worker whose stop flag is set gets no job.
-- Locks: the claimed job row (FOR UPDATE SKIP LOCKED, so concurrent workers never wait on
-- each other and never get the same job); for a serial queue, its pq_queue row
-- (FOR UPDATE SKIP LOCKED: a serial queue being claimed by another worker is skipped).
-- Notifies: nothing.
CREATE FUNCTION pq_dequeue(queue_names text[], worker_name text)
RETURNS SETOF pq_job
LANGUAGE plpgsql AS $$
DECLARE
    v_queue text;
    v_serial boolean;
    v_timeout integer;
    v_id bigint;
BEGIN
    IF EXISTS (SELECT 1 FROM pq_worker w WHERE w.name = worker_name AND w.stop) THEN
        RETURN;
    END IF;
    FOREACH v_queue IN ARRAY queue_names LOOP
        SELECT q.serial, q.default_timeout INTO v_serial, v_timeout FROM pq_queue q WHERE q.name = v_queue;
        CONTINUE WHEN NOT FOUND;
        IF v_serial THEN
            PERFORM 1 FROM pq_queue q WHERE q.name = v_queue FOR UPDATE SKIP LOCKED;
            CONTINUE WHEN NOT FOUND;
            CONTINUE WHEN EXISTS (SELECT 1 FROM pq_job j WHERE j.queue = v_queue AND j.status = 'started');
        END IF;

        SELECT j.id INTO v_id FROM pq_job j
         WHERE j.queue = v_queue AND j.status = 'scheduled' AND j.scheduled_for <= now()
         ORDER BY j.scheduled_for, j.id
         LIMIT 1 FOR UPDATE SKIP LOCKED;
        IF v_id IS NULL THEN
            SELECT j.id INTO v_id FROM pq_job j
             WHERE j.queue = v_queue AND j.status = 'queued'
             ORDER BY j.id
             LIMIT 1 FOR UPDATE SKIP LOCKED;
        END IF;
        IF v_id IS NOT NULL THEN
            RETURN QUERY
                UPDATE pq_job j
                   SET status = 'started', started_at = now(), worker = worker_name,
                       timeout = coalesce(j.timeout, v_timeout)
                 WHERE j.id = v_id
             RETURNING j.*;
            RETURN;
        END IF;
    END LOOP;
END;
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
