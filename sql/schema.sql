-- django-pq schema: queues, jobs, workers and flows.
--
-- This file is the current truth for the tables. It is written for the whole feature set
-- (scheduled, repeating, serial and flow jobs) so later features need no table rewrite.
-- Every object starts with pq_. Errors raised by pq functions use SQLSTATE class 'PQ':
--   PQ001 invalid argument      PQ002 unknown queue option   PQ003 job not found
--   PQ004 job in the wrong state for the call                 PQ005 worker name taken
--   PQ006 worker not registered (it must call pq_register_worker before claiming jobs)
--   PQ007 flow not found

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
-- The few serial queues, in name order: what a claim over all queues reads first.
CREATE INDEX pq_queue_serial ON pq_queue (name) WHERE serial;
COMMENT ON TABLE pq_queue IS
    'django-pq queues. A row is created by pq_enqueue on first use or by pq_create_queue.';

CREATE TABLE pq_flow (
    id          bigserial PRIMARY KEY,
    name        text,
    queue       text NOT NULL REFERENCES pq_queue (name) ON UPDATE CASCADE,
    -- deferred (being built), started, finished or failed (sql/flow.sql); the default and
    -- the checks are migration 0007's.
    status      text NOT NULL DEFAULT 'deferred',
    -- The flow's jobs, in the order they run.
    jobs        bigint[] NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now(),
    ended_at    timestamptz,
    -- Set when the flow finishes: its final job's expiry (NULL: kept forever).
    expires_at  timestamptz,
    CONSTRAINT pq_flow_name_check CHECK (name <> '' AND length(name) <= 100),
    CONSTRAINT pq_flow_status_check CHECK (status IN ('deferred', 'started', 'finished', 'failed'))
);
CREATE INDEX pq_flow_name ON pq_flow (name);
COMMENT ON TABLE pq_flow IS 'django-pq workflows: jobs run in sequence, each after the previous one.';

-- _pq_job_valid(status, scheduled_for, func, args, kwargs, errors, timeout, result_ttl,
-- repeat, cron, repeat_interval, priority, max_retries, retry_intervals): true when a pq_job
-- row keeps the table's rules; otherwise it raises check_violation (23514, constraint
-- pq_job_valid) naming the rule broken. A NULL passes a rule, as in a CHECK. The one CHECK
-- constraint of pq_job calls it (since migration 0011, which replaced thirteen): PostgreSQL
-- reads every CHECK expression of a table back from its stored text at each statement that
-- writes a row, and reading those thirteen was about a fifth of the server time of an
-- enqueue and of a claim or finish; one call is read for a fraction of that.
-- Locks: none.
CREATE FUNCTION _pq_job_valid(status text, scheduled_for timestamptz, func text, args jsonb,
                              kwargs jsonb, errors jsonb, timeout integer, result_ttl integer,
                              repeat integer, cron text, repeat_interval interval,
                              priority smallint, max_retries integer, retry_intervals integer[])
RETURNS boolean
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    v_rule text;
BEGIN
    IF coalesce(status IN ('queued', 'scheduled', 'deferred', 'started', 'finished', 'failed'), true)
       AND coalesce(status <> 'scheduled' OR scheduled_for IS NOT NULL, true)
       AND coalesce(func <> '', true)
       AND coalesce(jsonb_typeof(args) = 'array', true)
       AND coalesce(jsonb_typeof(kwargs) = 'object', true)
       AND coalesce(jsonb_typeof(errors) = 'array', true)
       AND coalesce(timeout > 0, true)
       AND coalesce(result_ttl >= -1, true)
       AND coalesce(repeat >= -1, true)
       AND coalesce(cron IS NULL OR repeat_interval IS NULL, true)
       AND coalesce(priority BETWEEN -100 AND 100, true)
       AND coalesce(max_retries >= 0, true)
       AND coalesce(0 <= ALL (retry_intervals), true) THEN
        RETURN true;
    END IF;
    v_rule := CASE
        WHEN NOT coalesce(status IN ('queued', 'scheduled', 'deferred', 'started', 'finished', 'failed'), true)
            THEN format('status %L is not one of queued, scheduled, deferred, started, finished, failed', status)
        WHEN NOT coalesce(status <> 'scheduled' OR scheduled_for IS NOT NULL, true)
            THEN 'a scheduled job needs scheduled_for'
        WHEN NOT coalesce(func <> '', true)
            THEN 'func is empty'
        WHEN NOT coalesce(jsonb_typeof(args) = 'array', true)
            THEN format('args must be a JSON array, not %s', jsonb_typeof(args))
        WHEN NOT coalesce(jsonb_typeof(kwargs) = 'object', true)
            THEN format('kwargs must be a JSON object, not %s', jsonb_typeof(kwargs))
        WHEN NOT coalesce(jsonb_typeof(errors) = 'array', true)
            THEN format('errors must be a JSON array, not %s', jsonb_typeof(errors))
        WHEN NOT coalesce(timeout > 0, true)
            THEN format('timeout must be a positive number of seconds, not %s', timeout)
        WHEN NOT coalesce(result_ttl >= -1, true)
            THEN format('result_ttl must be -1 (kept forever) or more, not %s', result_ttl)
        WHEN NOT coalesce(repeat >= -1, true)
            THEN format('repeat must be -1 (forever) or more, not %s', repeat)
        WHEN NOT coalesce(cron IS NULL OR repeat_interval IS NULL, true)
            THEN 'a job repeats by cron or by repeat_interval, not both'
        WHEN NOT coalesce(priority BETWEEN -100 AND 100, true)
            THEN format('priority must be from -100 to 100, not %s', priority)
        WHEN NOT coalesce(max_retries >= 0, true)
            THEN format('max_retries must be 0 or more, not %s', max_retries)
        ELSE format('retry_intervals must be seconds, 0 or more, not %s', retry_intervals)
    END;
    RAISE EXCEPTION 'new row for relation "pq_job" violates check constraint "pq_job_valid": %', v_rule
        USING ERRCODE = 'check_violation', CONSTRAINT = 'pq_job_valid', TABLE = 'pq_job';
END;
$$;
COMMENT ON FUNCTION _pq_job_valid(text, timestamptz, text, jsonb, jsonb, jsonb, integer, integer,
                                  integer, text, interval, smallint, integer, integer[]) IS
    'The rules of a pq_job row (its CHECK constraint pq_job_valid): true, or check_violation naming the rule broken.';

CREATE TABLE pq_job (
    id              bigserial PRIMARY KEY,
    -- The queue the job is in now (failed jobs are in ''failed'') and the queue it was enqueued on.
    -- No foreign key to pq_queue: its check would lock the queue row on every enqueue, a
    -- hot spot for concurrent enqueuers. pq_enqueue creates missing queue rows, and a job
    -- whose queue row is gone is dequeued with the default options.
    queue           text NOT NULL,
    origin          text NOT NULL,
    -- queued, scheduled, deferred, started, finished or failed (_pq_job_valid).
    status          text NOT NULL DEFAULT 'queued',
    -- What to run: a dotted path (module.function or module.Class.method), or a method
    -- name of the pickled object in instance.
    func            text NOT NULL,
    args            jsonb NOT NULL DEFAULT '[]',
    kwargs          jsonb NOT NULL DEFAULT '{}',
    instance        bytea,
    description     text,
    -- Seconds the job may run (NULL: queue default, then the worker's PQ_DEFAULT_JOB_TIMEOUT)
    -- and seconds its result is kept (NULL: the worker's PQ_DEFAULT_RESULT_TTL; 0: deleted
    -- when done; -1: kept forever).
    timeout         integer,
    result_ttl      integer,
    result          jsonb,
    exc_info        text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    enqueued_at     timestamptz NOT NULL DEFAULT now(),
    -- Scheduling: the time a ''scheduled'' job becomes due; repeat counts remaining runs
    -- (-1: forever), repeat_until bounds them by time; between_* is a daily time window,
    -- weekdays the allowed ISO days (0 = Monday).
    scheduled_for   timestamptz,
    repeat          integer NOT NULL DEFAULT 0,
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
    -- Repeating jobs (sql/schedule.sql), added by migration 0005: the time zone their
    -- wall-clock rules (window, weekdays, whole days and months of the interval, cron fields)
    -- are read in; the origin of their interval's grid (their first run); a cron expression
    -- instead of an interval; and the name of a named schedule (pq_schedule_cron, or
    -- pq_schedule with a name).
    time_zone       text,
    repeat_from     timestamptz,
    cron            text,
    schedule_name   text,
    -- Priorities and retries, added by migration 0008: higher priority runs first within a
    -- queue (-100 to 100, Django's range); a job failing with attempts <= max_retries is
    -- run again after retry_intervals[attempts] seconds (the last interval repeats; none:
    -- at once); attempts counts the runs started (a worker's claim adds one); errors holds
    -- one object per failed attempt (attempt, worker, failed_at, exc_info).
    priority        smallint NOT NULL DEFAULT 0,
    max_retries     integer NOT NULL DEFAULT 0,
    retry_intervals integer[],
    attempts        integer NOT NULL DEFAULT 0,
    errors          jsonb NOT NULL DEFAULT '[]',
    -- Every rule on a row's values, in one function (see _pq_job_valid above): args an
    -- array, kwargs an object, a scheduled job has its time, ...
    CONSTRAINT pq_job_valid CHECK (_pq_job_valid(status, scheduled_for, func, args, kwargs, errors,
                                                 timeout, result_ttl, repeat, cron, repeat_interval,
                                                 priority, max_retries, retry_intervals))
);
COMMENT ON TABLE pq_job IS 'django-pq jobs. Use pq_enqueue to add one; workers use pq_dequeue.';

-- The ready jobs of a queue, highest priority first, then FIFO: what pq_dequeue reads
-- (priority since migration 0008). Partial, so finished and failed rows (most of the table
-- on a busy system) are not in it.
CREATE INDEX pq_job_queued ON pq_job (queue, priority DESC, id) WHERE status = 'queued';
CREATE INDEX pq_job_scheduled ON pq_job (queue, scheduled_for) WHERE status = 'scheduled';
-- The due scheduled jobs of every queue, oldest due first: what a claim over all queues
-- (queue_names NULL) and pq_next_due(NULL) read, whatever the number of queues.
CREATE INDEX pq_job_due ON pq_job (scheduled_for, id) WHERE status = 'scheduled';
-- Deferred jobs (flows) by queue: what pq_remove_empty_queues reads to keep their queue.
CREATE INDEX pq_job_deferred ON pq_job (queue) WHERE status = 'deferred';
CREATE INDEX pq_job_started ON pq_job (worker) WHERE status = 'started';
CREATE INDEX pq_job_started_queue ON pq_job (queue) WHERE status = 'started';
CREATE INDEX pq_job_expires ON pq_job (expires_at) WHERE expires_at IS NOT NULL;
CREATE INDEX pq_job_depends_on ON pq_job (depends_on) WHERE depends_on IS NOT NULL;
-- The jobs of each flow: what pq_expire_jobs reads to keep a flow while a job of it is kept,
-- and the foreign key's ON DELETE SET NULL when a flow is deleted (migration 0007).
CREATE INDEX pq_job_flow ON pq_job (flow_id) WHERE flow_id IS NOT NULL;
-- The runs of each named schedule by time: what pq_schedules reads for a schedule's latest
-- run, an interval schedule's too (pq_job_schedule_tick holds cron rows only) (migration 0007).
CREATE INDEX pq_job_schedule_runs ON pq_job (schedule_name, scheduled_for)
    WHERE schedule_name IS NOT NULL;
-- Named schedules: one pending run per name (the row carrying the schedule on; what a
-- replacement upserts on), and one job per cron tick whatever the number of workers (the
-- next tick is inserted ON CONFLICT DO NOTHING). Also what pq_schedules and pq_unschedule
-- read.
CREATE UNIQUE INDEX pq_job_schedule_next ON pq_job (schedule_name)
    WHERE status = 'scheduled' AND repeat <> 0 AND schedule_name IS NOT NULL;
CREATE UNIQUE INDEX pq_job_schedule_tick ON pq_job (schedule_name, scheduled_for)
    WHERE schedule_name IS NOT NULL AND cron IS NOT NULL;
-- Failed jobs are kept until requeued or deleted: what the failed queue's count reads.
-- (No general (queue, status) index: the planner preferred it to pq_job_queued for claims
-- on stale statistics, then sorted every queued row; a measured 50 ms claim of 100 jobs.)
CREATE INDEX pq_job_failed ON pq_job (queue) WHERE status = 'failed';
-- Failed jobs by the queue they came from: what the queues' failed counts (pqinfo, the
-- admin) read; in the failed queue every failed job's queue is 'failed' (migration 0007).
CREATE INDEX pq_job_failed_origin ON pq_job (origin) WHERE status = 'failed';

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
    stop            boolean NOT NULL DEFAULT false,
    -- A random string the worker process chose at start: the same name and token is the
    -- same process reconnecting; the same name, host and pid with another token is a new
    -- process (a restarted container reuses pid 1), so the old one is dead.
    token           text
);
COMMENT ON TABLE pq_worker IS 'django-pq workers, registered by pq_register_worker with a heartbeat.';

INSERT INTO pq_queue (name) VALUES ('default'), ('failed');
INSERT INTO pq_queue (name, serial) VALUES ('serial', true);
