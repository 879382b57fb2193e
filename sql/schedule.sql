-- Scheduling: jobs that run at a time, repeat on an interval within a daily window and on
-- some weekdays, or follow a named cron schedule.
--
-- Each run is its own job row. A repeating job is a 'scheduled' row with repeat <> 0 (-1:
-- for ever; N: N more runs after this one; repeat_until bounds them by time). When a worker
-- claims it (status 'scheduled' -> 'started'), the trigger pq_job_100_repeat inserts the
-- next run as a new 'scheduled' row and makes the claimed row a single run (repeat 0): the
-- schedule goes on whether this run finishes, fails, times out or its worker dies, and each
-- run keeps its own result or traceback. The next run is planned strictly after the later of
-- the run's due time and now: runs missed while no worker ran are not replayed; the overdue
-- run runs once and the schedule goes on from now.
--
-- The rules are wall-clock rules in the job's time_zone, with the daylight-saving rule of
-- sql/zone.sql (_pq_zoned). With L(t) the wall-clock time of t there and Z(w) = _pq_zoned(w):
-- - The grid of an interval I (months m, days d, time u) from the origin o = repeat_from
--   (the first run asked for): run 0 is o, and run k (k = 1, 2, ...) is
--     m = 0, d = 0: o + k*u, elapsed time;
--     m = 0, d > 0: Z(L(o) + k*d days) + k*u: whole days are calendar days (the same
--            wall-clock time across DST changes), the time part is elapsed time;
--     m > 0: Z(L(o) + k*m months + d days) + u: months step from the origin (month ends
--            clamp: Jan 31 + 1 month is Feb 28, + 2 months Mar 31), days and time are an
--            offset from each step (1 month -1 day from the 1st: each month's last day).
-- - A time t is allowed when L(t)'s time of day is in the window [between_start,
--   between_end] (a window with start > end crosses midnight; its part after midnight
--   belongs to the day it opened) and that day's weekday is in weekdays (0 = Monday).
-- - adjust(t): t if allowed, else the next window opening, Z(day + between_start) (Z(day)
--   without a window) of the first allowed day whose opening is not before t.
-- - The grid's origin is scheduled_for, and the first run its first allowed run (at or after
--   it), which keeps the time of day asked for (Saturday 11:50, Monday to Friday: Monday
--   11:50). A grid that never meets the window (daily at 20:00, window 02:00-18:30) starts
--   instead at adjust(scheduled_for), which becomes the origin (daily at 02:00).
-- - The next run after a time a is the first run of the grid after a that is allowed: runs
--   outside the window or weekdays are skipped, as rrule's filters skip them (moving them
--   instead ran a daily Monday-to-Friday job twice on Mondays: Saturday's run moved to
--   Monday 00:00, then Monday's own). The search jumps from window to window, never run by
--   run; a grid that meets no window in 50 jumps (an origin on a DST night, in a gap) runs
--   at the next opening instead, so a schedule never silently ends.

-- _pq_interval_parts(i): PostgreSQL's three fields of an interval: months, days and the
-- time part (as an interval). Locks: none.
CREATE FUNCTION _pq_interval_parts(i interval, OUT months integer, OUT days integer, OUT clock interval)
RETURNS record
LANGUAGE sql IMMUTABLE STRICT AS $$
    SELECT (extract(year FROM i) * 12 + extract(month FROM i))::integer,
           extract(day FROM i)::integer,
           i - make_interval(years => 0, months => (extract(year FROM i) * 12 + extract(month FROM i))::integer,
                             days => extract(day FROM i)::integer);
$$;

-- _pq_schedule_step(repeat_from, repeat_interval, time_zone, k): run k of the grid (see
-- above), before any window or weekday. Locks: none.
CREATE FUNCTION _pq_schedule_step(repeat_from timestamptz, repeat_interval interval, time_zone text, k bigint)
RETURNS timestamptz
LANGUAGE plpgsql STABLE STRICT AS $$
DECLARE
    v_parts record := _pq_interval_parts(repeat_interval);
    v_local timestamp := repeat_from AT TIME ZONE time_zone;
BEGIN
    IF k = 0 THEN
        RETURN repeat_from;
    ELSIF v_parts.months = 0 AND v_parts.days = 0 THEN
        RETURN repeat_from + v_parts.clock * k;
    ELSIF v_parts.months = 0 THEN
        RETURN _pq_zoned(v_local + make_interval(days => (k * v_parts.days)::integer), time_zone)
               + v_parts.clock * k;
    END IF;
    RETURN _pq_zoned(v_local + make_interval(months => (k * v_parts.months)::integer, days => v_parts.days),
                     time_zone) + v_parts.clock;
END;
$$;

-- _pq_window_day(t, between_start, between_end, time_zone): the day whose window t is in
-- (its wall-clock date, or the day before in the after-midnight part of a window crossing
-- midnight), NULL when t is outside the window. Without a window, t's date. Locks: none.
CREATE FUNCTION _pq_window_day(t timestamptz, between_start time, between_end time, time_zone text)
RETURNS date
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_local timestamp := t AT TIME ZONE time_zone;
    v_time time := v_local::time;
BEGIN
    IF between_start IS NULL THEN
        RETURN v_local::date;
    ELSIF between_start < between_end THEN
        RETURN CASE WHEN v_time BETWEEN between_start AND between_end THEN v_local::date END;
    ELSIF v_time >= between_start THEN
        RETURN v_local::date;
    ELSIF v_time <= between_end THEN
        RETURN v_local::date - 1;
    END IF;
    RETURN NULL;
END;
$$;

-- _pq_schedule_allowed(t, between_start, between_end, weekdays, time_zone): whether t is in
-- the window, on an allowed weekday of the day the window opened. Locks: none.
CREATE FUNCTION _pq_schedule_allowed(t timestamptz, between_start time, between_end time,
                                     weekdays smallint[], time_zone text)
RETURNS boolean
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_day date := _pq_window_day(t, between_start, between_end, time_zone);
BEGIN
    RETURN v_day IS NOT NULL
       AND (weekdays IS NULL OR (extract(isodow FROM v_day)::smallint - 1) = ANY (weekdays));
END;
$$;

-- _pq_schedule_adjust(t, between_start, between_end, weekdays, time_zone): the first
-- allowed time not before t (see above); NULL when nothing is ever allowed (no weekday).
-- Locks: none.
CREATE FUNCTION _pq_schedule_adjust(t timestamptz, between_start time, between_end time,
                                    weekdays smallint[], time_zone text)
RETURNS timestamptz
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_day date := (t AT TIME ZONE time_zone)::date;
    v_open timestamptz;
BEGIN
    IF _pq_schedule_allowed(t, between_start, between_end, weekdays, time_zone) THEN
        RETURN t;
    END IF;
    FOR i IN 0..8 LOOP
        IF weekdays IS NULL OR (extract(isodow FROM v_day + i)::smallint - 1) = ANY (weekdays) THEN
            v_open := _pq_zoned(v_day + i + coalesce(between_start, time '00:00'), time_zone);
            IF v_open >= t THEN
                RETURN v_open;
            END IF;
        END IF;
    END LOOP;
    RETURN NULL;
END;
$$;

-- _pq_grid_index(t, inclusive, repeat_from, repeat_interval, time_zone): the index k of the
-- first run of the grid after t (at or after t when inclusive). Its cost does not grow with
-- k: k is estimated from the elapsed time (or months), then corrected by a step or two.
-- Locks: none.
CREATE FUNCTION _pq_grid_index(t timestamptz, inclusive boolean, repeat_from timestamptz,
                               repeat_interval interval, time_zone text)
RETURNS bigint
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_parts record := _pq_interval_parts(repeat_interval);
    v_from timestamp := repeat_from AT TIME ZONE time_zone;
    v_at timestamp := t AT TIME ZONE time_zone;
    v_k bigint;
BEGIN
    IF v_parts.months = 0 THEN
        v_k := floor(extract(epoch FROM t - repeat_from)
                     / (v_parts.days * 86400 + extract(epoch FROM v_parts.clock)));
    ELSE
        v_k := ((extract(year FROM v_at) - extract(year FROM v_from)) * 12
                + extract(month FROM v_at) - extract(month FROM v_from)) / v_parts.months;
    END IF;
    v_k := greatest(v_k, 0);
    WHILE v_k > 0 AND (_pq_schedule_step(repeat_from, repeat_interval, time_zone, v_k - 1) > t
                       OR (inclusive AND _pq_schedule_step(repeat_from, repeat_interval, time_zone, v_k - 1) = t)) LOOP
        v_k := v_k - 1;
    END LOOP;
    WHILE _pq_schedule_step(repeat_from, repeat_interval, time_zone, v_k) < t
          OR (NOT inclusive AND _pq_schedule_step(repeat_from, repeat_interval, time_zone, v_k) = t) LOOP
        v_k := v_k + 1;
    END LOOP;
    RETURN v_k;
END;
$$;

-- _pq_allowed_run(run, repeat_from, repeat_interval, between_start, between_end, weekdays,
-- time_zone): the first run of the grid at or after the grid run `run` that is in the window
-- and on an allowed weekday, jumping from window to window (at most 50 jumps); NULL if
-- none is found (a grid that never meets the window). Locks: none.
CREATE FUNCTION _pq_allowed_run(run timestamptz, repeat_from timestamptz, repeat_interval interval,
                                between_start time, between_end time, weekdays smallint[], time_zone text)
RETURNS timestamptz
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_run timestamptz := run;
    v_open timestamptz;
BEGIN
    FOR i IN 1..50 LOOP
        IF _pq_schedule_allowed(v_run, between_start, between_end, weekdays, time_zone) THEN
            RETURN v_run;
        END IF;
        v_open := _pq_schedule_adjust(v_run, between_start, between_end, weekdays, time_zone);
        IF v_open IS NULL THEN
            RETURN NULL;
        END IF;
        v_run := _pq_schedule_step(repeat_from, repeat_interval, time_zone,
                                   _pq_grid_index(v_open, true, repeat_from, repeat_interval, time_zone));
    END LOOP;
    RETURN NULL;
END;
$$;

-- _pq_next_run(after, repeat_from, repeat_interval, between_start, between_end, weekdays,
-- time_zone): the first allowed run of the grid strictly after `after` (see above); when
-- the grid meets no window, the next opening after its first run after `after`. NULL if
-- weekdays allow no day. Locks: none.
CREATE FUNCTION _pq_next_run(after timestamptz, repeat_from timestamptz, repeat_interval interval,
                             between_start time, between_end time, weekdays smallint[], time_zone text)
RETURNS timestamptz
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_first timestamptz := _pq_schedule_step(repeat_from, repeat_interval, time_zone,
                                             _pq_grid_index(after, false, repeat_from, repeat_interval, time_zone));
BEGIN
    IF between_start IS NULL AND weekdays IS NULL THEN
        RETURN v_first;
    END IF;
    RETURN coalesce(_pq_allowed_run(v_first, repeat_from, repeat_interval, between_start, between_end,
                                    weekdays, time_zone),
                    _pq_schedule_adjust(v_first, between_start, between_end, weekdays, time_zone));
END;
$$;
COMMENT ON FUNCTION _pq_next_run(timestamptz, timestamptz, interval, time, time, smallint[], text) IS
    'The first allowed run of a django-pq repeating schedule after a time (grid of repeat_interval from repeat_from, runs outside the window or weekdays skipped).';

-- _pq_check_schedule(caller, scheduled_for, repeat, repeat_until, repeat_interval,
-- between_start, between_end, weekdays, time_zone): raise PQ001, naming the caller and the
-- bad part, unless these make a schedule: a finite first time; repeat -1 (for ever), 0
-- (once) or a count, or repeat_until after the first time; an interval of at least one
-- second when repeating (and only then), with no negative part unless it has months (then
-- its days and time are an offset and its first step must move forward); a window with both
-- ends, different; weekdays 0 (Monday) to 6; a time zone PostgreSQL knows.
CREATE FUNCTION _pq_check_schedule(caller text, scheduled_for timestamptz, repeat integer,
                                   repeat_until timestamptz, repeat_interval interval,
                                   between_start time, between_end time, weekdays integer[],
                                   time_zone text)
RETURNS void
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_parts record;
    v_bad integer;
BEGIN
    PERFORM _pq_check_time_zone(caller, time_zone);
    IF scheduled_for IS NULL OR NOT isfinite(scheduled_for) THEN
        RAISE EXCEPTION '%: scheduled_for must be a finite time, got %', caller, coalesce(scheduled_for::text, 'NULL')
            USING ERRCODE = 'PQ001', HINT = 'Pass now() to start at once, or the time of the first run.';
    END IF;
    IF repeat IS NULL OR repeat < -1 THEN
        RAISE EXCEPTION '%: repeat must be -1 (for ever), 0 (run once) or a number of repeats, got %',
                caller, coalesce(repeat::text, 'NULL')
            USING ERRCODE = 'PQ001';
    END IF;
    IF repeat_until < scheduled_for THEN
        RAISE EXCEPTION '%: repeat_until % is before the first run %', caller, repeat_until, scheduled_for
            USING ERRCODE = 'PQ001', HINT = 'Pass the last time a run may start, after scheduled_for.';
    END IF;
    IF (repeat <> 0 OR repeat_until IS NOT NULL) AND repeat_interval IS NULL THEN
        RAISE EXCEPTION '%: a repeating job needs repeat_interval, the time between its runs', caller
            USING ERRCODE = 'PQ001', HINT = 'Pass e.g. repeat_interval => ''1 day'' or ''15 minutes''.';
    END IF;
    IF repeat = 0 AND repeat_until IS NULL AND repeat_interval IS NOT NULL THEN
        RAISE EXCEPTION '%: repeat_interval % is given but repeat is 0: the job would run once', caller, repeat_interval
            USING ERRCODE = 'PQ001', HINT = 'Pass repeat => -1 to repeat for ever, a count, or repeat_until.';
    END IF;
    IF repeat_interval IS NOT NULL THEN
        v_parts := _pq_interval_parts(repeat_interval);
        IF v_parts.months < 0
           OR (v_parts.months = 0 AND (v_parts.days < 0 OR v_parts.clock < interval '0'))
           OR _pq_schedule_step(scheduled_for, repeat_interval, time_zone, 1)
              < scheduled_for + interval '1 second' THEN
            RAISE EXCEPTION '%: repeat_interval % must be at least 1 second and move forward', caller, repeat_interval
                USING ERRCODE = 'PQ001',
                      HINT = 'Use a positive interval such as ''90 seconds'', ''1 day'' or ''1 month -1 day'' (each month''s last day from the 1st).';
        END IF;
    END IF;
    IF (between_start IS NULL) <> (between_end IS NULL) THEN
        RAISE EXCEPTION '%: a window needs both between_start and between_end, got % and %', caller,
                coalesce(between_start::text, 'NULL'), coalesce(between_end::text, 'NULL')
            USING ERRCODE = 'PQ001', HINT = 'Pass both, e.g. ''02:00'' and ''18:30'' (''22:00'' and ''02:00'' crosses midnight), or neither.';
    END IF;
    IF between_start = between_end THEN
        RAISE EXCEPTION '%: the window % to % is empty: its start and end are the same', caller, between_start, between_end
            USING ERRCODE = 'PQ001', HINT = 'Leave the window out to allow every time of day.';
    END IF;
    IF weekdays IS NOT NULL THEN
        IF cardinality(weekdays) = 0 THEN
            RAISE EXCEPTION '%: weekdays is empty: the job could never run', caller
                USING ERRCODE = 'PQ001', HINT = 'Pass the days it may run, 0 (Monday) to 6 (Sunday), or NULL for every day.';
        END IF;
        SELECT d INTO v_bad FROM unnest(weekdays) AS d WHERE d IS NULL OR d NOT BETWEEN 0 AND 6 LIMIT 1;
        IF FOUND THEN
            RAISE EXCEPTION '%: weekday % is not a day: weekdays are 0 (Monday) to 6 (Sunday)', caller, coalesce(v_bad::text, 'NULL')
                USING ERRCODE = 'PQ001';
        END IF;
    END IF;
END;
$$;

-- _pq_check_schedule_name(caller, name): raise PQ001, naming the caller, unless name is a
-- schedule name (1 to 200 characters). Locks: none.
CREATE FUNCTION _pq_check_schedule_name(caller text, name text)
RETURNS void
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF name IS NULL OR name = '' OR length(name) > 200 THEN
        RAISE EXCEPTION '%: a schedule name is 1 to 200 characters, got %', caller,
                coalesce(quote_literal(left(name, 210)), 'NULL')
            USING ERRCODE = 'PQ001', HINT = 'Name it for what it does, e.g. ''nightly-report''.';
    END IF;
END;
$$;

-- _pq_put_schedule(job): insert the first run of a schedule (job: the pq_job row to insert;
-- its id, status and times are not read) and return the stored row. A named schedule whose
-- name has a pending run is replaced (create or replace): its pending run takes the new
-- definition and first run, unless the definition is unchanged, when it is left as it is,
-- so that registering the same schedule at every deploy keeps its due or overdue run. An
-- upsert on the unique index pq_job_schedule_next, so that a replacement racing a worker
-- that is claiming the pending run waits for it and then replaces the run it inserted.
-- Locks: the pending run's row. Notifies: pq_jobs (trigger on pq_job) for an insert.
CREATE FUNCTION _pq_put_schedule(job pq_job)
RETURNS pq_job
LANGUAGE plpgsql AS $$
DECLARE
    v_job pq_job;
BEGIN
    INSERT INTO pq_job AS j (queue, origin, status, func, args, kwargs, instance, description,
                             timeout, result_ttl, scheduled_for, repeat, repeat_until,
                             repeat_interval, between_start, between_end, weekdays, time_zone,
                             repeat_from, cron, schedule_name, priority, max_retries,
                             retry_intervals)
    VALUES (job.queue, job.queue, 'scheduled', job.func, job.args, job.kwargs, job.instance,
            job.description, job.timeout, job.result_ttl, job.scheduled_for, job.repeat,
            job.repeat_until, job.repeat_interval, job.between_start, job.between_end,
            job.weekdays, job.time_zone, job.repeat_from, job.cron, job.schedule_name,
            coalesce(job.priority, 0), coalesce(job.max_retries, 0), job.retry_intervals)
    ON CONFLICT (schedule_name) WHERE status = 'scheduled' AND repeat <> 0 AND schedule_name IS NOT NULL
    DO UPDATE SET queue = EXCLUDED.queue, origin = EXCLUDED.origin, func = EXCLUDED.func,
                  args = EXCLUDED.args, kwargs = EXCLUDED.kwargs, instance = EXCLUDED.instance,
                  description = EXCLUDED.description, timeout = EXCLUDED.timeout,
                  result_ttl = EXCLUDED.result_ttl, scheduled_for = EXCLUDED.scheduled_for,
                  repeat = EXCLUDED.repeat, repeat_until = EXCLUDED.repeat_until,
                  repeat_interval = EXCLUDED.repeat_interval, between_start = EXCLUDED.between_start,
                  between_end = EXCLUDED.between_end, weekdays = EXCLUDED.weekdays,
                  time_zone = EXCLUDED.time_zone, repeat_from = EXCLUDED.repeat_from,
                  cron = EXCLUDED.cron, priority = EXCLUDED.priority,
                  max_retries = EXCLUDED.max_retries, retry_intervals = EXCLUDED.retry_intervals,
                  enqueued_at = now()
     WHERE (j.queue, j.func, j.args, j.kwargs, j.instance, j.description, j.timeout, j.result_ttl,
            j.repeat, j.repeat_until, j.repeat_interval, j.between_start, j.between_end,
            j.weekdays, j.time_zone, j.cron, j.priority, j.max_retries, j.retry_intervals)
           IS DISTINCT FROM
           (EXCLUDED.queue, EXCLUDED.func, EXCLUDED.args, EXCLUDED.kwargs, EXCLUDED.instance,
            EXCLUDED.description, EXCLUDED.timeout, EXCLUDED.result_ttl, EXCLUDED.repeat,
            EXCLUDED.repeat_until, EXCLUDED.repeat_interval, EXCLUDED.between_start,
            EXCLUDED.between_end, EXCLUDED.weekdays, EXCLUDED.time_zone, EXCLUDED.cron,
            EXCLUDED.priority, EXCLUDED.max_retries, EXCLUDED.retry_intervals)
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

-- pq_schedule(queue_name, func, args, kwargs, scheduled_for, repeat, repeat_until,
-- repeat_interval, between_start, between_end, weekdays, time_zone, timeout, result_ttl,
-- description, instance, name, priority, max_retries, retry_intervals): add a 'scheduled'
-- job and return its id. It first runs at
-- scheduled_for (default now()), moved into the window and weekdays if outside them; with
-- repeat (-1: for ever; N: N more runs, N + 1 in all) or repeat_until, it runs again on
-- the grid of repeat_interval (default '1 day' with a window or weekdays) from that first
-- run, skipping runs outside the window and weekdays (see above), each run a new job. A
-- name makes it a named schedule (create or replace, see _pq_put_schedule; pq_unschedule,
-- pq_schedules). The
-- window (between_start to between_end, crossing midnight when start > end), weekdays (0 =
-- Monday) and the interval's days and months are wall-clock rules in time_zone (NULL: the
-- session's TimeZone). func, args, kwargs, timeout, result_ttl, description and instance
-- are as for pq_enqueue, with its limits; so are priority, max_retries and retry_intervals
-- (since migration 0009), which every run of the schedule takes. Bad input raises PQ001
-- naming it; nothing is stored.
-- _pq_schedule_job(...), same arguments: the same, returning the new row (what Python uses).
-- Locks: none beyond the inserted row. Notifies: pq_jobs with the queue name (trigger on
-- pq_job), so that workers plan their sleep with the new due time.
-- Security definer, both: a role needs only EXECUTE on them.
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
    name text DEFAULT NULL,
    priority integer DEFAULT 0,
    max_retries integer DEFAULT 0,
    retry_intervals integer[] DEFAULT NULL
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
    PERFORM _pq_check_retry('pq_schedule', priority, max_retries, retry_intervals);
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
    v_job.priority := priority;
    v_job.max_retries := max_retries;
    v_job.retry_intervals := retry_intervals;
    RETURN _pq_put_schedule(v_job);
END;
$$;
COMMENT ON FUNCTION _pq_schedule_job(text, text, jsonb, jsonb, timestamptz, integer, timestamptz, interval,
                                     time, time, integer[], text, integer, integer, text, bytea, text,
                                     integer, integer, integer[]) IS
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
    name text DEFAULT NULL,
    priority integer DEFAULT 0,
    max_retries integer DEFAULT 0,
    retry_intervals integer[] DEFAULT NULL
)
RETURNS bigint
LANGUAGE sql SECURITY DEFINER AS $$
    SELECT (_pq_schedule_job(queue_name, func, args, kwargs, scheduled_for, repeat, repeat_until,
                             repeat_interval, between_start, between_end, weekdays, time_zone,
                             timeout, result_ttl, description, instance, name, priority,
                             max_retries, retry_intervals)).id;
$$;
COMMENT ON FUNCTION pq_schedule(text, text, jsonb, jsonb, timestamptz, integer, timestamptz, interval,
                                time, time, integer[], text, integer, integer, text, bytea, text,
                                integer, integer, integer[]) IS
    'Schedule a django-pq job: first run at scheduled_for, repeating (repeat -1/N or repeat_until) every repeat_interval within a daily window and weekdays, in time_zone; returns the job id.';

-- pq_schedule_cron(name, schedule, func, args, kwargs, queue_name, time_zone, timeout,
-- result_ttl, description, priority, max_retries, retry_intervals): create or replace the
-- named cron schedule (pg_cron style) and return the id of the job of its next tick. schedule is a five-field cron expression read
-- in time_zone (see pq_cron_next). Each tick is one job: the next tick's job is inserted
-- when a worker claims the current one, and a unique index on (schedule_name,
-- scheduled_for) makes that one job per tick whatever the number of workers. Ticks missed
-- while no worker ran run once. Replacing a schedule replaces its pending tick (not a run
-- already started); registering it again unchanged keeps the pending tick, also an overdue
-- one (see _pq_put_schedule).
-- Locks: the pending tick's row. Notifies: pq_jobs with the queue name (trigger on pq_job).
-- Security definer: a role needs only EXECUTE.
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
    description text DEFAULT NULL,
    priority integer DEFAULT 0,
    max_retries integer DEFAULT 0,
    retry_intervals integer[] DEFAULT NULL
)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    v_job pq_job;
BEGIN
    PERFORM _pq_check_enqueue('pq_schedule_cron', queue_name, timeout, result_ttl, description);
    PERFORM _pq_check_call('pq_schedule_cron', func, args, kwargs);
    PERFORM _pq_check_retry('pq_schedule_cron', priority, max_retries, retry_intervals);
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
    v_job.priority := priority;
    v_job.max_retries := max_retries;
    v_job.retry_intervals := retry_intervals;
    RETURN (_pq_put_schedule(v_job)).id;
END;
$$;
COMMENT ON FUNCTION pq_schedule_cron(text, text, text, jsonb, jsonb, text, text, integer, integer, text,
                                     integer, integer, integer[]) IS
    'Create or replace a named django-pq cron schedule (five-field cron expression in a time zone); returns the job id of its next tick.';

-- pq_unschedule(name): remove the named schedule: its pending runs (the one carrying the
-- schedule on, and a last counted run or a run a stopping worker put back); a run already
-- started goes on. False if there is none. Locks: the pending run's row. Notifies: nothing.
-- Security definer: a role needs only EXECUTE.
CREATE FUNCTION pq_unschedule(name text)
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER AS $$
BEGIN
    DELETE FROM pq_job j WHERE j.schedule_name = pq_unschedule.name AND j.status = 'scheduled';
    RETURN FOUND;
END;
$$;
COMMENT ON FUNCTION pq_unschedule(text) IS 'Remove a named django-pq schedule; false if there is none.';

-- pq_schedules: the named schedules, with their next run (the earliest pending run of the
-- name), their latest run's job (the latest run claimed), and the priority and retries
-- their runs get (since migration 0010, as the last three columns). The columns it reads
-- are named, not p.*: a view on p.* depends on every column of pq_job, which a migration
-- dropping one (a reverse) could then not drop.
CREATE VIEW pq_schedules AS
SELECT s.schedule_name AS name,
       coalesce(s.cron, s.repeat_interval::text) AS schedule,
       s.time_zone, s.queue, s.func, s.args, s.kwargs,
       s.scheduled_for AS next_run, s.id AS next_job_id,
       l.id AS last_job_id, l.status AS last_status, l.scheduled_for AS last_run,
       s.priority, s.max_retries, s.retry_intervals
  FROM (SELECT DISTINCT ON (p.schedule_name) p.id, p.schedule_name, p.cron, p.repeat_interval,
              p.time_zone, p.queue, p.func, p.args, p.kwargs, p.scheduled_for,
              p.priority, p.max_retries, p.retry_intervals
          FROM pq_job p
         WHERE p.status = 'scheduled' AND p.schedule_name IS NOT NULL
         ORDER BY p.schedule_name, p.scheduled_for, p.id) AS s
  LEFT JOIN LATERAL (
        SELECT r.id, r.status, r.scheduled_for FROM pq_job r
         WHERE r.schedule_name = s.schedule_name AND r.status <> 'scheduled'
         ORDER BY r.scheduled_for DESC, r.id DESC
         LIMIT 1) AS l ON true;
COMMENT ON VIEW pq_schedules IS 'django-pq named schedules: next run and latest run''s job.';

-- _pq_repeat_job(): AFTER UPDATE row trigger on pq_job, for a repeating job just claimed
-- ('scheduled' -> 'started' with repeat <> 0): insert its next run (see above) unless the
-- schedule has ended. The next run of a named schedule is inserted ON CONFLICT DO NOTHING:
-- one job per tick. (After the update, so that the claimed row no longer holds its name's
-- one pending place.) Locks: none beyond the inserted row. Notifies: pq_jobs (the insert).
CREATE FUNCTION _pq_repeat_job()
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
COMMENT ON FUNCTION _pq_repeat_job() IS
    'Trigger: when a repeating django-pq job is claimed, insert its next run.';

-- _pq_repeat_once(): BEFORE UPDATE row trigger on pq_job, for the same rows: the claimed
-- row becomes a single run (repeat 0), so that putting it back (pq_release) or requeueing
-- it never forks the schedule. Locks: none. Notifies: nothing.
CREATE FUNCTION _pq_repeat_once()
RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.repeat := 0;
    RETURN NEW;
END;
$$;
COMMENT ON FUNCTION _pq_repeat_once() IS
    'Trigger: a claimed repeating django-pq job becomes a single run (its next run carries the schedule).';

CREATE TRIGGER pq_job_100_repeat_once
    BEFORE UPDATE OF status ON pq_job
    FOR EACH ROW WHEN (OLD.status = 'scheduled' AND NEW.status = 'started' AND OLD.repeat <> 0)
    EXECUTE FUNCTION _pq_repeat_once();

CREATE TRIGGER pq_job_100_repeat
    AFTER UPDATE OF status ON pq_job
    FOR EACH ROW WHEN (OLD.status = 'scheduled' AND NEW.status = 'started' AND OLD.repeat <> 0)
    EXECUTE FUNCTION _pq_repeat_job();
