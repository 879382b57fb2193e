-- Reverse of django-pq SQL migration 0004: the helpers' old names, no pq_version().

ALTER FUNCTION _pq_check_call(text, text, jsonb, jsonb, bytea) RENAME TO pq_check_call;

ALTER FUNCTION _pq_check_enqueue(text, text, integer, integer, text, timestamptz) RENAME TO pq_check_enqueue;

ALTER FUNCTION _pq_check_queue_name(text) RENAME TO pq_check_queue_name;

ALTER FUNCTION _pq_is_func_name(text) RENAME TO pq_is_func_name;

ALTER FUNCTION _pq_ensure_queue(text) RENAME TO pq_ensure_queue;

ALTER FUNCTION _pq_enqueue_job(text, text, jsonb, jsonb, integer, integer, text, timestamptz, bytea) RENAME TO pq_enqueue_job;

ALTER FUNCTION _pq_fail_abandoned() RENAME TO pq_fail_abandoned;

ALTER FUNCTION _pq_notify_jobs() RENAME TO pq_notify_jobs;

ALTER FUNCTION _pq_notify_job() RENAME TO pq_notify_job;

DROP FUNCTION pq_version();

CREATE OR REPLACE FUNCTION pq_create_queue(queue_name text, options jsonb DEFAULT '{}')
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_unknown text;
    v_serial boolean;
    v_timeout integer;
BEGIN
    PERFORM pq_check_queue_name(pq_create_queue.queue_name);
    IF options IS NULL OR jsonb_typeof(options) <> 'object' THEN
        RAISE EXCEPTION 'pq_create_queue: options must be a JSON object, got %', coalesce(jsonb_typeof(options), 'NULL')
            USING ERRCODE = 'PQ001', HINT = 'Pass options like ''{"serial": true, "timeout": 60}''.';
    END IF;
    SELECT string_agg(k, ', ') INTO v_unknown
      FROM jsonb_object_keys(options) AS k WHERE k NOT IN ('serial', 'timeout');
    IF v_unknown IS NOT NULL THEN
        RAISE EXCEPTION 'pq_create_queue: unknown queue option(s) % for queue "%"', v_unknown, queue_name
            USING ERRCODE = 'PQ002', HINT = 'Known options are: serial (boolean), timeout (seconds).';
    END IF;
    IF options ? 'serial' AND jsonb_typeof(options -> 'serial') <> 'boolean' THEN
        RAISE EXCEPTION 'pq_create_queue: option serial must be true or false, got %', options -> 'serial'
            USING ERRCODE = 'PQ001';
    END IF;
    v_serial := coalesce((options ->> 'serial')::boolean, false);
    IF options ? 'timeout' THEN
        IF jsonb_typeof(options -> 'timeout') <> 'number'
           OR (options ->> 'timeout')::numeric <= 0
           OR (options ->> 'timeout')::numeric <> trunc((options ->> 'timeout')::numeric) THEN
            RAISE EXCEPTION 'pq_create_queue: option timeout must be a positive whole number of seconds, got %',
                options -> 'timeout' USING ERRCODE = 'PQ001';
        END IF;
        v_timeout := (options ->> 'timeout')::integer;
    END IF;
    INSERT INTO pq_queue AS q (name, serial, default_timeout)
    VALUES (queue_name, v_serial, v_timeout)
    ON CONFLICT (name) DO UPDATE
        SET serial = CASE WHEN options ? 'serial' THEN EXCLUDED.serial ELSE q.serial END,
            default_timeout = CASE WHEN options ? 'timeout' THEN EXCLUDED.default_timeout
                                   ELSE q.default_timeout END;
END;
$$;

CREATE OR REPLACE FUNCTION pq_check_enqueue(caller text, queue_name text, timeout integer, result_ttl integer,
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

CREATE OR REPLACE FUNCTION pq_enqueue(
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
RETURNS bigint
LANGUAGE sql SECURITY DEFINER AS $$
    SELECT (pq_enqueue_job(queue_name, func, args, kwargs, timeout, result_ttl, description,
                           scheduled_for, instance)).id;
$$;

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

CREATE OR REPLACE FUNCTION pq_requeue(job_id bigint)
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

CREATE OR REPLACE FUNCTION pq_unregister_worker(worker_name text)
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM pq_worker w WHERE w.name = worker_name;
    PERFORM pq_fail_abandoned();
END;
$$;

CREATE OR REPLACE FUNCTION pq_reap_workers()
RETURNS integer
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM pq_worker w WHERE w.name IN (
        SELECT d.name FROM pq_worker d WHERE d.expires_at < now() FOR UPDATE SKIP LOCKED);
    RETURN pq_fail_abandoned();
END;
$$;

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
