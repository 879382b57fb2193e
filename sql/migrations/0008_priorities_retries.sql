-- django-pq SQL migration 0008: priorities and retries.
-- pq_job gets priority (-100 to 100; a queue's higher priorities are claimed first),
-- max_retries and retry_intervals (a failed run is retried in SQL, by pq_fail and for
-- abandoned jobs), attempts and errors (one entry per failed attempt). pq_enqueue,
-- _pq_enqueue_job, pq_enqueue_many and pq_fail take the new arguments (the roles granted
-- the old ones keep their grants). pq_version() returns 8. The functions are those of
-- sql/*.sql, the truth for fresh installs. Frozen once released: never edit; add a new
-- migration instead.

ALTER TABLE pq_job
    ADD COLUMN priority smallint NOT NULL DEFAULT 0 CHECK (priority BETWEEN -100 AND 100),
    ADD COLUMN max_retries integer NOT NULL DEFAULT 0 CHECK (max_retries >= 0),
    ADD COLUMN retry_intervals integer[] CHECK (0 <= ALL (retry_intervals)),
    ADD COLUMN attempts integer NOT NULL DEFAULT 0,
    ADD COLUMN errors jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(errors) = 'array');
-- Jobs started before this migration ran once at least.
UPDATE pq_job SET attempts = 1 WHERE status IN ('started', 'finished', 'failed');
DROP INDEX pq_job_queued;
CREATE INDEX pq_job_queued ON pq_job (queue, priority DESC, id) WHERE status = 'queued';

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

CREATE OR REPLACE FUNCTION _pq_repeat_job()
RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_after timestamptz := greatest(OLD.scheduled_for, now());
    v_next timestamptz;
BEGIN
    IF OLD.cron IS NOT NULL THEN
        v_next := pq_cron_next(OLD.cron, v_after, OLD.time_zone);
    ELSE
        v_next := _pq_next_run(v_after, OLD.repeat_from, OLD.repeat_interval, OLD.between_start,
                               OLD.between_end, OLD.weekdays, OLD.time_zone);
    END IF;
    IF v_next IS NOT NULL AND (OLD.repeat_until IS NULL OR v_next <= OLD.repeat_until) THEN
        INSERT INTO pq_job (queue, origin, status, func, args, kwargs, instance, description,
                            timeout, result_ttl, scheduled_for, repeat, repeat_until,
                            repeat_interval, between_start, between_end, weekdays, time_zone,
                            repeat_from, cron, schedule_name, priority, max_retries,
                            retry_intervals)
        VALUES (OLD.queue, OLD.origin, 'scheduled', OLD.func, OLD.args, OLD.kwargs, OLD.instance,
                OLD.description, OLD.timeout, OLD.result_ttl, v_next,
                CASE WHEN OLD.repeat > 0 THEN OLD.repeat - 1 ELSE OLD.repeat END, OLD.repeat_until,
                OLD.repeat_interval, OLD.between_start, OLD.between_end, OLD.weekdays, OLD.time_zone,
                OLD.repeat_from, OLD.cron, OLD.schedule_name, OLD.priority, OLD.max_retries,
                OLD.retry_intervals)
        ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END;
$$;

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
            WITH claimed AS (
                UPDATE pq_job j
                   SET status = 'started', started_at = now(), worker = worker_name,
                       attempts = j.attempts + 1,
                       timeout = coalesce(j.timeout, (SELECT q.default_timeout FROM pq_queue q WHERE q.name = j.queue))
                 WHERE j.id = ANY (ARRAY(
                        SELECT d.id FROM pq_job d
                         WHERE d.status = 'scheduled' AND d.scheduled_for <= now()
                           AND d.queue <> 'failed' AND d.queue <> ALL (v_serial_queues)
                         ORDER BY d.scheduled_for, d.id
                         LIMIT v_left
                           FOR UPDATE SKIP LOCKED))
             RETURNING j.*)
            SELECT * FROM claimed c ORDER BY c.scheduled_for, c.id;
        GET DIAGNOSTICS v_count = ROW_COUNT;
        v_left := v_left - v_count;
        -- The queued jobs of the non-serial queues named between two serial queues (the
        -- range trick keeps the (queue, priority DESC, id) order of pq_job_queued), then that
        -- serial queue.
        FOR v_queue IN SELECT u.name FROM unnest(v_serial_queues || NULL::text) AS u (name) LOOP
            EXIT WHEN v_left = 0;
            IF v_queue IS NULL THEN
                RETURN QUERY
                    WITH claimed AS (
                        UPDATE pq_job j
                           SET status = 'started', started_at = now(), worker = worker_name,
                               attempts = j.attempts + 1,
                               timeout = coalesce(j.timeout, (SELECT q.default_timeout FROM pq_queue q WHERE q.name = j.queue))
                         WHERE j.id = ANY (ARRAY(
                                SELECT r.id FROM pq_job r
                                 WHERE r.queue > v_after AND r.queue <> 'failed' AND r.status = 'queued'
                                 ORDER BY r.queue, r.priority DESC, r.id
                                 LIMIT v_left
                                   FOR UPDATE SKIP LOCKED))
                     RETURNING j.*)
                    SELECT * FROM claimed c ORDER BY c.queue, c.priority DESC, c.id;
            ELSE
                RETURN QUERY
                    WITH claimed AS (
                        UPDATE pq_job j
                           SET status = 'started', started_at = now(), worker = worker_name,
                               attempts = j.attempts + 1,
                               timeout = coalesce(j.timeout, (SELECT q.default_timeout FROM pq_queue q WHERE q.name = j.queue))
                         WHERE j.id = ANY (ARRAY(
                                SELECT r.id FROM pq_job r
                                 WHERE r.queue > v_after AND r.queue < v_queue AND r.queue <> 'failed'
                                   AND r.status = 'queued'
                                 ORDER BY r.queue, r.priority DESC, r.id
                                 LIMIT v_left
                                   FOR UPDATE SKIP LOCKED))
                     RETURNING j.*)
                    SELECT * FROM claimed c ORDER BY c.queue, c.priority DESC, c.id;
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
            WITH claimed AS (
                UPDATE pq_job j
                   SET status = 'started', started_at = now(), worker = worker_name,
                       attempts = j.attempts + 1,
                       timeout = coalesce(j.timeout, v_timeout)
                 WHERE j.id = ANY (ARRAY(
                        SELECT d.id FROM pq_job d
                         WHERE d.queue = v_queue AND d.status = 'scheduled' AND d.scheduled_for <= now()
                         ORDER BY d.scheduled_for, d.id
                         LIMIT CASE WHEN v_serial THEN 1 ELSE v_left END
                           FOR UPDATE SKIP LOCKED))
             RETURNING j.*)
            SELECT * FROM claimed c ORDER BY c.scheduled_for, c.id;
        GET DIAGNOSTICS v_count = ROW_COUNT;
        v_left := v_left - v_count;
        EXIT WHEN v_left = 0;
        CONTINUE WHEN v_serial AND v_count > 0;

        RETURN QUERY
            WITH claimed AS (
                UPDATE pq_job j
                   SET status = 'started', started_at = now(), worker = worker_name,
                       attempts = j.attempts + 1,
                       timeout = coalesce(j.timeout, v_timeout)
                 WHERE j.id = ANY (ARRAY(
                        SELECT r.id FROM pq_job r
                         WHERE r.queue >= v_queue AND r.queue <= v_queue AND r.status = 'queued'
                         ORDER BY r.queue, r.priority DESC, r.id
                         LIMIT CASE WHEN v_serial THEN 1 ELSE v_left END
                           FOR UPDATE SKIP LOCKED))
             RETURNING j.*)
            SELECT * FROM claimed c ORDER BY c.queue, c.priority DESC, c.id;
        GET DIAGNOSTICS v_count = ROW_COUNT;
        v_left := v_left - v_count;
        EXIT WHEN v_left = 0;
    END LOOP;
END;
$$;

CREATE OR REPLACE FUNCTION pq_release(job_ids bigint[], worker_name text)
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_count integer;
BEGIN
    UPDATE pq_job j
       SET status = CASE WHEN j.scheduled_for IS NOT NULL THEN 'scheduled' ELSE 'queued' END,
           worker = NULL, started_at = NULL, attempts = greatest(j.attempts - 1, 0)
     WHERE j.id = ANY (job_ids) AND j.status = 'started' AND j.worker = worker_name;
    GET DIAGNOSTICS v_count = ROW_COUNT;
    RETURN v_count;
END;
$$;

CREATE FUNCTION _pq_attempt_error(job pq_job, exc_info text)
RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_array(jsonb_build_object(
        'attempt', job.attempts, 'worker', job.worker, 'started_at', job.started_at,
        'failed_at', now(), 'exc_info', exc_info));
$$;

CREATE FUNCTION _pq_fail_job(job pq_job, exc_info text, move_to_failed boolean, retry boolean)
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_delay integer := coalesce(job.retry_intervals[least(job.attempts, cardinality(job.retry_intervals))], 0);
BEGIN
    IF retry AND job.attempts <= job.max_retries THEN
        UPDATE pq_job j
           SET status = CASE WHEN v_delay > 0 THEN 'scheduled' ELSE 'queued' END,
               scheduled_for = CASE WHEN v_delay > 0 THEN now() + make_interval(secs => v_delay) END,
               exc_info = _pq_fail_job.exc_info, worker = NULL,
               errors = j.errors || _pq_attempt_error(job, _pq_fail_job.exc_info)
         WHERE j.id = job.id;
        IF v_delay > 0 THEN
            PERFORM pg_notify('pq_jobs', job.queue);
        END IF;
        RETURN;
    END IF;
    IF move_to_failed THEN
        PERFORM _pq_ensure_queue('failed');
    END IF;
    UPDATE pq_job j
       SET status = 'failed', exc_info = _pq_fail_job.exc_info, ended_at = now(), expires_at = NULL,
           queue = CASE WHEN move_to_failed THEN 'failed' ELSE j.queue END,
           errors = j.errors || _pq_attempt_error(job, _pq_fail_job.exc_info)
     WHERE j.id = job.id;
END;
$$;

CREATE FUNCTION pq_fail(job_id bigint, worker_name text, exc_info text,
                        move_to_failed boolean DEFAULT true, retry boolean DEFAULT true)
RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    v_job pq_job;
BEGIN
    SELECT * INTO v_job FROM pq_job j
     WHERE j.id = job_id AND j.status = 'started' AND j.worker = worker_name
       FOR UPDATE;
    IF NOT FOUND THEN
        RAISE WARNING 'pq_fail: the failure of job % was not stored: not started by worker % any more',
                job_id, worker_name
            USING HINT = 'The worker was probably reaped after its heartbeat expired and the job failed as abandoned; see the failed queue.';
        RETURN false;
    END IF;
    PERFORM _pq_fail_job(v_job, exc_info, move_to_failed, retry);
    RETURN true;
END;
$$;

COMMENT ON FUNCTION pq_fail(bigint, text, text, boolean, boolean) IS
    'Record the failure of a started django-pq job: retried while it has retries left, else failed (to the failed queue); WARNING if it is not started by that worker.';

CREATE FUNCTION _pq_flow_enqueue_job(
    flow_id bigint,
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
    v_flow pq_flow := _pq_flow_for_update('pq_flow_enqueue', flow_id);
    v_job pq_job;
BEGIN
    PERFORM _pq_check_enqueue('pq_flow_enqueue', v_flow.queue, timeout, result_ttl, description, scheduled_for);
    PERFORM _pq_check_call('pq_flow_enqueue', func, args, kwargs, instance);
    PERFORM _pq_check_retry('pq_flow_enqueue', priority, max_retries, retry_intervals);
    INSERT INTO pq_job (queue, origin, status, func, args, kwargs, instance, description,
                        timeout, result_ttl, scheduled_for, flow_id, depends_on, priority,
                        max_retries, retry_intervals)
    VALUES (v_flow.queue, v_flow.queue, 'deferred', func, args, kwargs, instance, description,
            timeout, result_ttl, scheduled_for, v_flow.id, v_flow.jobs[cardinality(v_flow.jobs)],
            priority, max_retries, retry_intervals)
    RETURNING * INTO v_job;
    UPDATE pq_flow f SET jobs = f.jobs || v_job.id WHERE f.id = v_flow.id;
    RETURN v_job;
END;
$$;

COMMENT ON FUNCTION _pq_flow_enqueue_job(bigint, text, jsonb, jsonb, integer, integer, text, timestamptz,
                                         bytea, integer, integer, integer[]) IS
    'Add a job to a django-pq flow being built, as pq_flow_enqueue does, returning the new pq_job row.';

CREATE FUNCTION pq_flow_enqueue(
    flow_id bigint,
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
    SELECT (_pq_flow_enqueue_job(flow_id, func, args, kwargs, timeout, result_ttl, description,
                                scheduled_for, instance, priority, max_retries,
                                retry_intervals)).id;
$$;

COMMENT ON FUNCTION pq_flow_enqueue(bigint, text, jsonb, jsonb, integer, integer, text, timestamptz, bytea,
                                    integer, integer, integer[]) IS
    'Add a job to a django-pq flow being built; it runs after the previous one finished. Returns the job id. Arguments and limits as pq_enqueue.';

CREATE OR REPLACE FUNCTION _pq_fail_abandoned()
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

CREATE OR REPLACE FUNCTION pq_version()
RETURNS integer
LANGUAGE sql IMMUTABLE AS $$
    SELECT 8;
$$;

-- Functions with new arguments: the roles granted EXECUTE on the old ones get it on the new.
DO $$
DECLARE
    v_move record;
    v_grantee regrole;
BEGIN
    FOR v_move IN SELECT * FROM (VALUES
        ('_pq_enqueue_job(text, text, jsonb, jsonb, integer, integer, text, timestamptz, bytea)'::regprocedure, '_pq_enqueue_job(text, text, jsonb, jsonb, integer, integer, text, timestamptz, bytea, integer, integer, integer[])'::regprocedure),
        ('pq_enqueue(text, text, jsonb, jsonb, integer, integer, text, timestamptz, bytea)'::regprocedure, 'pq_enqueue(text, text, jsonb, jsonb, integer, integer, text, timestamptz, bytea, integer, integer, integer[])'::regprocedure),
        ('pq_enqueue_many(text, text[], jsonb[], jsonb[], integer, integer)'::regprocedure, 'pq_enqueue_many(text, text[], jsonb[], jsonb[], integer, integer, integer, integer, integer[])'::regprocedure),
        ('pq_fail(bigint, text, text, boolean)'::regprocedure, 'pq_fail(bigint, text, text, boolean, boolean)'::regprocedure),
        ('_pq_flow_enqueue_job(bigint, text, jsonb, jsonb, integer, integer, text, timestamptz, bytea)'::regprocedure, '_pq_flow_enqueue_job(bigint, text, jsonb, jsonb, integer, integer, text, timestamptz, bytea, integer, integer, integer[])'::regprocedure),
        ('pq_flow_enqueue(bigint, text, jsonb, jsonb, integer, integer, text, timestamptz, bytea)'::regprocedure, 'pq_flow_enqueue(bigint, text, jsonb, jsonb, integer, integer, text, timestamptz, bytea, integer, integer, integer[])'::regprocedure)) AS m (old_fn, new_fn)
    LOOP
        FOR v_grantee IN
            SELECT a.grantee::regrole FROM pg_proc p, aclexplode(p.proacl) AS a
             WHERE p.oid = v_move.old_fn AND a.privilege_type = 'EXECUTE'
               AND a.grantee <> 0 AND a.grantee <> p.proowner
        LOOP
            EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO %s', v_move.new_fn, v_grantee);
        END LOOP;
    END LOOP;
END;
$$;
DROP FUNCTION _pq_enqueue_job(text, text, jsonb, jsonb, integer, integer, text, timestamptz, bytea);
DROP FUNCTION pq_enqueue(text, text, jsonb, jsonb, integer, integer, text, timestamptz, bytea);
DROP FUNCTION pq_enqueue_many(text, text[], jsonb[], jsonb[], integer, integer);
DROP FUNCTION pq_fail(bigint, text, text, boolean);
DROP FUNCTION _pq_flow_enqueue_job(bigint, text, jsonb, jsonb, integer, integer, text, timestamptz, bytea);
DROP FUNCTION pq_flow_enqueue(bigint, text, jsonb, jsonb, integer, integer, text, timestamptz, bytea);

REVOKE ALL ON FUNCTION pq_enqueue(text, text, jsonb, jsonb, integer, integer, text, timestamptz, bytea,
                                  integer, integer, integer[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION pq_enqueue_many(text, text[], jsonb[], jsonb[], integer, integer, integer, integer,
                                       integer[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION _pq_enqueue_job(text, text, jsonb, jsonb, integer, integer, text, timestamptz, bytea,
                                       integer, integer, integer[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION pq_schedule(text, text, jsonb, jsonb, timestamptz, integer, timestamptz, interval,
                                   time, time, integer[], text, integer, integer, text, bytea, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION _pq_schedule_job(text, text, jsonb, jsonb, timestamptz, integer, timestamptz, interval,
                                        time, time, integer[], text, integer, integer, text, bytea, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION pq_schedule_cron(text, text, text, jsonb, jsonb, text, text, integer, integer, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION pq_unschedule(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION pq_flow_create(text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION pq_flow_enqueue(bigint, text, jsonb, jsonb, integer, integer, text, timestamptz, bytea,
                                       integer, integer, integer[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION _pq_flow_enqueue_job(bigint, text, jsonb, jsonb, integer, integer, text, timestamptz,
                                            bytea, integer, integer, integer[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION pq_flow_start(bigint) FROM PUBLIC;

DO $$
DECLARE
    v_fn regprocedure;
BEGIN
    FOR v_fn IN
        SELECT p.oid::regprocedure FROM pg_proc p
         WHERE p.pronamespace = current_schema()::regnamespace AND p.prosecdef
           AND (p.proname LIKE 'pq\_%' OR p.proname LIKE '\_pq\_%')
    LOOP
        EXECUTE format('ALTER FUNCTION %s SET search_path = %I, pg_temp', v_fn, current_schema());
    END LOOP;
END;
$$;
