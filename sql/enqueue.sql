-- Enqueueing: pq_enqueue (returns the id; the public SQL API), _pq_enqueue_job (returns
-- the whole new row; what Python uses to build its Job without a second round trip) and
-- pq_enqueue_many (a batch in one statement).

-- Limits on what one job may carry, refused up front with PQ001 so that no row a worker
-- cannot read or run gets in:
--   args and kwargs: at most 1 MiB (1,048,576 bytes) each, as PostgreSQL stores the jsonb
--     (pg_column_size: read from the value's header, so checking costs nothing per call);
--   description: at most 1,000 characters;
--   scheduled_for: finite and before 9999-12-31 00:00 UTC, one day short of year 10000, so
--     that it fits a Python datetime in every time zone (a worker reads it back).

-- _pq_check_enqueue(caller, queue_name, timeout, result_ttl, description, scheduled_for):
-- raise PQ001, naming the caller, unless a job may be enqueued on queue_name with these
-- options (see the limits above).
CREATE FUNCTION _pq_check_enqueue(caller text, queue_name text, timeout integer, result_ttl integer,
                                 description text DEFAULT NULL, scheduled_for timestamptz DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    PERFORM _pq_check_queue_name(queue_name);
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

-- _pq_check_retry(caller, priority, max_retries, retry_intervals): raise PQ001, naming the
-- caller, unless priority is -100 to 100 (Django's range), max_retries 0 or more and every
-- retry interval a number of seconds, 0 or more.
CREATE FUNCTION _pq_check_retry(caller text, priority integer, max_retries integer,
                                retry_intervals integer[])
RETURNS void
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF priority IS NULL OR priority NOT BETWEEN -100 AND 100 THEN
        RAISE EXCEPTION '%: priority must be from -100 to 100 (higher runs first), got %',
                caller, coalesce(priority::text, 'NULL')
            USING ERRCODE = 'PQ001', HINT = 'Use 0 for the default priority.';
    END IF;
    IF max_retries IS NULL OR max_retries < 0 THEN
        RAISE EXCEPTION '%: max_retries must be 0 or more, got %', caller, coalesce(max_retries::text, 'NULL')
            USING ERRCODE = 'PQ001', HINT = 'Use 0 for no retry.';
    END IF;
    IF array_position(retry_intervals, NULL) IS NOT NULL OR NOT 0 <= ALL (retry_intervals) THEN
        RAISE EXCEPTION '%: retry_intervals must be seconds, 0 or more, got %', caller, retry_intervals
            USING ERRCODE = 'PQ001', HINT = 'For example ''{10,30,60}'': the last one repeats.';
    END IF;
END;
$$;

-- _pq_is_func_name(func): whether func is a dotted path to a function, module and name
-- ('myapp.tasks.send_mail', 'myapp.tasks.Mailer.send'): what a worker can import. A bare
-- name ('send_mail') names no module, so no worker could import it.
CREATE FUNCTION _pq_is_func_name(func text)
RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT func ~ '^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$';
$$;

-- _pq_check_call(caller, func, args, kwargs, instance): raise PQ001, naming the caller,
-- unless func names what a worker can run, args is a JSON array and kwargs a JSON object,
-- each within its size limit (see the limits above).
-- func is a dotted path to a function ('myapp.tasks.send_mail'), or, when instance (a
-- pickled object) is given, the name of one of its methods ('send').
CREATE FUNCTION _pq_check_call(caller text, func text, args jsonb, kwargs jsonb,
                              instance bytea DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF instance IS NULL AND NOT coalesce(_pq_is_func_name(func), false) THEN
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

-- pq_enqueue(queue_name, func, args, kwargs, ...): add a job and return its id.
-- _pq_enqueue_job(...), same arguments: add a job and return its row.
-- func is a dotted path importable by the workers ('myapp.tasks.send_mail'), or with
-- instance (a pickled object, as Python enqueues instance methods) a method name of it;
-- args a JSON array and kwargs a JSON object of the arguments. The queue is created if it does not exist.
-- A job with scheduled_for in the future gets status 'scheduled' and runs when it is due.
-- priority (-100 to 100, default 0): within its queue a higher priority runs first.
-- max_retries (default 0) and retry_intervals (seconds; the last repeats; NULL: at once): a
-- failed run is retried that many times (see pq_fail) before the job is failed for good.
-- Limits (PQ001 beyond them): args and kwargs 1 MiB each (pg_column_size), description
-- 1,000 characters, scheduled_for before 9999-12-31 UTC.
-- Locks: none beyond the inserted row (a new queue row is inserted once).
-- Notifies: channel pq_jobs with the queue name as payload, through the trigger on pq_job,
-- delivered when the transaction commits (never if it rolls back).
-- Security definer, both: a role needs only EXECUTE on them, no rights on the tables
-- (Django's Queue.enqueue calls _pq_enqueue_job).
CREATE FUNCTION _pq_enqueue_job(
    queue_name text,
    func text,
    args jsonb DEFAULT '[]',
    kwargs jsonb DEFAULT '{}',
    timeout integer DEFAULT NULL,
    result_ttl integer DEFAULT NULL,
    description text DEFAULT NULL,
    scheduled_for timestamptz DEFAULT NULL,
    instance bytea DEFAULT NULL,
    priority integer DEFAULT 0,
    max_retries integer DEFAULT 0,
    retry_intervals integer[] DEFAULT NULL
)
RETURNS pq_job
LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    v_job pq_job;
BEGIN
    -- One cheap test first; the checks that raise the detailed errors run only if it fails.
    IF NOT coalesce(length(queue_name) BETWEEN 1 AND 100 AND queue_name <> 'failed'
                    AND (timeout IS NULL OR timeout > 0) AND (result_ttl IS NULL OR result_ttl >= -1)
                    AND CASE WHEN instance IS NULL THEN _pq_is_func_name(func)
                             ELSE func ~ '^[A-Za-z_][A-Za-z0-9_]*$' END
                    AND jsonb_typeof(args) = 'array' AND jsonb_typeof(kwargs) = 'object'
                    AND pg_column_size(args) <= 1048576 AND pg_column_size(kwargs) <= 1048576
                    AND (description IS NULL OR length(description) <= 1000)
                    AND (scheduled_for IS NULL OR scheduled_for < '9999-12-31 00:00:00+00')
                    AND priority BETWEEN -100 AND 100 AND max_retries >= 0
                    AND (retry_intervals IS NULL OR (array_position(retry_intervals, NULL) IS NULL
                                                     AND 0 <= ALL (retry_intervals))), false) THEN
        PERFORM _pq_check_enqueue('pq_enqueue', queue_name, timeout, result_ttl, description, scheduled_for);
        PERFORM _pq_check_call('pq_enqueue', func, args, kwargs, instance);
        PERFORM _pq_check_retry('pq_enqueue', priority, max_retries, retry_intervals);
    END IF;

    PERFORM _pq_ensure_queue(queue_name);

    INSERT INTO pq_job (queue, origin, status, func, args, kwargs, instance, description,
                        timeout, result_ttl, scheduled_for, priority, max_retries, retry_intervals)
    VALUES (queue_name, queue_name,
            CASE WHEN scheduled_for > now() THEN 'scheduled' ELSE 'queued' END,
            func, args, kwargs, instance, description, timeout, result_ttl,
            CASE WHEN scheduled_for > now() THEN scheduled_for END,
            priority, max_retries, retry_intervals)
    RETURNING * INTO v_job;
    RETURN v_job;
END;
$$;
COMMENT ON FUNCTION _pq_enqueue_job(text, text, jsonb, jsonb, integer, integer, text, timestamptz, bytea,
                                    integer, integer, integer[]) IS
    'Enqueue a django-pq job as pq_enqueue does, returning the new pq_job row. Limits: args and kwargs 1 MiB each, description 1000 characters, scheduled_for before 9999-12-31 UTC.';

CREATE FUNCTION pq_enqueue(
    queue_name text,
    func text,
    args jsonb DEFAULT '[]',
    kwargs jsonb DEFAULT '{}',
    timeout integer DEFAULT NULL,
    result_ttl integer DEFAULT NULL,
    description text DEFAULT NULL,
    scheduled_for timestamptz DEFAULT NULL,
    instance bytea DEFAULT NULL,
    priority integer DEFAULT 0,
    max_retries integer DEFAULT 0,
    retry_intervals integer[] DEFAULT NULL
)
RETURNS bigint
LANGUAGE sql SECURITY DEFINER AS $$
    SELECT (_pq_enqueue_job(queue_name, func, args, kwargs, timeout, result_ttl, description,
                           scheduled_for, instance, priority, max_retries, retry_intervals)).id;
$$;
COMMENT ON FUNCTION pq_enqueue(text, text, jsonb, jsonb, integer, integer, text, timestamptz, bytea,
                               integer, integer, integer[]) IS
    'Enqueue a django-pq job: pq_enqueue(queue, ''module.func'', args jsonb array, kwargs jsonb object, ..., priority, max_retries, retry_intervals) returns the job id. Limits: args and kwargs 1 MiB each, description 1000 characters, scheduled_for before 9999-12-31 UTC.';

-- pq_enqueue_many(queue_name, funcs, args, kwargs, timeout, result_ttl, priority,
-- max_retries, retry_intervals): add one job per element of funcs (args[i] and kwargs[i]
-- its arguments; NULL arrays or elements mean none) in one statement, and return their ids
-- in order; the options apply to every job. Errors name the offending element.
-- Limits (PQ001 beyond them): each element's args and kwargs 1 MiB (pg_column_size).
-- Locks: none beyond the inserted rows. Notifies: pq_jobs once per queue and transaction
-- (PostgreSQL folds the trigger's identical notifications), at commit.
-- Security definer, as pq_enqueue.
CREATE FUNCTION pq_enqueue_many(
    queue_name text,
    funcs text[],
    args jsonb[] DEFAULT NULL,
    kwargs jsonb[] DEFAULT NULL,
    timeout integer DEFAULT NULL,
    result_ttl integer DEFAULT NULL,
    priority integer DEFAULT 0,
    max_retries integer DEFAULT 0,
    retry_intervals integer[] DEFAULT NULL
)
RETURNS SETOF bigint
LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    v_count integer := coalesce(cardinality(funcs), 0);
    v_item record;
BEGIN
    PERFORM _pq_check_enqueue('pq_enqueue_many', queue_name, timeout, result_ttl);
    PERFORM _pq_check_retry('pq_enqueue_many', priority, max_retries, retry_intervals);
    IF cardinality(args) <> v_count OR cardinality(kwargs) <> v_count THEN
        RAISE EXCEPTION 'pq_enqueue_many: % funcs but % args and % kwargs',
                v_count, cardinality(args), cardinality(kwargs)
            USING ERRCODE = 'PQ001', HINT = 'Pass one args and one kwargs element per func, or NULL arrays.';
    END IF;
    FOR v_item IN
        SELECT c.n, c.func, coalesce(c.args, '[]') AS args, coalesce(c.kwargs, '{}') AS kwargs
          FROM unnest(funcs, args, kwargs) WITH ORDINALITY AS c (func, args, kwargs, n)
         WHERE NOT coalesce(_pq_is_func_name(c.func), false)
            OR jsonb_typeof(coalesce(c.args, '[]')) <> 'array'
            OR jsonb_typeof(coalesce(c.kwargs, '{}')) <> 'object'
            OR pg_column_size(c.args) > 1048576 OR pg_column_size(c.kwargs) > 1048576
         LIMIT 1
    LOOP
        PERFORM _pq_check_call(format('pq_enqueue_many: job %s', v_item.n), v_item.func, v_item.args, v_item.kwargs);
    END LOOP;
    IF v_count = 0 THEN
        RETURN;
    END IF;
    PERFORM _pq_ensure_queue(queue_name);
    RETURN QUERY
        INSERT INTO pq_job (queue, origin, func, args, kwargs, timeout, result_ttl, priority,
                            max_retries, retry_intervals)
        SELECT queue_name, queue_name, c.func, coalesce(c.args, '[]'), coalesce(c.kwargs, '{}'),
               pq_enqueue_many.timeout, pq_enqueue_many.result_ttl, pq_enqueue_many.priority,
               pq_enqueue_many.max_retries, pq_enqueue_many.retry_intervals
          FROM unnest(funcs, args, kwargs) WITH ORDINALITY AS c (func, args, kwargs, n)
         ORDER BY c.n
     RETURNING id;
END;
$$;
COMMENT ON FUNCTION pq_enqueue_many(text, text[], jsonb[], jsonb[], integer, integer, integer, integer,
                                    integer[]) IS
    'Enqueue a batch of django-pq jobs on one queue in one statement; returns their ids in order. Limits: args and kwargs 1 MiB per job.';
