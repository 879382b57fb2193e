-- django-pq SQL migration 0003: no job stuck or run twice, no bad row stops a worker, no
-- growth without bound.
-- - pq_enqueue, pq_enqueue_job and pq_enqueue_many refuse what a worker cannot hold or
--   run (args or kwargs over 1 MiB, a description over 1,000 characters, scheduled_for at
--   or after 9999-12-31 UTC); pq_next_due never returns such a time.
-- - Workers register with a per-process token (pq_worker.token): a reconnect renews its
--   own row before reaping, a new process with the pid of a dead one fails the dead one's
--   jobs instead of putting them back.
-- - pq_dequeue_many raises PQ006 for an unregistered worker; queue_names NULL claims from
--   every queue at a cost that does not grow with their number (indexes pq_job_due,
--   pq_queue_serial); pq_remove_empty_queues deletes unused queue rows (index
--   pq_job_deferred).
-- - pq_finish_many and pq_fail warn about outcomes they did not store; pq_fail_abandoned
--   notifies the queues it frees; pq_enqueue_job is SECURITY DEFINER like pq_enqueue.
-- The same objects as in sql/*.sql, which stay the truth for fresh installs. Frozen once
-- released: never edit; add a new migration instead.

-- A random string the worker process chose at start (see pq_register_worker).
ALTER TABLE pq_worker ADD COLUMN token text;
CREATE INDEX pq_queue_serial ON pq_queue (name) WHERE serial;
CREATE INDEX pq_job_due ON pq_job (scheduled_for, id) WHERE status = 'scheduled';
CREATE INDEX pq_job_deferred ON pq_job (queue) WHERE status = 'deferred';


CREATE FUNCTION pq_remove_empty_queues()
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_count integer;
BEGIN
    DELETE FROM pq_queue q WHERE q.name = ANY (ARRAY(  -- run once: see pq_dequeue_many
        SELECT e.name FROM pq_queue e
         WHERE e.name NOT IN ('default', 'failed', 'serial')
           AND NOT e.serial AND e.default_timeout IS NULL
           AND NOT EXISTS (SELECT 1 FROM pq_job j WHERE j.queue = e.name AND j.status = 'queued')
           AND NOT EXISTS (SELECT 1 FROM pq_job j WHERE j.queue = e.name AND j.status = 'scheduled')
           AND NOT EXISTS (SELECT 1 FROM pq_job j WHERE j.queue = e.name AND j.status = 'started')
           AND NOT EXISTS (SELECT 1 FROM pq_job j WHERE j.queue = e.name AND j.status = 'deferred')
           AND NOT EXISTS (SELECT 1 FROM pq_job j WHERE j.queue = e.name AND j.status = 'failed')
           AND NOT EXISTS (SELECT 1 FROM pq_flow f WHERE f.queue = e.name)
           FOR UPDATE SKIP LOCKED));
    GET DIAGNOSTICS v_count = ROW_COUNT;
    RETURN v_count;
END;
$$;

COMMENT ON FUNCTION pq_remove_empty_queues() IS
    'Delete django-pq queue rows with default options and no waiting, running, deferred or failed job; returns the count.';

DROP FUNCTION pq_check_enqueue(text, text, integer, integer);

CREATE FUNCTION pq_check_enqueue(caller text, queue_name text, timeout integer, result_ttl integer,
                                 description text DEFAULT NULL, scheduled_for timestamptz DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    PERFORM pq_check_queue_name(queue_name);
    IF queue_name = 'failed' THEN
        RAISE EXCEPTION '%: cannot enqueue on the failed queue', caller
            USING ERRCODE = 'PQ001', HINT = 'Enqueue on the job''s own queue; failed jobs are moved there by workers.';
    END IF;
    IF timeout IS NOT NULL AND timeout <= 0 THEN
        RAISE EXCEPTION '%: timeout must be a positive number of seconds, got %', caller, timeout
            USING ERRCODE = 'PQ001', HINT = 'Pass NULL to use the queue''s or the worker''s default timeout.';
    END IF;
    IF result_ttl IS NOT NULL AND result_ttl < -1 THEN
        RAISE EXCEPTION '%: result_ttl must be -1 (keep forever), 0 (delete at once) or a number of seconds, got %',
                caller, result_ttl
            USING ERRCODE = 'PQ001';
    END IF;
    IF length(description) > 1000 THEN
        RAISE EXCEPTION '%: description is % characters long, at most 1000 are allowed',
                caller, length(description)
            USING ERRCODE = 'PQ001', HINT = 'Describe the job in a line; put data in its arguments.';
    END IF;
    IF scheduled_for >= '9999-12-31 00:00:00+00' THEN
        RAISE EXCEPTION '%: scheduled_for % is too far in the future: it must be before 9999-12-31 UTC',
                caller, scheduled_for
            USING ERRCODE = 'PQ001',
                  HINT = 'Pass a real due time; a job that should never run need not be enqueued.';
    END IF;
END;
$$;

CREATE OR REPLACE FUNCTION pq_check_call(caller text, func text, args jsonb, kwargs jsonb,
                              instance bytea DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF instance IS NULL AND NOT coalesce(pq_is_func_name(func), false) THEN
        RAISE EXCEPTION '%: func % is not a dotted path to a function (module.function)',
                caller, coalesce(quote_literal(func), 'NULL')
            USING ERRCODE = 'PQ001',
                  HINT = 'Name the function by its import path, e.g. ''myapp.tasks.send_mail'': a worker imports the module, then takes the function from it.';
    END IF;
    IF instance IS NOT NULL AND NOT coalesce(func ~ '^[A-Za-z_][A-Za-z0-9_]*$', false) THEN
        RAISE EXCEPTION '%: func % is not a method name; with an instance, func names the method to call on it',
                caller, coalesce(quote_literal(func), 'NULL')
            USING ERRCODE = 'PQ001', HINT = 'Pass the method''s name alone, e.g. ''send''.';
    END IF;
    IF args IS NULL OR jsonb_typeof(args) <> 'array' THEN
        RAISE EXCEPTION '%: args must be a JSON array, got %', caller, coalesce(jsonb_typeof(args), 'NULL')
            USING ERRCODE = 'PQ001', HINT = 'Pass positional arguments as an array, e.g. ''["a", 1]''::jsonb.';
    END IF;
    IF kwargs IS NULL OR jsonb_typeof(kwargs) <> 'object' THEN
        RAISE EXCEPTION '%: kwargs must be a JSON object, got %', caller, coalesce(jsonb_typeof(kwargs), 'NULL')
            USING ERRCODE = 'PQ001', HINT = 'Pass keyword arguments as an object, e.g. ''{"name": "Bob"}''::jsonb.';
    END IF;
    IF pg_column_size(args) > 1048576 THEN
        RAISE EXCEPTION '%: args take % bytes, at most 1048576 (1 MiB) are allowed', caller, pg_column_size(args)
            USING ERRCODE = 'PQ001', HINT = 'Store large data elsewhere (a table, a file) and pass its key.';
    END IF;
    IF pg_column_size(kwargs) > 1048576 THEN
        RAISE EXCEPTION '%: kwargs take % bytes, at most 1048576 (1 MiB) are allowed', caller, pg_column_size(kwargs)
            USING ERRCODE = 'PQ001', HINT = 'Store large data elsewhere (a table, a file) and pass its key.';
    END IF;
END;
$$;

CREATE OR REPLACE FUNCTION pq_enqueue_job(
    queue_name text,
    func text,
    args jsonb DEFAULT '[]',
    kwargs jsonb DEFAULT '{}',
    timeout integer DEFAULT NULL,
    result_ttl integer DEFAULT NULL,
    description text DEFAULT NULL,
    scheduled_for timestamptz DEFAULT NULL,
    instance bytea DEFAULT NULL
)
RETURNS pq_job
LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    v_job pq_job;
BEGIN
    -- One cheap test first; the checks that raise the detailed errors run only if it fails.
    IF NOT coalesce(length(queue_name) BETWEEN 1 AND 100 AND queue_name <> 'failed'
                    AND (timeout IS NULL OR timeout > 0) AND (result_ttl IS NULL OR result_ttl >= -1)
                    AND CASE WHEN instance IS NULL THEN pq_is_func_name(func)
                             ELSE func ~ '^[A-Za-z_][A-Za-z0-9_]*$' END
                    AND jsonb_typeof(args) = 'array' AND jsonb_typeof(kwargs) = 'object'
                    AND pg_column_size(args) <= 1048576 AND pg_column_size(kwargs) <= 1048576
                    AND (description IS NULL OR length(description) <= 1000)
                    AND (scheduled_for IS NULL OR scheduled_for < '9999-12-31 00:00:00+00'), false) THEN
        PERFORM pq_check_enqueue('pq_enqueue', queue_name, timeout, result_ttl, description, scheduled_for);
        PERFORM pq_check_call('pq_enqueue', func, args, kwargs, instance);
    END IF;

    PERFORM pq_ensure_queue(queue_name);

    INSERT INTO pq_job (queue, origin, status, func, args, kwargs, instance, description,
                        timeout, result_ttl, scheduled_for)
    VALUES (queue_name, queue_name,
            CASE WHEN scheduled_for > now() THEN 'scheduled' ELSE 'queued' END,
            func, args, kwargs, instance, description, timeout, result_ttl,
            CASE WHEN scheduled_for > now() THEN scheduled_for END)
    RETURNING * INTO v_job;
    RETURN v_job;
END;
$$;

COMMENT ON FUNCTION pq_enqueue_job(text, text, jsonb, jsonb, integer, integer, text, timestamptz, bytea) IS
    'Enqueue a django-pq job as pq_enqueue does, returning the new pq_job row. Limits: args and kwargs 1 MiB each, description 1000 characters, scheduled_for before 9999-12-31 UTC.';

COMMENT ON FUNCTION pq_enqueue(text, text, jsonb, jsonb, integer, integer, text, timestamptz, bytea) IS
    'Enqueue a django-pq job: pq_enqueue(queue, ''module.func'', args jsonb array, kwargs jsonb object, ...) returns the job id. Limits: args and kwargs 1 MiB each, description 1000 characters, scheduled_for before 9999-12-31 UTC.';

CREATE OR REPLACE FUNCTION pq_enqueue_many(
    queue_name text,
    funcs text[],
    args jsonb[] DEFAULT NULL,
    kwargs jsonb[] DEFAULT NULL,
    timeout integer DEFAULT NULL,
    result_ttl integer DEFAULT NULL
)
RETURNS SETOF bigint
LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    v_count integer := coalesce(cardinality(funcs), 0);
    v_item record;
BEGIN
    PERFORM pq_check_enqueue('pq_enqueue_many', queue_name, timeout, result_ttl);
    IF cardinality(args) <> v_count OR cardinality(kwargs) <> v_count THEN
        RAISE EXCEPTION 'pq_enqueue_many: % funcs but % args and % kwargs',
                v_count, cardinality(args), cardinality(kwargs)
            USING ERRCODE = 'PQ001', HINT = 'Pass one args and one kwargs element per func, or NULL arrays.';
    END IF;
    FOR v_item IN
        SELECT c.n, c.func, coalesce(c.args, '[]') AS args, coalesce(c.kwargs, '{}') AS kwargs
          FROM unnest(funcs, args, kwargs) WITH ORDINALITY AS c (func, args, kwargs, n)
         WHERE NOT coalesce(pq_is_func_name(c.func), false)
            OR jsonb_typeof(coalesce(c.args, '[]')) <> 'array'
            OR jsonb_typeof(coalesce(c.kwargs, '{}')) <> 'object'
            OR pg_column_size(c.args) > 1048576 OR pg_column_size(c.kwargs) > 1048576
         LIMIT 1
    LOOP
        PERFORM pq_check_call(format('pq_enqueue_many: job %s', v_item.n), v_item.func, v_item.args, v_item.kwargs);
    END LOOP;
    IF v_count = 0 THEN
        RETURN;
    END IF;
    PERFORM pq_ensure_queue(queue_name);
    RETURN QUERY
        INSERT INTO pq_job (queue, origin, func, args, kwargs, timeout, result_ttl)
        SELECT queue_name, queue_name, c.func, coalesce(c.args, '[]'), coalesce(c.kwargs, '{}'),
               pq_enqueue_many.timeout, pq_enqueue_many.result_ttl
          FROM unnest(funcs, args, kwargs) WITH ORDINALITY AS c (func, args, kwargs, n)
         ORDER BY c.n
     RETURNING id;
END;
$$;

COMMENT ON FUNCTION pq_enqueue_many(text, text[], jsonb[], jsonb[], integer, integer) IS
    'Enqueue a batch of django-pq jobs on one queue in one statement; returns their ids in order. Limits: args and kwargs 1 MiB per job.';

CREATE OR REPLACE FUNCTION pq_dequeue_many(queue_names text[], worker_name text, max_jobs integer)
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
            UPDATE pq_job j
               SET status = 'started', started_at = now(), worker = worker_name,
                   timeout = coalesce(j.timeout, (SELECT q.default_timeout FROM pq_queue q WHERE q.name = j.queue))
             WHERE j.id = ANY (ARRAY(
                    SELECT d.id FROM pq_job d
                     WHERE d.status = 'scheduled' AND d.scheduled_for <= now()
                       AND d.queue <> 'failed' AND d.queue <> ALL (v_serial_queues)
                     ORDER BY d.scheduled_for, d.id
                     LIMIT v_left
                       FOR UPDATE SKIP LOCKED))
         RETURNING j.*;
        GET DIAGNOSTICS v_count = ROW_COUNT;
        v_left := v_left - v_count;
        -- The queued jobs of the non-serial queues named between two serial queues (the
        -- range trick keeps the (queue, id) order of pq_job_queued), then that serial queue.
        FOR v_queue IN SELECT u.name FROM unnest(v_serial_queues || NULL::text) AS u (name) LOOP
            EXIT WHEN v_left = 0;
            IF v_queue IS NULL THEN
                RETURN QUERY
                    UPDATE pq_job j
                       SET status = 'started', started_at = now(), worker = worker_name,
                           timeout = coalesce(j.timeout, (SELECT q.default_timeout FROM pq_queue q WHERE q.name = j.queue))
                     WHERE j.id = ANY (ARRAY(
                            SELECT r.id FROM pq_job r
                             WHERE r.queue > v_after AND r.queue <> 'failed' AND r.status = 'queued'
                             ORDER BY r.queue, r.id
                             LIMIT v_left
                               FOR UPDATE SKIP LOCKED))
                 RETURNING j.*;
            ELSE
                RETURN QUERY
                    UPDATE pq_job j
                       SET status = 'started', started_at = now(), worker = worker_name,
                           timeout = coalesce(j.timeout, (SELECT q.default_timeout FROM pq_queue q WHERE q.name = j.queue))
                     WHERE j.id = ANY (ARRAY(
                            SELECT r.id FROM pq_job r
                             WHERE r.queue > v_after AND r.queue < v_queue AND r.queue <> 'failed'
                               AND r.status = 'queued'
                             ORDER BY r.queue, r.id
                             LIMIT v_left
                               FOR UPDATE SKIP LOCKED))
                 RETURNING j.*;
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
    'Claim up to max_jobs django-pq jobs, queues in priority order, all but failed when NULL (FOR UPDATE SKIP LOCKED); PQ006 if the worker is not registered.';

CREATE OR REPLACE FUNCTION pq_next_due(queue_names text[])
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

COMMENT ON FUNCTION pq_finish_many(bigint[], text, jsonb[], integer) IS
    'Mark started django-pq jobs finished with their results; returns how many were; WARNING naming the jobs not started by that worker any more.';

CREATE OR REPLACE FUNCTION pq_fail(job_id bigint, worker_name text, exc_info text,
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
    IF NOT FOUND THEN
        RAISE WARNING 'pq_fail: the failure of job % was not stored: not started by worker % any more',
                job_id, worker_name
            USING HINT = 'The worker was probably reaped after its heartbeat expired and the job failed as abandoned; see the failed queue.';
        RETURN false;
    END IF;
    RETURN true;
END;
$$;

COMMENT ON FUNCTION pq_fail(bigint, text, text, boolean) IS
    'Mark a started django-pq job failed with its traceback and move it to the failed queue; WARNING if it is not started by that worker.';

DROP FUNCTION pq_register_worker(text, text[], integer, text, integer, bigint[]);

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

CREATE OR REPLACE FUNCTION pq_fail_abandoned()
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_count integer;
    v_queues text[];
BEGIN
    PERFORM pq_ensure_queue('failed');
    WITH failed AS (
        UPDATE pq_job j
           SET status = 'failed', queue = 'failed', ended_at = now(), expires_at = NULL,
               exc_info = format(E'AbandonedJob: worker %s stopped while the job was running '
                                 '(started at %s; it stopped sending heartbeats or was shut down '
                                 'by force). The job may have run in part; requeue it if it is '
                                 'safe to run again.', j.worker, j.started_at)
         WHERE j.id IN (
            SELECT a.id FROM pq_job a
             WHERE a.status = 'started'
               AND NOT EXISTS (SELECT 1 FROM pq_worker w WHERE w.name = a.worker)
               FOR UPDATE SKIP LOCKED)
     RETURNING j.origin)
    SELECT count(*), array_agg(DISTINCT f.origin) INTO v_count, v_queues FROM failed f;
    PERFORM pg_notify('pq_jobs', q.name) FROM unnest(v_queues) AS q (name);
    RETURN v_count;
END;
$$;

COMMENT ON FUNCTION pq_fail_abandoned() IS
    'Fail the started django-pq jobs whose worker is no longer registered; NOTIFY pq_jobs with their queues.';

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
