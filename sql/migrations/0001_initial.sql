-- Frozen django-pq SQL migration 0001_initial: never edit; add a new migration instead.
-- django-pq schema: queues, jobs, workers and flows.
--
-- This file is the current truth for the tables. It is written for the whole feature set
-- (scheduled, repeating, serial and flow jobs) so later features need no table rewrite.
-- Every object starts with pq_. Errors raised by pq functions use SQLSTATE class 'PQ':
--   PQ001 invalid argument      PQ002 unknown queue option   PQ003 job not found
--   PQ004 job in the wrong state for the call                 PQ005 worker name taken

CREATE TABLE pq_queue (
    name            text PRIMARY KEY
                    CHECK (name <> '' AND length(name) <= 100),
    -- A serial queue runs one job at a time: pq_dequeue hands out none of its jobs while
    -- one is 'started'. The lock is that started job itself, so it is released whenever
    -- the job ends, also when it is failed as abandoned after its worker died.
    serial          boolean NOT NULL DEFAULT false,
    -- Default timeout (seconds) for jobs enqueued with none; NULL: the worker's setting.
    default_timeout integer CHECK (default_timeout > 0),
    created_at      timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE pq_queue IS
    'django-pq queues. A row is created by pq_enqueue on first use or by pq_create_queue.';

CREATE TABLE pq_flow (
    id          bigserial PRIMARY KEY,
    name        text,
    queue       text NOT NULL REFERENCES pq_queue (name) ON UPDATE CASCADE,
    status      text NOT NULL DEFAULT 'queued',
    jobs        bigint[] NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now(),
    ended_at    timestamptz,
    expires_at  timestamptz
);
CREATE INDEX pq_flow_name ON pq_flow (name);
COMMENT ON TABLE pq_flow IS 'django-pq workflows: jobs run in sequence, each after the previous one.';

CREATE TABLE pq_job (
    id              bigserial PRIMARY KEY,
    -- The queue the job is in now (failed jobs are in ''failed'') and the queue it was enqueued on.
    -- No foreign key to pq_queue: its check would lock the queue row on every enqueue, a
    -- hot spot for concurrent enqueuers. pq_enqueue creates missing queue rows, and a job
    -- whose queue row is gone is dequeued with the default options.
    queue           text NOT NULL,
    origin          text NOT NULL,
    status          text NOT NULL DEFAULT 'queued'
                    CHECK (status IN ('queued', 'scheduled', 'deferred', 'started', 'finished', 'failed')),
    -- What to run: a dotted path (module.function or module.Class.method), or a method
    -- name of the pickled object in instance.
    func            text NOT NULL CHECK (func <> ''),
    args            jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(args) = 'array'),
    kwargs          jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(kwargs) = 'object'),
    instance        bytea,
    description     text,
    -- Seconds the job may run (NULL: queue default, then the worker's PQ_DEFAULT_JOB_TIMEOUT)
    -- and seconds its result is kept (NULL: the worker's PQ_DEFAULT_RESULT_TTL; 0: deleted
    -- when done; -1: kept forever).
    timeout         integer CHECK (timeout > 0),
    result_ttl      integer CHECK (result_ttl >= -1),
    result          jsonb,
    exc_info        text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    enqueued_at     timestamptz NOT NULL DEFAULT now(),
    -- Scheduling: the time a ''scheduled'' job becomes due; repeat counts remaining runs
    -- (-1: forever), repeat_until bounds them by time; between_* is a daily time window,
    -- weekdays the allowed ISO days (0 = Monday).
    scheduled_for   timestamptz,
    repeat          integer NOT NULL DEFAULT 0 CHECK (repeat >= -1),
    repeat_until    timestamptz,
    repeat_interval interval,
    between_start   time,
    between_end     time,
    weekdays        smallint[],
    -- Flows: a ''deferred'' job waits for depends_on to finish.
    flow_id         bigint REFERENCES pq_flow (id) ON DELETE SET NULL,
    depends_on      bigint,
    worker          text,
    started_at      timestamptz,
    ended_at        timestamptz,
    expires_at      timestamptz,
    CHECK (status <> 'scheduled' OR scheduled_for IS NOT NULL)
);
COMMENT ON TABLE pq_job IS 'django-pq jobs. Use pq_enqueue to add one; workers use pq_dequeue.';

-- The ready jobs of a queue in FIFO order: what pq_dequeue reads. Partial, so finished
-- and failed rows (most of the table on a busy system) are not in it.
CREATE INDEX pq_job_queued ON pq_job (queue, id) WHERE status = 'queued';
CREATE INDEX pq_job_scheduled ON pq_job (queue, scheduled_for) WHERE status = 'scheduled';
CREATE INDEX pq_job_started ON pq_job (worker) WHERE status = 'started';
CREATE INDEX pq_job_started_queue ON pq_job (queue) WHERE status = 'started';
CREATE INDEX pq_job_expires ON pq_job (expires_at) WHERE expires_at IS NOT NULL;
CREATE INDEX pq_job_depends_on ON pq_job (depends_on) WHERE depends_on IS NOT NULL;
-- Failed jobs are kept until requeued or deleted: what the failed queue's count reads.
-- (No general (queue, status) index: the planner preferred it to pq_job_queued for claims
-- on stale statistics, then sorted every queued row; a measured 50 ms claim of 100 jobs.)
CREATE INDEX pq_job_failed ON pq_job (queue) WHERE status = 'failed';

CREATE TABLE pq_worker (
    name            text PRIMARY KEY CHECK (name <> ''),
    hostname        text NOT NULL DEFAULT '',
    pid             integer,
    queues          text[] NOT NULL DEFAULT '{}',
    started_at      timestamptz NOT NULL DEFAULT now(),
    heartbeat_at    timestamptz NOT NULL DEFAULT now(),
    -- A worker whose heartbeat is older than expires_at is dead: its started jobs are
    -- failed as abandoned by pq_reap_workers.
    expires_at      timestamptz NOT NULL,
    -- Set (from the admin or SQL) to ask the worker to stop after its current job.
    stop            boolean NOT NULL DEFAULT false
);
COMMENT ON TABLE pq_worker IS 'django-pq workers, registered by pq_register_worker with a heartbeat.';

INSERT INTO pq_queue (name) VALUES ('default'), ('failed');
INSERT INTO pq_queue (name, serial) VALUES ('serial', true);

-- Notifications: wake the workers listening on channel pq_jobs.
--
-- One channel for every queue, the payload being the queue name: workers LISTEN on the
-- constant channel and filter by payload, so no queue name is ever written into SQL text.
-- NOTIFY is transactional: it is delivered at commit, never for a rolled back enqueue, and
-- PostgreSQL folds identical notifications of one transaction into one, so a bulk insert
-- into a queue sends one wake-up, not one per job.

-- pq_notify_job(): AFTER UPDATE row trigger on pq_job; notifies pq_jobs with the queue
-- name when a row becomes 'queued' (requeued, released). Locks: none.
CREATE FUNCTION pq_notify_job()
RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('pq_jobs', NEW.queue);
    RETURN NULL;
END;
$$;
COMMENT ON FUNCTION pq_notify_job() IS 'Trigger: NOTIFY pq_jobs with the queue name when a job becomes ready.';

-- pq_notify_jobs(): AFTER INSERT statement trigger on pq_job; notifies pq_jobs once per
-- queue that got 'queued' rows from the statement (a bulk insert: one call, not one per
-- row). Locks: none.
CREATE FUNCTION pq_notify_jobs()
RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('pq_jobs', n.queue)
       FROM (SELECT DISTINCT j.queue FROM pq_new_jobs j WHERE j.status = 'queued') AS n;
    RETURN NULL;
END;
$$;
COMMENT ON FUNCTION pq_notify_jobs() IS 'Trigger: NOTIFY pq_jobs once per queue an insert added ready jobs to.';

CREATE TRIGGER pq_job_900_notify_insert
    AFTER INSERT ON pq_job
    REFERENCING NEW TABLE AS pq_new_jobs
    FOR EACH STATEMENT
    EXECUTE FUNCTION pq_notify_jobs();

CREATE TRIGGER pq_job_900_notify_update
    AFTER UPDATE OF status ON pq_job
    FOR EACH ROW WHEN (NEW.status = 'queued' AND OLD.status IS DISTINCT FROM 'queued')
    EXECUTE FUNCTION pq_notify_job();

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
COMMENT ON FUNCTION pq_create_queue(text, jsonb) IS
    'Create a django-pq queue or change its options ({"serial": bool, "timeout": seconds}).';

-- pq_check_queue_name(queue_name): raise PQ001 unless queue_name is a usable queue name.
CREATE FUNCTION pq_check_queue_name(queue_name text)
RETURNS void
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF queue_name IS NULL OR queue_name = '' OR length(queue_name) > 100 THEN
        RAISE EXCEPTION 'invalid queue name %: a queue name is 1 to 100 characters', coalesce(quote_literal(queue_name), 'NULL')
            USING ERRCODE = 'PQ001', HINT = 'Use a short name such as ''default'' or ''emails''.';
    END IF;
END;
$$;

-- pq_ensure_queue(queue_name): create the queue with default options if it does not exist.
-- Locks: a new queue row. Notifies: nothing.
CREATE FUNCTION pq_ensure_queue(queue_name text)
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pq_queue q WHERE q.name = queue_name) THEN
        INSERT INTO pq_queue (name) VALUES (queue_name) ON CONFLICT DO NOTHING;
    END IF;
END;
$$;
COMMENT ON FUNCTION pq_ensure_queue(text) IS 'Create a django-pq queue with default options unless it exists.';

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

-- Enqueueing: pq_enqueue (returns the id; the public SQL API), pq_enqueue_job (returns
-- the whole new row; what Python uses to build its Job without a second round trip) and
-- pq_enqueue_many (a batch in one statement).

-- pq_check_enqueue(caller, queue_name, timeout, result_ttl): raise PQ001, naming the
-- caller, unless a job may be enqueued on queue_name with these options.
CREATE FUNCTION pq_check_enqueue(caller text, queue_name text, timeout integer, result_ttl integer)
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
END;
$$;

-- pq_is_func_name(func): whether func is a dotted Python name ('myapp.tasks.send_mail').
CREATE FUNCTION pq_is_func_name(func text)
RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT func ~ '^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$';
$$;

-- pq_check_call(caller, func, args, kwargs): raise PQ001, naming the caller, unless func is
-- a dotted Python name, args a JSON array and kwargs a JSON object.
CREATE FUNCTION pq_check_call(caller text, func text, args jsonb, kwargs jsonb)
RETURNS void
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF NOT coalesce(pq_is_func_name(func), false) THEN
        RAISE EXCEPTION '%: func % is not a dotted Python name', caller, coalesce(quote_literal(func), 'NULL')
            USING ERRCODE = 'PQ001', HINT = 'Name the function by its import path, e.g. ''myapp.tasks.send_mail''.';
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
    -- One cheap test first; the checks that raise the detailed errors run only if it fails.
    IF NOT coalesce(length(queue_name) BETWEEN 1 AND 100 AND queue_name <> 'failed'
                    AND (timeout IS NULL OR timeout > 0) AND (result_ttl IS NULL OR result_ttl >= -1)
                    AND pq_is_func_name(func) AND jsonb_typeof(args) = 'array'
                    AND jsonb_typeof(kwargs) = 'object', false) THEN
        PERFORM pq_check_enqueue('pq_enqueue', queue_name, timeout, result_ttl);
        PERFORM pq_check_call('pq_enqueue', func, args, kwargs);
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

-- pq_enqueue_many(queue_name, funcs, args, kwargs, timeout, result_ttl): add one job per
-- element of funcs (args[i] and kwargs[i] its arguments; NULL arrays or elements mean none)
-- in one statement, and return their ids in order. Errors name the offending element.
-- Locks: none beyond the inserted rows. Notifies: pq_jobs once per queue and transaction
-- (PostgreSQL folds the trigger's identical notifications), at commit.
-- Security definer, as pq_enqueue.
CREATE FUNCTION pq_enqueue_many(
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
    'Enqueue a batch of django-pq jobs on one queue in one statement; returns their ids in order.';

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

-- Ending jobs: finishing, failing, requeueing and expiring results.

-- pq_finish_many(job_ids, worker_name, results, default_result_ttl): record the success of
-- jobs, results[i] being the result of job_ids[i]. A result is kept for the job's
-- result_ttl seconds, else default_result_ttl (the worker's PQ_DEFAULT_RESULT_TTL): 0
-- deletes the job at once, -1 keeps it forever. Jobs no longer 'started' by this worker
-- (finished already, or failed as abandoned) are left as they are: finishing is idempotent,
-- so a worker that lost its connection mid-call can safely call it again. Returns how many
-- jobs it finished.
-- Locks: the job rows. Notifies: nothing.
CREATE FUNCTION pq_finish_many(job_ids bigint[], worker_name text, results jsonb[],
                               default_result_ttl integer DEFAULT 500)
RETURNS integer
LANGUAGE plpgsql
SET enable_seqscan = off  -- never a scan of the whole table: see pq_dequeue_many
AS $$
DECLARE
    v_deleted integer;
    v_updated integer;
BEGIN
    IF cardinality(job_ids) IS DISTINCT FROM cardinality(results) THEN
        RAISE EXCEPTION 'pq_finish_many: % job ids but % results', cardinality(job_ids), cardinality(results)
            USING ERRCODE = 'PQ001', HINT = 'Pass one result (NULL for none) per job id.';
    END IF;
    DELETE FROM pq_job j
     WHERE j.id = ANY (job_ids) AND j.status = 'started' AND j.worker = worker_name
       AND coalesce(j.result_ttl, default_result_ttl) = 0;
    GET DIAGNOSTICS v_deleted = ROW_COUNT;
    UPDATE pq_job j
       SET status = 'finished', result = done.result, ended_at = now(),
           expires_at = CASE WHEN coalesce(j.result_ttl, default_result_ttl) < 0 THEN NULL
                             ELSE now() + make_interval(secs => coalesce(j.result_ttl, default_result_ttl)) END
      FROM unnest(job_ids, results) AS done (id, result)
     WHERE j.id = done.id AND j.status = 'started' AND j.worker = worker_name;
    GET DIAGNOSTICS v_updated = ROW_COUNT;
    RETURN v_deleted + v_updated;
END;
$$;
COMMENT ON FUNCTION pq_finish_many(bigint[], text, jsonb[], integer) IS
    'Mark started django-pq jobs finished with their results; returns how many were.';

-- pq_finish(job_id, worker_name, result, default_result_ttl): pq_finish_many for one job;
-- false when the job is no longer 'started' by this worker.
CREATE FUNCTION pq_finish(job_id bigint, worker_name text, result jsonb DEFAULT NULL,
                          default_result_ttl integer DEFAULT 500)
RETURNS boolean
LANGUAGE sql AS $$
    SELECT pq_finish_many(ARRAY[job_id], worker_name, ARRAY[result], default_result_ttl) = 1;
$$;
COMMENT ON FUNCTION pq_finish(bigint, text, jsonb, integer) IS
    'Mark a started django-pq job finished with its result; false if it is not started by that worker.';

-- pq_finish_dequeue(job_ids, results, worker_name, default_result_ttl, queue_names, max_jobs):
-- pq_finish_many then pq_dequeue_many in one call, so a worker reports what it did and gets
-- its next jobs in one round trip. Locks and notifies as those two.
CREATE FUNCTION pq_finish_dequeue(job_ids bigint[], results jsonb[], worker_name text,
                                  default_result_ttl integer, queue_names text[],
                                  max_jobs integer DEFAULT 1)
RETURNS SETOF pq_job
LANGUAGE plpgsql AS $$
BEGIN
    IF cardinality(job_ids) > 0 THEN
        PERFORM pq_finish_many(job_ids, worker_name, results, default_result_ttl);
    END IF;
    RETURN QUERY SELECT * FROM pq_dequeue_many(queue_names, worker_name, max_jobs);
END;
$$;
COMMENT ON FUNCTION pq_finish_dequeue(bigint[], jsonb[], text, integer, text[], integer) IS
    'Finish django-pq jobs and claim the next ones in one call.';

-- pq_release(job_ids, worker_name): put jobs a worker claimed but will not run (it is
-- stopping) back in their queues, as they were. Returns how many.
-- Locks: the job rows. Notifies: pq_jobs (trigger on pq_job).
CREATE FUNCTION pq_release(job_ids bigint[], worker_name text)
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_count integer;
BEGIN
    UPDATE pq_job j
       SET status = CASE WHEN j.scheduled_for IS NOT NULL THEN 'scheduled' ELSE 'queued' END,
           worker = NULL, started_at = NULL
     WHERE j.id = ANY (job_ids) AND j.status = 'started' AND j.worker = worker_name;
    GET DIAGNOSTICS v_count = ROW_COUNT;
    RETURN v_count;
END;
$$;
COMMENT ON FUNCTION pq_release(bigint[], text) IS
    'Put django-pq jobs a stopping worker claimed but did not run back in their queues.';

-- pq_fail(job_id, worker_name, exc_info, move_to_failed): record a job's failure with the
-- traceback text. With move_to_failed the job goes to the 'failed' queue (origin keeps
-- its queue); without, it stays in its queue with status 'failed'. Failed jobs are kept
-- until requeued or deleted. Returns false when the job is not 'started' by this worker.
-- Locks: the job row. Notifies: nothing.
CREATE FUNCTION pq_fail(job_id bigint, worker_name text, exc_info text,
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
    RETURN FOUND;
END;
$$;
COMMENT ON FUNCTION pq_fail(bigint, text, text, boolean) IS
    'Mark a started django-pq job failed with its traceback and move it to the failed queue.';

-- pq_requeue(job_id): put a failed job back on its origin queue as a new 'queued' job
-- (same id, traceback and result cleared). Raises PQ003 if there is no such job and PQ004
-- if it has not failed. Locks: the job row. Notifies: pq_jobs (trigger on pq_job).
CREATE FUNCTION pq_requeue(job_id bigint)
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
COMMENT ON FUNCTION pq_requeue(bigint) IS 'Put a failed django-pq job back on its origin queue.';

-- pq_expire_jobs(): delete jobs whose result TTL has run out, at most 10,000 a call, and
-- return how many. Locks: the deleted rows (SKIP LOCKED, so it never waits). Notifies: nothing.
CREATE FUNCTION pq_expire_jobs()
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_count integer;
BEGIN
    DELETE FROM pq_job j WHERE j.id = ANY (ARRAY(  -- run once: see pq_dequeue_many
        SELECT e.id FROM pq_job e WHERE e.expires_at < now()
         LIMIT 10000 FOR UPDATE SKIP LOCKED));
    GET DIAGNOSTICS v_count = ROW_COUNT;
    DELETE FROM pq_flow f WHERE f.expires_at < now();
    RETURN v_count;
END;
$$;
COMMENT ON FUNCTION pq_expire_jobs() IS 'Delete django-pq jobs whose result TTL has expired; returns the count.';

-- Workers: registration, heartbeats and the detection of dead workers.
--
-- A worker registers under a unique name and renews expires_at with a heartbeat. A worker
-- whose expires_at has passed is dead (killed, its host gone): pq_reap_workers deletes it
-- and fails its started jobs as abandoned, so no job is left 'started' forever.

-- pq_register_worker(worker_name, queue_names, ttl, hostname, pid, keep_jobs): register a
-- worker alive for ttl seconds. Raises PQ005 if a live worker (one whose heartbeat has not
-- expired) with another hostname or pid already has that name.
-- A worker registering again under its own hostname and pid is reconnecting after losing
-- its connection: a job it claimed but never received (the connection dropped during
-- pq_dequeue) is still 'started' by it, so its started jobs other than keep_jobs (those it
-- ran or still runs, whose outcome it has yet to store) are put back; they never ran.
-- Locks: the worker row and its started jobs. Notifies: pq_jobs for jobs put back.
CREATE FUNCTION pq_register_worker(worker_name text, queue_names text[], ttl integer,
                                   hostname text DEFAULT '', pid integer DEFAULT NULL,
                                   keep_jobs bigint[] DEFAULT '{}')
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
    PERFORM pq_reap_workers();
    -- Insert, or take over our own row; a row of another live worker (also one inserted
    -- concurrently: ON CONFLICT waits for its transaction) is left alone and raises PQ005.
    INSERT INTO pq_worker AS w (name, hostname, pid, queues, expires_at)
    VALUES (worker_name, hostname, pid, queue_names, now() + make_interval(secs => ttl))
    ON CONFLICT (name) DO UPDATE
        SET queues = EXCLUDED.queues, heartbeat_at = now(), expires_at = EXCLUDED.expires_at
        WHERE w.hostname = EXCLUDED.hostname AND w.pid IS NOT DISTINCT FROM EXCLUDED.pid
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
COMMENT ON FUNCTION pq_register_worker(text, text[], integer, text, integer, bigint[]) IS
    'Register a django-pq worker alive for ttl seconds; PQ005 if a live worker has the name.';

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
    PERFORM pq_fail_abandoned();
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
    RETURN pq_fail_abandoned();
END;
$$;
COMMENT ON FUNCTION pq_reap_workers() IS
    'Delete django-pq workers whose heartbeat expired and fail their started jobs as abandoned.';

-- pq_fail_abandoned(): fail, into the failed queue, every 'started' job whose worker is not
-- registered any more. Returns how many. Locks: those jobs (SKIP LOCKED).
CREATE FUNCTION pq_fail_abandoned()
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_count integer;
BEGIN
    PERFORM pq_ensure_queue('failed');
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
           FOR UPDATE SKIP LOCKED);
    GET DIAGNOSTICS v_count = ROW_COUNT;
    RETURN v_count;
END;
$$;
COMMENT ON FUNCTION pq_fail_abandoned() IS
    'Fail the started django-pq jobs whose worker is no longer registered.';

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

-- Security: what a role that only enqueues may do.
--
-- pq_enqueue is SECURITY DEFINER: it runs with its owner's rights, so a role needs only
-- EXECUTE on it to enqueue, and no rights on the tables. Grant it explicitly:
--     GRANT EXECUTE ON FUNCTION pq_enqueue(text, text, jsonb, jsonb, integer, integer, text,
--                                          timestamptz, bytea) TO my_app_role;
-- (and likewise pq_enqueue_many). Enqueueing names a function for the workers to run, so
-- neither is granted to PUBLIC.
-- A SECURITY DEFINER function must not find objects through the caller's search_path (a
-- caller could shadow pq_job with a temporary table), so it is pinned to this schema.
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
