-- django-pq SQL migration 0002: one rule for what a job's function may be.
-- A job without an instance names a dotted path to a function (module.function): a bare
-- name such as 'say_hello' names no module, so no worker could import it, and Python
-- refused it while SQL accepted it. With an instance (a pickled object), func names one of
-- its methods. The same functions as in sql/enqueue.sql, which stays the truth for fresh
-- installs. Frozen once released: never edit; add a new migration instead.

CREATE OR REPLACE FUNCTION pq_is_func_name(func text)
RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT func ~ '^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$';
$$;

DROP FUNCTION pq_check_call(text, text, jsonb, jsonb);
CREATE FUNCTION pq_check_call(caller text, func text, args jsonb, kwargs jsonb,
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
LANGUAGE plpgsql AS $$
DECLARE
    v_job pq_job;
BEGIN
    -- One cheap test first; the checks that raise the detailed errors run only if it fails.
    IF NOT coalesce(length(queue_name) BETWEEN 1 AND 100 AND queue_name <> 'failed'
                    AND (timeout IS NULL OR timeout > 0) AND (result_ttl IS NULL OR result_ttl >= -1)
                    AND CASE WHEN instance IS NULL THEN pq_is_func_name(func)
                             ELSE func ~ '^[A-Za-z_][A-Za-z0-9_]*$' END
                    AND jsonb_typeof(args) = 'array' AND jsonb_typeof(kwargs) = 'object', false) THEN
        PERFORM pq_check_enqueue('pq_enqueue', queue_name, timeout, result_ttl);
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
