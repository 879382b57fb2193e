-- Queues: creating, checking, counting and emptying them.

-- pq_create_queue(queue_name, options): create a queue or change its options.
-- Options (jsonb object): serial (boolean), timeout (positive integer seconds).
-- Locks: the queue row (upsert). Notifies: nothing.
CREATE FUNCTION pq_create_queue(queue_name text, options jsonb DEFAULT '{}')
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_unknown text;
    v_serial boolean;
    v_timeout integer;
BEGIN
    PERFORM _pq_check_queue_name(pq_create_queue.queue_name);
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
COMMENT ON FUNCTION pq_create_queue(text, jsonb) IS
    'Create a django-pq queue or change its options ({"serial": bool, "timeout": seconds}).';

-- _pq_check_queue_name(queue_name): raise PQ001 unless queue_name is a usable queue name.
CREATE FUNCTION _pq_check_queue_name(queue_name text)
RETURNS void
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF queue_name IS NULL OR queue_name = '' OR length(queue_name) > 100 THEN
        RAISE EXCEPTION 'invalid queue name %: a queue name is 1 to 100 characters', coalesce(quote_literal(queue_name), 'NULL')
            USING ERRCODE = 'PQ001', HINT = 'Use a short name such as ''default'' or ''emails''.';
    END IF;
END;
$$;

-- _pq_ensure_queue(queue_name): create the queue with default options if it does not exist.
-- Locks: a new queue row. Notifies: nothing.
CREATE FUNCTION _pq_ensure_queue(queue_name text)
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pq_queue q WHERE q.name = queue_name) THEN
        INSERT INTO pq_queue (name) VALUES (queue_name) ON CONFLICT DO NOTHING;
    END IF;
END;
$$;
COMMENT ON FUNCTION _pq_ensure_queue(text) IS 'Create a django-pq queue with default options unless it exists.';

-- pq_count(queue_name): how many jobs wait in the queue ('queued' now or 'scheduled' for
-- later); for the failed queue, how many failed jobs it holds. Locks: none.
CREATE FUNCTION pq_count(queue_name text)
RETURNS bigint
LANGUAGE sql STABLE AS $$
    SELECT count(*) FROM pq_job j
     WHERE j.queue = queue_name
       AND CASE WHEN queue_name = 'failed' THEN j.status = 'failed'
                ELSE j.status IN ('queued', 'scheduled') END;
$$;
COMMENT ON FUNCTION pq_count(text) IS 'Number of django-pq jobs waiting in a queue (queued or scheduled).';

-- pq_empty_queue(queue_name): delete the jobs waiting in a queue (for the failed queue:
-- its failed jobs) and return how many. Started jobs are left to finish.
-- Locks: the deleted rows (SKIP LOCKED: a job being claimed right now is left alone).
CREATE FUNCTION pq_empty_queue(queue_name text)
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_count integer;
BEGIN
    DELETE FROM pq_job j WHERE j.id IN (
        SELECT e.id FROM pq_job e
         WHERE e.queue = queue_name AND e.status IN ('queued', 'scheduled', 'deferred', 'failed')
           FOR UPDATE SKIP LOCKED);
    GET DIAGNOSTICS v_count = ROW_COUNT;
    RETURN v_count;
END;
$$;
COMMENT ON FUNCTION pq_empty_queue(text) IS 'Delete the django-pq jobs waiting in a queue; returns the count.';

-- pq_remove_empty_queues(): delete the rows of queues nothing needs any more, and return
-- how many: queues with default options (not serial, no timeout), no job waiting, running,
-- deferred or failed in them, and no flow; never default, failed or serial. Finished jobs
-- do not keep their queue (their results stay readable by id). Without it, every queue
-- name ever used (one per customer, per day...) would stay a row forever.
-- A concurrent pq_enqueue may add a job to a queue whose row this deletes (it saw the row,
-- so did not create it, or its job is not committed yet): the job is not lost. Jobs need
-- no queue row (no foreign key), a queue without a row has the default options the
-- deleted row had, workers on all queues find its jobs through pq_job's indexes and those
-- naming it claim it by name; the row comes back with the next pq_enqueue on that queue.
-- Locks: the deleted queue rows (SKIP LOCKED: a queue being changed by pq_create_queue or
-- claimed as serial is left for the next call). Notifies: nothing.
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
