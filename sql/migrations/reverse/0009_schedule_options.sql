-- Reverse of django-pq SQL migration 0009: schedules without priorities or retries.
-- (Pending runs keep the values they were given; they go on running with them.)

-- The old pq_schedule's body calls _pq_schedule_job with 17 arguments, which the new one
-- (dropped below) also takes: not checked until both are no longer there.
SET check_function_bodies = off;

CREATE OR REPLACE FUNCTION _pq_put_schedule(job pq_job)
RETURNS pq_job
LANGUAGE plpgsql AS $$
DECLARE
    v_job pq_job;
BEGIN
    INSERT INTO pq_job AS j (queue, origin, status, func, args, kwargs, instance, description,
                             timeout, result_ttl, scheduled_for, repeat, repeat_until,
                             repeat_interval, between_start, between_end, weekdays, time_zone,
                             repeat_from, cron, schedule_name)
    VALUES (job.queue, job.queue, 'scheduled', job.func, job.args, job.kwargs, job.instance,
            job.description, job.timeout, job.result_ttl, job.scheduled_for, job.repeat,
            job.repeat_until, job.repeat_interval, job.between_start, job.between_end,
            job.weekdays, job.time_zone, job.repeat_from, job.cron, job.schedule_name)
    ON CONFLICT (schedule_name) WHERE status = 'scheduled' AND repeat <> 0 AND schedule_name IS NOT NULL
    DO UPDATE SET queue = EXCLUDED.queue, origin = EXCLUDED.origin, func = EXCLUDED.func,
                  args = EXCLUDED.args, kwargs = EXCLUDED.kwargs, instance = EXCLUDED.instance,
                  description = EXCLUDED.description, timeout = EXCLUDED.timeout,
                  result_ttl = EXCLUDED.result_ttl, scheduled_for = EXCLUDED.scheduled_for,
                  repeat = EXCLUDED.repeat, repeat_until = EXCLUDED.repeat_until,
                  repeat_interval = EXCLUDED.repeat_interval, between_start = EXCLUDED.between_start,
                  between_end = EXCLUDED.between_end, weekdays = EXCLUDED.weekdays,
                  time_zone = EXCLUDED.time_zone, repeat_from = EXCLUDED.repeat_from,
                  cron = EXCLUDED.cron, enqueued_at = now()
     WHERE (j.queue, j.func, j.args, j.kwargs, j.instance, j.description, j.timeout, j.result_ttl,
            j.repeat, j.repeat_until, j.repeat_interval, j.between_start, j.between_end,
            j.weekdays, j.time_zone, j.cron)
           IS DISTINCT FROM
           (EXCLUDED.queue, EXCLUDED.func, EXCLUDED.args, EXCLUDED.kwargs, EXCLUDED.instance,
            EXCLUDED.description, EXCLUDED.timeout, EXCLUDED.result_ttl, EXCLUDED.repeat,
            EXCLUDED.repeat_until, EXCLUDED.repeat_interval, EXCLUDED.between_start,
            EXCLUDED.between_end, EXCLUDED.weekdays, EXCLUDED.time_zone, EXCLUDED.cron)
    RETURNING * INTO v_job;
    IF v_job.id IS NOT NULL AND job.schedule_name IS NOT NULL THEN
        -- A new or changed definition replaces the old one's other pending runs too (its last
        -- counted run, a run a stopping worker put back), which hold no place in the index.
        DELETE FROM pq_job j
         WHERE j.schedule_name = job.schedule_name AND j.status = 'scheduled' AND j.id <> v_job.id;
    END IF;
    IF v_job.id IS NULL THEN  -- an unchanged named schedule: its pending run stays
        SELECT * INTO STRICT v_job FROM pq_job j
         WHERE j.schedule_name = job.schedule_name AND j.status = 'scheduled' AND j.repeat <> 0;
    END IF;
    RETURN v_job;
END;
$$;

CREATE FUNCTION _pq_schedule_job(
    queue_name text,
    func text,
    args jsonb DEFAULT '[]',
    kwargs jsonb DEFAULT '{}',
    scheduled_for timestamptz DEFAULT now(),
    repeat integer DEFAULT 0,
    repeat_until timestamptz DEFAULT NULL,
    repeat_interval interval DEFAULT NULL,
    between_start time DEFAULT NULL,
    between_end time DEFAULT NULL,
    weekdays integer[] DEFAULT NULL,
    time_zone text DEFAULT NULL,
    timeout integer DEFAULT NULL,
    result_ttl integer DEFAULT NULL,
    description text DEFAULT NULL,
    instance bytea DEFAULT NULL,
    name text DEFAULT NULL
)
RETURNS pq_job
LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    v_zone text := coalesce(time_zone, current_setting('TimeZone'));
    v_weekdays smallint[];
    v_interval interval := repeat_interval;
    v_first timestamptz;
    v_origin timestamptz;
    v_run timestamptz;
    v_job pq_job;
BEGIN
    -- A repeating job with only a window or weekdays repeats daily (the seed's
    -- schedule_call(dt, f, repeat=-1, weekdays=(MO, TU, WE, TH, FR))).
    IF v_interval IS NULL AND (repeat <> 0 OR repeat_until IS NOT NULL)
       AND (weekdays IS NOT NULL OR between_start IS NOT NULL) THEN
        v_interval := interval '1 day';
    END IF;
    PERFORM _pq_check_enqueue('pq_schedule', queue_name, timeout, result_ttl, description, scheduled_for);
    PERFORM _pq_check_call('pq_schedule', func, args, kwargs, instance);
    PERFORM _pq_check_schedule('pq_schedule', scheduled_for, repeat, repeat_until, v_interval,
                               between_start, between_end, weekdays, v_zone);
    IF weekdays IS NOT NULL THEN
        v_weekdays := ARRAY(SELECT DISTINCT d FROM unnest(weekdays) AS d ORDER BY d);
    END IF;
    IF name IS NOT NULL THEN
        PERFORM _pq_check_schedule_name('pq_schedule', name);
        IF repeat = 0 AND repeat_until IS NULL THEN
            RAISE EXCEPTION 'pq_schedule: name % is for a repeating job, and this one runs once', quote_literal(name)
                USING ERRCODE = 'PQ001', HINT = 'Pass repeat => -1, a count or repeat_until; or leave the name out.';
        END IF;
    END IF;
    v_first := _pq_schedule_adjust(scheduled_for, between_start, between_end, v_weekdays, v_zone);
    v_origin := v_first;
    IF v_interval IS NOT NULL AND v_first <> scheduled_for THEN
        v_run := _pq_allowed_run(scheduled_for, scheduled_for, v_interval, between_start, between_end,
                                 v_weekdays, v_zone);
        IF v_run IS NOT NULL THEN
            v_first := v_run;
            v_origin := scheduled_for;
        END IF;
    END IF;
    IF repeat_until < v_first THEN
        RAISE EXCEPTION 'pq_schedule: repeat_until % is before the first run %, moved into the window and weekdays',
                repeat_until, v_first
            USING ERRCODE = 'PQ001', HINT = 'Pass the last time a run may start, after the first run.';
    END IF;
    PERFORM _pq_ensure_queue(queue_name);
    v_job.queue := queue_name;
    v_job.func := func;
    v_job.args := args;
    v_job.kwargs := kwargs;
    v_job.instance := instance;
    v_job.description := description;
    v_job.timeout := timeout;
    v_job.result_ttl := result_ttl;
    v_job.scheduled_for := v_first;
    v_job.repeat := CASE WHEN repeat = 0 AND repeat_until IS NOT NULL THEN -1 ELSE repeat END;
    v_job.repeat_until := repeat_until;
    v_job.repeat_interval := v_interval;
    v_job.between_start := between_start;
    v_job.between_end := between_end;
    v_job.weekdays := v_weekdays;
    v_job.time_zone := v_zone;
    v_job.repeat_from := CASE WHEN v_interval IS NOT NULL THEN v_origin END;
    v_job.schedule_name := name;
    RETURN _pq_put_schedule(v_job);
END;
$$;

COMMENT ON FUNCTION _pq_schedule_job(text, text, jsonb, jsonb, timestamptz, integer, timestamptz, interval,
                                     time, time, integer[], text, integer, integer, text, bytea, text) IS
    'Schedule a django-pq job as pq_schedule does, returning the new pq_job row.';

CREATE FUNCTION pq_schedule(
    queue_name text,
    func text,
    args jsonb DEFAULT '[]',
    kwargs jsonb DEFAULT '{}',
    scheduled_for timestamptz DEFAULT now(),
    repeat integer DEFAULT 0,
    repeat_until timestamptz DEFAULT NULL,
    repeat_interval interval DEFAULT NULL,
    between_start time DEFAULT NULL,
    between_end time DEFAULT NULL,
    weekdays integer[] DEFAULT NULL,
    time_zone text DEFAULT NULL,
    timeout integer DEFAULT NULL,
    result_ttl integer DEFAULT NULL,
    description text DEFAULT NULL,
    instance bytea DEFAULT NULL,
    name text DEFAULT NULL
)
RETURNS bigint
LANGUAGE sql SECURITY DEFINER AS $$
    SELECT (_pq_schedule_job(queue_name, func, args, kwargs, scheduled_for, repeat, repeat_until,
                             repeat_interval, between_start, between_end, weekdays, time_zone,
                             timeout, result_ttl, description, instance, name)).id;
$$;

COMMENT ON FUNCTION pq_schedule(text, text, jsonb, jsonb, timestamptz, integer, timestamptz, interval,
                                time, time, integer[], text, integer, integer, text, bytea, text) IS
    'Schedule a django-pq job: first run at scheduled_for, repeating (repeat -1/N or repeat_until) every repeat_interval within a daily window and weekdays, in time_zone; returns the job id.';

CREATE FUNCTION pq_schedule_cron(
    name text,
    schedule text,
    func text,
    args jsonb DEFAULT '[]',
    kwargs jsonb DEFAULT '{}',
    queue_name text DEFAULT 'default',
    time_zone text DEFAULT 'UTC',
    timeout integer DEFAULT NULL,
    result_ttl integer DEFAULT NULL,
    description text DEFAULT NULL
)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    v_job pq_job;
BEGIN
    PERFORM _pq_check_enqueue('pq_schedule_cron', queue_name, timeout, result_ttl, description);
    PERFORM _pq_check_call('pq_schedule_cron', func, args, kwargs);
    PERFORM _pq_check_time_zone('pq_schedule_cron', time_zone);
    PERFORM _pq_check_cron('pq_schedule_cron', schedule);
    PERFORM _pq_check_schedule_name('pq_schedule_cron', name);
    PERFORM _pq_ensure_queue(queue_name);
    v_job.queue := queue_name;
    v_job.func := func;
    v_job.args := args;
    v_job.kwargs := kwargs;
    v_job.description := description;
    v_job.timeout := timeout;
    v_job.result_ttl := result_ttl;
    v_job.scheduled_for := pq_cron_next(schedule, now(), time_zone);
    v_job.repeat := -1;
    v_job.cron := schedule;
    v_job.time_zone := time_zone;
    v_job.schedule_name := name;
    RETURN (_pq_put_schedule(v_job)).id;
END;
$$;

COMMENT ON FUNCTION pq_schedule_cron(text, text, text, jsonb, jsonb, text, text, integer, integer, text) IS
    'Create or replace a named django-pq cron schedule (five-field cron expression in a time zone); returns the job id of its next tick.';

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
        ('_pq_schedule_job(text, text, jsonb, jsonb, timestamptz, integer, timestamptz, interval, time, time, integer[], text, integer, integer, text, bytea, text, integer, integer, integer[])'::regprocedure, '_pq_schedule_job(text, text, jsonb, jsonb, timestamptz, integer, timestamptz, interval, time, time, integer[], text, integer, integer, text, bytea, text)'::regprocedure),
        ('pq_schedule(text, text, jsonb, jsonb, timestamptz, integer, timestamptz, interval, time, time, integer[], text, integer, integer, text, bytea, text, integer, integer, integer[])'::regprocedure, 'pq_schedule(text, text, jsonb, jsonb, timestamptz, integer, timestamptz, interval, time, time, integer[], text, integer, integer, text, bytea, text)'::regprocedure),
        ('pq_schedule_cron(text, text, text, jsonb, jsonb, text, text, integer, integer, text, integer, integer, integer[])'::regprocedure, 'pq_schedule_cron(text, text, text, jsonb, jsonb, text, text, integer, integer, text)'::regprocedure)) AS m (old_fn, new_fn)
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
DROP FUNCTION _pq_schedule_job(text, text, jsonb, jsonb, timestamptz, integer, timestamptz, interval, time, time, integer[], text, integer, integer, text, bytea, text, integer, integer, integer[]);
DROP FUNCTION pq_schedule(text, text, jsonb, jsonb, timestamptz, integer, timestamptz, interval, time, time, integer[], text, integer, integer, text, bytea, text, integer, integer, integer[]);
DROP FUNCTION pq_schedule_cron(text, text, text, jsonb, jsonb, text, text, integer, integer, text, integer, integer, integer[]);
RESET check_function_bodies;

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
