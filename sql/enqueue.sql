-- Enqueueing: pq_enqueue (returns the id; the public SQL API) and pq_enqueue_job (returns
-- the whole new row; what Python uses to build its Job without a second round trip).

-- pq_enqueue(queue_name, func, args, kwargs, ...): add a job and return its id.
-- pq_enqueue_job(...), same arguments: add a job and return its row.
-- func is a dotted path importable by the workers ('myapp.tasks.send_mail'); args a JSON
-- array and kwargs a JSON object of the arguments. The queue is created if it does not exist.
-- A job with scheduled_for in the future gets status 'scheduled' and runs when it is due.
-- Locks: none beyond the inserted row (a new queue row is inserted once).
-- Notifies: channel pq_jobs with the queue name as payload, through the trigger on pq_job,
-- delivered when the transaction commits (never if it rolls back).
-- Security definer: a role needs only EXECUTE on this function, no rights on the tables.
CREATE FUNCTION pq_enqueue_job(
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
LANGUAGE plpgsql AS $$
DECLARE
    v_job pq_job;
BEGIN
    PERFORM pq_check_queue_name(queue_name);
    IF queue_name = 'failed' THEN
        RAISE EXCEPTION 'pq_enqueue: cannot enqueue on the failed queue'
            USING ERRCODE = 'PQ001', HINT = 'Enqueue on the job''s own queue; failed jobs are moved there by workers.';
    END IF;
    IF func IS NULL OR func !~ '^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$' THEN
        RAISE EXCEPTION 'pq_enqueue: func % is not a dotted Python name', coalesce(quote_literal(func), 'NULL')
            USING ERRCODE = 'PQ001', HINT = 'Name the function by its import path, e.g. ''myapp.tasks.send_mail''.';
    END IF;
    IF args IS NULL OR jsonb_typeof(args) <> 'array' THEN
        RAISE EXCEPTION 'pq_enqueue: args must be a JSON array, got %', coalesce(jsonb_typeof(args), 'NULL')
            USING ERRCODE = 'PQ001', HINT = 'Pass positional arguments as an array, e.g. ''["a", 1]''::jsonb.';
    END IF;
    IF kwargs IS NULL OR jsonb_typeof(kwargs) <> 'object' THEN
        RAISE EXCEPTION 'pq_enqueue: kwargs must be a JSON object, got %', coalesce(jsonb_typeof(kwargs), 'NULL')
            USING ERRCODE = 'PQ001', HINT = 'Pass keyword arguments as an object, e.g. ''{"name": "Bob"}''::jsonb.';
    END IF;
    IF timeout IS NOT NULL AND timeout <= 0 THEN
        RAISE EXCEPTION 'pq_enqueue: timeout must be a positive number of seconds, got %', timeout
            USING ERRCODE = 'PQ001', HINT = 'Pass NULL to use the queue''s or the worker''s default timeout.';
    END IF;
    IF result_ttl IS NOT NULL AND result_ttl < -1 THEN
        RAISE EXCEPTION 'pq_enqueue: result_ttl must be -1 (keep forever), 0 (delete at once) or a number of seconds, got %', result_ttl
            USING ERRCODE = 'PQ001';
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
    'Enqueue a django-pq job as pq_enqueue does, returning the new pq_job row.';

CREATE FUNCTION pq_enqueue(
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
COMMENT ON FUNCTION pq_enqueue(text, text, jsonb, jsonb, integer, integer, text, timestamptz, bytea) IS
    'Enqueue a django-pq job: pq_enqueue(queue, ''module.func'', args jsonb array, kwargs jsonb object, ...) returns the job id.';
