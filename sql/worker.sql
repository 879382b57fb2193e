-- Workers: registration, heartbeats and the detection of dead workers.
--
-- A worker registers under a unique name and renews expires_at with a heartbeat. A worker
-- whose expires_at has passed is dead (killed, its host gone): pq_reap_workers deletes it
-- and fails its started jobs as abandoned, so no job is left 'started' forever.

-- pq_register_worker(worker_name, queue_names, ttl, hostname, pid, keep_jobs, token):
-- register a worker alive for ttl seconds, serving queue_names (NULL or empty: all queues).
-- token is a random string the worker process chose when it started; it tells the
-- worker's own earlier registration from another process's:
-- - The same name and token is the same process re-registering (it lost its connection,
--   or was reaped while unreachable). Its row is renewed before dead workers are reaped, so
--   an outage longer than ttl does not fail the jobs it kept. A job it claimed but never
--   received (the connection dropped during pq_dequeue) is still 'started' by it, so its
--   started jobs other than keep_jobs (those it ran or still runs, whose outcome it has
--   yet to store) are put back; they never ran.
-- - The same name, hostname and pid with another token is a new process where the old one
--   ran (a container restarted with pid 1): the old process is dead, since the new one
--   has its pid. Its row is deleted and its started jobs failed as abandoned (they may have
--   run in part, so they are never put back silently); then the name is registered.
-- - Without a token (workers before 0003), the same hostname and pid is a reconnect.
-- Raises PQ005 if any other live worker (one whose heartbeat has not expired) has the name.
-- Locks: the worker row and its started jobs. Notifies: pq_jobs for jobs put back and for
-- the queues of the jobs failed as abandoned.
CREATE FUNCTION pq_register_worker(worker_name text, queue_names text[], ttl integer,
                                   hostname text DEFAULT '', pid integer DEFAULT NULL,
                                   keep_jobs bigint[] DEFAULT '{}', token text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_old pq_worker;
    v_reconnect boolean;
BEGIN
    IF ttl IS NULL OR ttl <= 0 THEN
        RAISE EXCEPTION 'pq_register_worker: ttl must be a positive number of seconds, got %', ttl
            USING ERRCODE = 'PQ001';
    END IF;
    IF token IS NOT NULL THEN
        -- Our own row, even expired: renewed first, so pq_reap_workers leaves it and our jobs.
        UPDATE pq_worker w
           SET heartbeat_at = now(), expires_at = now() + make_interval(secs => ttl)
         WHERE w.name = worker_name AND w.token = pq_register_worker.token;
        IF NOT FOUND THEN
            -- A dead process of ours by host and pid (its pid is now the caller's).
            DELETE FROM pq_worker w
             WHERE w.name = worker_name AND w.hostname = pq_register_worker.hostname
               AND w.pid = pq_register_worker.pid AND w.token IS DISTINCT FROM pq_register_worker.token;
        END IF;
    END IF;
    PERFORM pq_reap_workers();
    -- Insert, or take over our own row; a row of another live worker (also one inserted
    -- concurrently: ON CONFLICT waits for its transaction) is left alone and raises PQ005.
    INSERT INTO pq_worker AS w (name, hostname, pid, queues, expires_at, token)
    VALUES (worker_name, hostname, pid, coalesce(queue_names, '{}'), now() + make_interval(secs => ttl),
            token)
    ON CONFLICT (name) DO UPDATE
        SET queues = EXCLUDED.queues, heartbeat_at = now(), expires_at = EXCLUDED.expires_at
        WHERE CASE WHEN EXCLUDED.token IS NOT NULL THEN w.token = EXCLUDED.token
                   ELSE w.token IS NULL AND w.hostname = EXCLUDED.hostname
                        AND w.pid IS NOT DISTINCT FROM EXCLUDED.pid END
    RETURNING (xmax <> 0) INTO v_reconnect;  -- xmax is set on a row updated by the upsert
    IF NOT FOUND THEN
        SELECT * INTO v_old FROM pq_worker w WHERE w.name = worker_name;
        RAISE EXCEPTION 'pq_register_worker: a live worker named % is already registered (host %, pid %)',
                worker_name, v_old.hostname, v_old.pid
            USING ERRCODE = 'PQ005',
                  HINT = 'Give each worker its own name (pqworker --name), or wait for the other one to stop.';
    END IF;
    IF v_reconnect THEN
        PERFORM pq_release(ARRAY(
            SELECT j.id FROM pq_job j
             WHERE j.status = 'started' AND j.worker = worker_name
               AND j.id <> ALL (coalesce(keep_jobs, '{}'))), worker_name);
    END IF;
END;
$$;
COMMENT ON FUNCTION pq_register_worker(text, text[], integer, text, integer, bigint[], text) IS
    'Register a django-pq worker alive for ttl seconds (token: per process); PQ005 if another live worker has the name.';

-- pq_heartbeat(worker_name, ttl): keep a worker alive for ttl more seconds and return its
-- stop flag; NULL if the worker is not registered (it was reaped: register again).
-- Locks: the worker row. Notifies: nothing.
CREATE FUNCTION pq_heartbeat(worker_name text, ttl integer)
RETURNS boolean
LANGUAGE sql AS $$
    UPDATE pq_worker w
       SET heartbeat_at = now(), expires_at = now() + make_interval(secs => ttl)
     WHERE w.name = worker_name
 RETURNING w.stop;
$$;
COMMENT ON FUNCTION pq_heartbeat(text, integer) IS
    'Renew a django-pq worker''s heartbeat; returns its stop flag, NULL if it is not registered.';

-- pq_unregister_worker(worker_name): remove a worker that stops. A job it still has
-- 'started' (its horse was killed on a forced shutdown) is failed as abandoned.
-- Locks: the worker row and its started jobs. Notifies: nothing.
CREATE FUNCTION pq_unregister_worker(worker_name text)
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM pq_worker w WHERE w.name = worker_name;
    PERFORM _pq_fail_abandoned();
END;
$$;
COMMENT ON FUNCTION pq_unregister_worker(text) IS 'Remove a stopping django-pq worker.';

-- pq_reap_workers(): delete the workers whose heartbeat expired and fail their started jobs
-- as abandoned. Returns the number of jobs failed. Called by workers as they register and
-- on each heartbeat. Locks: the expired worker rows and the abandoned jobs (SKIP LOCKED).
-- Notifies: nothing.
CREATE FUNCTION pq_reap_workers()
RETURNS integer
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM pq_worker w WHERE w.name IN (
        SELECT d.name FROM pq_worker d WHERE d.expires_at < now() FOR UPDATE SKIP LOCKED);
    RETURN _pq_fail_abandoned();
END;
$$;
COMMENT ON FUNCTION pq_reap_workers() IS
    'Delete django-pq workers whose heartbeat expired and fail their started jobs as abandoned.';

-- _pq_fail_abandoned(): fail every 'started' job whose worker is not registered any more,
-- as pq_fail does (retried while it has retries left, else into the failed queue). Returns
-- how many. Locks: those jobs (SKIP LOCKED).
-- Notifies: pq_jobs with each failed job's origin queue, at commit: a serial queue held by
-- an abandoned job is free again, and its workers should not wait for their next poll.
CREATE FUNCTION _pq_fail_abandoned()
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_job pq_job;
    v_count integer := 0;
    v_queues text[] := '{}';
BEGIN
    FOR v_job IN
        SELECT a.* FROM pq_job a
         WHERE a.status = 'started'
           AND NOT EXISTS (SELECT 1 FROM pq_worker w WHERE w.name = a.worker)
           FOR UPDATE SKIP LOCKED
    LOOP
        PERFORM _pq_fail_job(v_job, format(
            E'AbandonedJob: worker %s stopped while the job was running (started at %s; it '
             'stopped sending heartbeats or was shut down by force). The job may have run in '
             'part; requeue it if it is safe to run again.', v_job.worker, v_job.started_at),
            true, true);
        v_count := v_count + 1;
        v_queues := v_queues || v_job.origin;
    END LOOP;
    PERFORM pg_notify('pq_jobs', q.name) FROM (SELECT DISTINCT unnest(v_queues) AS name) AS q;
    RETURN v_count;
END;
$$;
COMMENT ON FUNCTION _pq_fail_abandoned() IS
    'Fail the started django-pq jobs whose worker is no longer registered; NOTIFY pq_jobs with their queues.';

-- pq_stop_workers(worker_names): ask workers (all when NULL) to stop after their current
-- job, and wake the idle ones. Returns how many were asked.
-- Locks: the worker rows. Notifies: pq_jobs with an empty payload (a wake-up for every worker).
CREATE FUNCTION pq_stop_workers(worker_names text[] DEFAULT NULL)
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_count integer;
BEGIN
    UPDATE pq_worker w SET stop = true WHERE worker_names IS NULL OR w.name = ANY (worker_names);
    GET DIAGNOSTICS v_count = ROW_COUNT;
    PERFORM pg_notify('pq_jobs', '');
    RETURN v_count;
END;
$$;
COMMENT ON FUNCTION pq_stop_workers(text[]) IS 'Ask django-pq workers to stop after their current job.';
