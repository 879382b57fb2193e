-- Time zones: wall-clock times of schedules, read in a named zone.
--
-- Schedules (pq_schedule's windows, weekdays and day or month steps, pq_cron_next's fields)
-- are wall-clock times in a time zone. Daylight-saving changes make some wall-clock times
-- not exist (spring forward: 02:30 is skipped) and others exist twice (fall back: 01:30
-- is lived twice). One rule for all of django-pq:
--   a wall-clock time that does not exist is the first instant after the gap (03:00 when
--     02:00-03:00 is skipped), so a run planned in the gap runs once, right after it;
--   a wall-clock time that exists twice is its first occurrence (the daylight-saving one),
--     so a run planned in the repeated hour runs once, not twice.
-- PostgreSQL's own "timestamp AT TIME ZONE" reads both as standard time (a skipped 02:30
-- becomes 03:30, a repeated 01:30 its second occurrence), hence this function.

-- _pq_check_time_zone(caller, time_zone): raise PQ001, naming the caller, unless
-- PostgreSQL knows time_zone ('Europe/Paris', 'UTC', ...).
CREATE FUNCTION _pq_check_time_zone(caller text, time_zone text)
RETURNS void
LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF time_zone IS NULL OR time_zone = '' THEN
        RAISE EXCEPTION '%: time_zone must be a time zone name, got %', caller, coalesce(quote_literal(time_zone), 'NULL')
            USING ERRCODE = 'PQ001', HINT = 'Use a name from pg_timezone_names, e.g. ''Europe/Paris'' or ''UTC''.';
    END IF;
    PERFORM now() AT TIME ZONE time_zone;
EXCEPTION
    WHEN invalid_parameter_value THEN
        RAISE EXCEPTION '%: time zone % is not known to PostgreSQL', caller, quote_literal(time_zone)
            USING ERRCODE = 'PQ001', HINT = 'Use a name from pg_timezone_names, e.g. ''Europe/Paris'' or ''UTC''.';
END;
$$;

-- _pq_zoned(local, time_zone): the instant at which the wall clocks of time_zone show
-- local, by the rule above (a skipped time: the end of the gap; a repeated time: its first
-- occurrence). Locks: none.
CREATE FUNCTION _pq_zoned(local timestamp, time_zone text)
RETURNS timestamptz
LANGUAGE plpgsql STABLE STRICT AS $$
DECLARE
    v_at timestamptz := local AT TIME ZONE time_zone;
    v_early timestamptz;
    v_low timestamptz;
    v_mid timestamptz;
BEGIN
    IF (v_at AT TIME ZONE time_zone) = local THEN
        -- It exists. If it exists twice, PostgreSQL chose the later: the earlier is the same
        -- wall-clock time at the offset in force some hours before (before the change).
        v_early := (local - ((v_at - interval '12 hours') AT TIME ZONE time_zone
                             - (v_at - interval '12 hours') AT TIME ZONE 'UTC')) AT TIME ZONE 'UTC';
        IF v_early < v_at AND (v_early AT TIME ZONE time_zone) = local THEN
            RETURN v_early;
        END IF;
        RETURN v_at;
    END IF;
    -- Skipped: v_at reads later than local (PostgreSQL applied the offset from before the
    -- change); the gap ends between v_at minus that overshoot (read before the gap) and
    -- v_at. Bisect to the second (zone changes happen on whole seconds).
    v_low := v_at - ((v_at AT TIME ZONE time_zone) - local);
    WHILE v_at - v_low > interval '1 second' LOOP
        v_mid := v_low + (v_at - v_low) / 2;
        v_mid := date_trunc('second', v_mid);
        EXIT WHEN v_mid <= v_low;
        IF (v_mid AT TIME ZONE time_zone) > local THEN
            v_at := v_mid;
        ELSE
            v_low := v_mid;
        END IF;
    END LOOP;
    RETURN v_at;
END;
$$;
COMMENT ON FUNCTION _pq_zoned(timestamp, text) IS
    'The instant a wall-clock time occurs in a time zone: a time skipped by a DST change is the end of the gap, a repeated time its first occurrence.';
