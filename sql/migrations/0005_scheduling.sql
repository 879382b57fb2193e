-- django-pq SQL migration 0005: scheduling and cron schedules.
-- Repeating jobs (pq_schedule: interval, window, weekdays, in a time zone) and named cron
-- schedules (pq_schedule_cron, pq_unschedule, pq_schedules, pq_cron_next), their next run
-- computed in SQL when a run is claimed. pq_version() returns 5. The functions are those
-- of sql/*.sql, the truth for fresh installs. Frozen once released: never edit; add a new
-- migration instead.

ALTER TABLE pq_job
    ADD COLUMN time_zone text,
    ADD COLUMN repeat_from timestamptz,
    ADD COLUMN cron text,
    ADD COLUMN schedule_name text,
    ADD CHECK (cron IS NULL OR repeat_interval IS NULL);
CREATE UNIQUE INDEX pq_job_schedule_next ON pq_job (schedule_name)
    WHERE status = 'scheduled' AND repeat <> 0 AND schedule_name IS NOT NULL;
CREATE UNIQUE INDEX pq_job_schedule_tick ON pq_job (schedule_name, scheduled_for)
    WHERE schedule_name IS NOT NULL AND cron IS NOT NULL;

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

-- Cron expressions: pq_cron_next (the next tick of a cron expression, read in a time zone)
-- and _pq_check_cron (refuse a bad expression with PQ001, naming the bad field).
--
-- The five standard fields: minute (0-59) hour (0-23) day-of-month (1-31) month (1-12)
-- day-of-week (0-7, 0 and 7 are Sunday). Each field is a comma-separated list of items:
--   *          every value;
--   a          one value;
--   a-b        a to b (a <= b);
--   */n, a-b/n every n-th value of the field or of a to b, from its start;
--   a/n        every n-th value from a to the field's end;
-- where a value is a number, or in the month field a name jan-dec and in the day-of-week
-- field a name sun-sat (case-insensitive). Steps go from 1 to the field's number of values
-- (60, 24, 31, 12, 7): a step does not carry over into the next hour, day or month, so
-- '*/90' (minutes) is refused rather than read as minute 0 only.
-- Day-of-week details, as croniter 7 reads them: * is 0-6; 7 is Sunday; a range may end on
-- Sunday written 7, 0 or sun ('fri-sun' is Friday to Sunday); a/n runs from a to 6
-- (Saturday), 7/n as 0/n.
-- Refused, though some crons accept them: reversed ranges ('5-2'; croniter wraps them
-- round), '*' inside a list ('*,5'), L W # H ?, six or seven fields (seconds, years).
-- Aliases: @yearly (@annually) '0 0 1 1 *', @monthly '0 0 1 * *', @weekly '0 0 * * 0',
-- @daily (@midnight) '0 0 * * *', @hourly '0 * * * *'.
--
-- Days: when both day-of-month and day-of-week are restricted, a day matches if either
-- does; otherwise both must (the unrestricted one matches every day). "Restricted" is
-- croniter 7's reading (its day_or default), which differs from Vixie cron's "does not start
-- with *": a field is unrestricted when it is '*', or when it names every value of the field
-- ('1-31', '*/1', '0-6', 'sun-sat') and the other day field contains a '*'. So '*/2' in
-- day-of-month is restricted: '0 0 */2 * mon' runs on odd days and on Mondays (Vixie cron:
-- on odd days that are Mondays), while '0 0 */2 * *' runs on odd days.
--
-- Time zones: the fields are wall-clock time in a time zone; each tick is turned into an
-- instant by _pq_zoned (sql/zone.sql): a tick in an hour skipped by a DST change runs once,
-- at the end of the gap (several skipped ticks are that one instant); a tick in a repeated
-- hour runs once, at its first occurrence.
--
-- Representation: each field is parsed into a bit(64) mask in which value v is bit v + 1
-- counting from the left (position(B'1' IN mask << v) finds the first value >= v); the search
-- walks months, then the matching days of a month, then hours and minutes of a day, never
-- minute by minute. The expression is never made into SQL text.

-- _pq_cron_parse(caller, expr): the masks of a cron expression, or PQ001 naming the caller
-- and the bad part. Returns 6 bit strings: minute, hour, day-of-month, month, day-of-week
-- (each bit(64), value v at bit v + 1; an unrestricted day field has all its values), then
-- B'1' when a day matches if either day field does, B'0' when both must. Locks: none.
CREATE FUNCTION _pq_cron_parse(caller text, expr text)
RETURNS varbit[]
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    c_names constant text[] := ARRAY['minute', 'hour', 'day-of-month', 'month', 'day-of-week'];
    c_low constant integer[] := ARRAY[0, 0, 1, 1, 0];
    c_high constant integer[] := ARRAY[59, 23, 31, 12, 7];
    -- the last value of '*' and of a/n: day-of-week 7 is Sunday again, so those stop at 6
    c_end constant integer[] := ARRAY[59, 23, 31, 12, 6];
    c_count constant integer[] := ARRAY[60, 24, 31, 12, 7];
    c_months constant text[] := ARRAY['jan', 'feb', 'mar', 'apr', 'may', 'jun',
                                      'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];
    c_days constant text[] := ARRAY['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'];
    c_zero constant bit(64) := repeat('0', 64)::bit(64);
    c_ones constant bit(64) := repeat('1', 64)::bit(64);
    c_first constant bit(64) := rpad('1', 64, '0')::bit(64);
    c_hint constant text := 'A cron expression is five fields: minute (0-59) hour (0-23) day-of-month (1-31) '
        'month (1-12 or jan-dec) day-of-week (0-7 or sun-sat; 0 and 7 are Sunday), each *, a value, '
        'a range a-b, a step */n, a-b/n or a/n, or a list of these: e.g. ''*/15 9-17 * * mon-fri''.';
    v_text text;
    v_fields text[];
    v_field text;
    v_item text;
    v_at text;
    v_parts text[];
    v_range text[];
    v_digits boolean;
    v_token text;
    v_value integer;
    v_bounds integer[];
    v_step integer;
    v_mask bit(64);
    v_masks bit(64)[] := '{}';
    v_dom_all boolean;
    v_dow_all boolean;
    v_dom_restricted boolean;
    v_dow_restricted boolean;
    v_first_day integer;
BEGIN
    IF expr IS NULL OR btrim(expr, E' \t\n\r') = '' THEN
        RAISE EXCEPTION '%: cron expression must be five fields, got %', caller, coalesce(quote_literal(expr), 'NULL')
            USING ERRCODE = 'PQ001', HINT = c_hint;
    END IF;
    v_text := btrim(expr, E' \t\n\r');
    IF left(v_text, 1) = '@' THEN
        v_text := CASE lower(v_text)
                      WHEN '@yearly' THEN '0 0 1 1 *' WHEN '@annually' THEN '0 0 1 1 *'
                      WHEN '@monthly' THEN '0 0 1 * *' WHEN '@weekly' THEN '0 0 * * 0'
                      WHEN '@daily' THEN '0 0 * * *' WHEN '@midnight' THEN '0 0 * * *'
                      WHEN '@hourly' THEN '0 * * * *' END;
        IF v_text IS NULL THEN
            RAISE EXCEPTION '%: cron alias % is not supported', caller, quote_literal(expr)
                USING ERRCODE = 'PQ001',
                      HINT = 'The aliases are @yearly, @annually, @monthly, @weekly, @daily, @midnight and @hourly; or write the five fields, e.g. ''0 3 * * *''.';
        END IF;
    END IF;
    -- (string functions, not regular expressions: these are much cheaper in PL/pgSQL)
    v_fields := array_remove(string_to_array(translate(v_text, E'\t\n\r', '   '), ' '), '');
    IF cardinality(v_fields) <> 5 THEN
        RAISE EXCEPTION '%: cron expression % has % fields; it needs 5: minute hour day-of-month month day-of-week',
                caller, quote_literal(expr), cardinality(v_fields)
            USING ERRCODE = 'PQ001', HINT = c_hint;
    END IF;

    FOR i IN 1..5 LOOP
        v_field := v_fields[i];
        IF v_field = '*' THEN
            -- (the common case, without the general path's work)
            v_masks := v_masks || ((c_ones >> c_low[i]) & ~(c_ones >> (c_end[i] + 1)));
            CONTINUE;
        END IF;
        v_mask := c_zero;
        FOREACH v_item IN ARRAY string_to_array(v_field, ',') LOOP
            -- (a plain value in range: the common case again)
            IF v_item <> '' AND length(v_item) <= 2 AND translate(v_item, '0123456789', '') = '' THEN
                v_value := v_item::integer;
                IF v_value BETWEEN c_low[i] AND c_high[i] THEN
                    v_mask := v_mask | (c_first >> v_value);
                    CONTINUE;
                END IF;
            END IF;
            -- Where an error is: the field, then the item when the field is a list.
            v_at := format('%s: cron field %s (%s) %s', caller, i, c_names[i], quote_literal(v_field));
            IF v_item = '' THEN
                RAISE EXCEPTION '% has an empty list item', v_at
                    USING ERRCODE = 'PQ001', HINT = 'Separate the items of a list by single commas, e.g. ''1,15,30''.';
            END IF;
            IF v_item = '*' AND v_item <> v_field THEN
                RAISE EXCEPTION '% has * in a list; * stands alone', v_at
                    USING ERRCODE = 'PQ001', HINT = '* alone means every value; drop the other items.';
            END IF;
            IF v_item <> v_field THEN
                v_at := v_at || ': ' || quote_literal(v_item);
            END IF;
            -- v_parts: low, high (NULL unless a range), step (NULL unless one)
            v_parts := string_to_array(v_item, '/');
            v_range := string_to_array(v_parts[1], '-');
            IF cardinality(v_parts) > 2 OR cardinality(v_range) > 2 OR '' = ANY(v_parts || v_range)
               OR ('*' = ANY(v_range) AND v_parts[1] <> '*')
               OR translate(v_parts[2], '0123456789', '') <> '' THEN
                RAISE EXCEPTION '% is not a value, range or step', v_at
                    USING ERRCODE = 'PQ001', HINT = c_hint;
            END IF;
            v_parts := ARRAY[v_range[1], v_range[2], v_parts[2]];

            -- The step.
            v_step := 1;
            IF v_parts[3] IS NOT NULL THEN
                v_step := CASE WHEN length(v_parts[3]) <= 4 THEN v_parts[3]::integer END;
                IF v_step IS NULL OR v_step < 1 OR v_step > c_count[i] THEN
                    RAISE EXCEPTION '% has step %; its steps go from 1 to %',
                            v_at, v_parts[3], c_count[i]
                        USING ERRCODE = 'PQ001',
                              HINT = 'A step does not carry over into the next hour, day or month: */n counts within the field''s values.';
                END IF;
            END IF;

            -- The bounds: '*', a, a-b.
            IF v_parts[1] = '*' THEN
                v_bounds := ARRAY[c_low[i], c_end[i]];
            ELSE
                v_bounds := '{}';
                FOREACH v_token IN ARRAY ARRAY[v_parts[1], v_parts[2]] LOOP
                    CONTINUE WHEN v_token IS NULL;
                    v_digits := translate(v_token, '0123456789', '') = '';
                    IF v_digits THEN
                        v_value := CASE WHEN length(v_token) <= 4 THEN v_token::integer END;
                    ELSIF i = 4 THEN
                        v_value := array_position(c_months, lower(v_token));
                    ELSIF i = 5 THEN
                        v_value := array_position(c_days, lower(v_token)) - 1;
                    ELSE
                        v_value := NULL;
                    END IF;
                    IF v_value IS NULL AND NOT v_digits THEN
                        RAISE EXCEPTION '% is not a %',
                                v_at || CASE WHEN v_token <> v_item THEN ': ' || quote_literal(v_token) ELSE '' END,
                                CASE i WHEN 4 THEN 'number or a month name (jan-dec)'
                                       WHEN 5 THEN 'number or a day name (sun-sat)'
                                       ELSE 'number' END
                            USING ERRCODE = 'PQ001', HINT = c_hint;
                    END IF;
                    IF v_value IS NULL OR v_value NOT BETWEEN c_low[i] AND c_high[i] THEN
                        RAISE EXCEPTION '% is out of range %-%',
                                v_at || CASE WHEN v_token <> v_item THEN ': ' || quote_literal(v_token) ELSE '' END,
                                c_low[i], c_high[i]
                            USING ERRCODE = 'PQ001', HINT = c_hint;
                    END IF;
                    v_bounds := v_bounds || v_value;
                END LOOP;
                IF v_parts[2] IS NOT NULL THEN
                    -- 'fri-sun': Friday to Sunday, Sunday read as 7.
                    IF i = 5 AND v_bounds[2] = 0 AND v_bounds[1] > 0 THEN
                        v_bounds[2] := 7;
                    END IF;
                    IF v_bounds[1] > v_bounds[2] THEN
                        RAISE EXCEPTION '% is a reversed range: % comes after %',
                                v_at, quote_literal(v_parts[1]), quote_literal(v_parts[2])
                            USING ERRCODE = 'PQ001',
                                  HINT = 'Write the range from low to high, or as a list of two ranges: ''22-23,0-2'' for hours 22 to 2.';
                    END IF;
                ELSIF v_parts[3] IS NOT NULL THEN
                    -- a/n: from a to the field's end (day-of-week: 7/n is 0/n).
                    IF i = 5 AND v_bounds[1] = 7 THEN
                        v_bounds[1] := 0;
                    END IF;
                    v_bounds := v_bounds || c_end[i];
                ELSE
                    v_bounds := v_bounds || v_bounds[1];
                END IF;
            END IF;

            IF v_step = 1 THEN
                -- bits low + 1 to high + 1
                v_mask := v_mask | ((c_ones >> v_bounds[1]) & ~(c_ones >> (v_bounds[2] + 1)));
            ELSE
                FOR v_value IN v_bounds[1]..v_bounds[2] BY v_step LOOP
                    v_mask := v_mask | (c_first >> v_value);
                END LOOP;
            END IF;
        END LOOP;
        IF i = 5 THEN
            -- 7 is Sunday: fold bit 8 onto bit 1.
            v_mask := (v_mask | ((v_mask & (c_first >> 7)) << 7)) & ~(c_ones >> 7);
        END IF;
        v_masks := v_masks || v_mask;
    END LOOP;

    -- Which day fields restrict (croniter's reading; see the top of this file).
    v_dom_all := v_masks[3] = ((c_ones >> 1) & ~(c_ones >> 32));
    v_dow_all := v_masks[5] = ~(c_ones >> 7);
    v_dom_restricted := v_fields[3] <> '*' AND NOT (v_dom_all AND strpos(v_fields[5], '*') > 0);
    v_dow_restricted := v_fields[5] <> '*' AND NOT (v_dow_all AND strpos(v_fields[3], '*') > 0);
    IF NOT v_dom_restricted THEN
        v_masks[3] := (c_ones >> 1) & ~(c_ones >> 32);
    END IF;
    IF NOT v_dow_restricted THEN
        v_masks[5] := ~(c_ones >> 7);
    END IF;

    -- Day-of-month alone decides the days: does one of its months have one of its days?
    -- Every month has a day 29 (February in leap years); all but February a day 30; the
    -- months of bits 2, 4, 6, 8, 9, 11 and 13 (January, March, ...) a day 31.
    IF v_dom_restricted AND NOT v_dow_restricted THEN
        v_first_day := position(B'1' IN v_masks[3]) - 1;
        IF v_first_day = 30 AND (v_masks[4] & ~(c_first >> 2)) = c_zero
           OR v_first_day = 31 AND (v_masks[4] & rpad('01010101101010', 64, '0')::bit(64)) = c_zero THEN
            RAISE EXCEPTION '%: cron expression % never fires (no month has that day)', caller, quote_literal(expr)
                USING ERRCODE = 'PQ001',
                      HINT = 'February has at most 29 days; April, June, September and November 30.';
        END IF;
    END IF;

    RETURN v_masks || (CASE WHEN v_dom_restricted AND v_dow_restricted THEN B'1' ELSE B'0' END)::bit(64);
END;
$$;
COMMENT ON FUNCTION _pq_cron_parse(text, text) IS
    'The field masks of a cron expression (minute, hour, day-of-month, month, day-of-week, days-or flag); PQ001 naming the bad field.';

-- _pq_check_cron(caller, expr): raise PQ001, naming the caller and the bad part, unless
-- expr is a cron expression that fires (see the top of this file for the syntax), e.g.
-- "pq_schedule_cron: cron field 2 (hour) '25' is out of range 0-23". Locks: none.
CREATE FUNCTION _pq_check_cron(caller text, expr text)
RETURNS void
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    PERFORM _pq_cron_parse(caller, expr);
END;
$$;
COMMENT ON FUNCTION _pq_check_cron(text, text) IS
    'Raise PQ001, naming the caller and the bad field, unless the text is a valid cron expression that fires.';

-- _pq_cron_next_local(fields, start): the first wall-clock tick >= start (a whole minute) of
-- the parsed expression fields (_pq_cron_parse), or NULL if there is none within the 9
-- calendar years from start's (Feb 29 alone, the sparsest valid expression, comes within 8:
-- 2096 -> 2104). Walks the months of the month field, the matching days of each, then the
-- hours and minutes of a day. Locks: none.
CREATE FUNCTION _pq_cron_next_local(fields varbit[], start timestamp)
RETURNS timestamp
LANGUAGE plpgsql IMMUTABLE STRICT AS $$
DECLARE
    c_ones constant bit(64) := repeat('1', 64)::bit(64);
    v_minutes bit(64) := fields[1];
    v_hours bit(64) := fields[2];
    v_dom bit(64) := fields[3];
    v_months bit(64) := fields[4];
    v_dow_text text := substr(fields[5]::text, 1, 7);
    v_or boolean := fields[6] = B'1'::bit(64);
    v_dow_all boolean := v_dow_text = '1111111' AND NOT v_or;
    v_first_minute integer := position(B'1' IN fields[1]) - 1;
    v_year integer := extract(year FROM start);
    v_month integer := extract(month FROM start);
    v_day integer := extract(day FROM start);
    v_hour integer := extract(hour FROM start);
    v_minute integer := extract(minute FROM start);
    v_last_year integer := v_year + 8;
    v_length integer;
    v_first_dow integer;
    v_week text;
    v_days bit(64);
    v_next integer;
BEGIN
    LOOP
        -- The first month of the field from v_month on, this year; else January next year.
        v_next := position(B'1' IN v_months << v_month);
        IF v_next = 0 THEN
            v_year := v_year + 1;
            IF v_year > v_last_year THEN
                RETURN NULL;
            END IF;
            v_month := 1; v_day := 1; v_hour := 0; v_minute := 0;
            CONTINUE;
        END IF;
        IF v_next > 1 THEN
            v_month := v_month + v_next - 1; v_day := 1; v_hour := 0; v_minute := 0;
        END IF;

        -- The month's matching days: day-of-month, day-of-week, either or both.
        v_length := CASE WHEN v_month = 2 THEN
                             CASE WHEN v_year % 4 = 0 AND (v_year % 100 <> 0 OR v_year % 400 = 0) THEN 29 ELSE 28 END
                         WHEN v_month IN (4, 6, 9, 11) THEN 30 ELSE 31 END;
        IF v_dow_all THEN
            v_days := v_dom;
        ELSE
            v_first_dow := extract(dow FROM make_date(v_year, v_month, 1));
            v_week := substr(v_dow_text || v_dow_text, v_first_dow + 1, 7);
            v_days := rpad('0' || left(repeat(v_week, 5), v_length), 64, '0')::bit(64);
            v_days := CASE WHEN v_or THEN v_days | v_dom ELSE v_days & v_dom END;
        END IF;
        v_days := v_days & ((c_ones << (64 - v_length)) >> 1);

        LOOP
            v_next := position(B'1' IN v_days << v_day);
            EXIT WHEN v_next = 0;
            IF v_next > 1 THEN
                v_day := v_day + v_next - 1; v_hour := 0; v_minute := 0;
            END IF;
            -- This hour from v_minute on, else the first minute of a later hour.
            IF position(B'1' IN v_hours << v_hour) = 1 THEN
                v_next := position(B'1' IN v_minutes << v_minute);
                IF v_next > 0 THEN
                    RETURN make_timestamp(v_year, v_month, v_day, v_hour, v_minute + v_next - 1, 0);
                END IF;
            END IF;
            v_next := position(B'1' IN v_hours << (v_hour + 1));
            IF v_next > 0 THEN
                RETURN make_timestamp(v_year, v_month, v_day, v_hour + v_next, v_first_minute, 0);
            END IF;
            v_day := v_day + 1; v_hour := 0; v_minute := 0;
        END LOOP;
        v_month := v_month + 1; v_day := 1; v_hour := 0; v_minute := 0;
    END LOOP;
END;
$$;
COMMENT ON FUNCTION _pq_cron_next_local(varbit[], timestamp) IS
    'The first wall-clock tick at or after a time of parsed cron fields (_pq_cron_parse), walking months, days, hours and minutes.';

-- pq_cron_next(expr, after, time_zone): the first tick of the cron expression expr strictly
-- after the instant after, its fields read as wall-clock time in time_zone (default UTC).
-- A tick skipped by a DST change fires at the end of the gap (several skipped ticks are
-- that one instant); a tick in a repeated hour fires once, at its first occurrence: when
-- after is in the second pass of a repeated hour, the ticks of the rest of that pass map to
-- instants before after and are passed over. PQ001 for a bad expression (_pq_check_cron),
-- an unknown time zone, or after NULL or infinite. Locks: none. Notifies: nothing.
-- STABLE: it depends on the time zone database.
CREATE FUNCTION pq_cron_next(expr text, after timestamptz, time_zone text DEFAULT 'UTC')
RETURNS timestamptz
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_fields varbit[] := _pq_cron_parse('pq_cron_next', expr);
    v_local timestamp;
    v_at timestamptz;
    v_low timestamp;
    v_high timestamp;
    v_mid timestamp;
BEGIN
    PERFORM _pq_check_time_zone('pq_cron_next', time_zone);
    IF after IS NULL OR NOT isfinite(after) THEN
        RAISE EXCEPTION 'pq_cron_next: after must be a finite time, got %', coalesce(after::text, 'NULL')
            USING ERRCODE = 'PQ001', HINT = 'Pass the instant to start from, e.g. now().';
    END IF;
    -- Ticks at or before L(after) are instants at or before after (_pq_zoned keeps order).
    v_local := date_trunc('minute', after AT TIME ZONE time_zone) + interval '1 minute';
    LOOP
        v_local := _pq_cron_next_local(v_fields, v_local);
        IF v_local IS NULL THEN
            RETURN NULL;
        END IF;
        v_at := _pq_zoned(v_local, time_zone);
        IF v_at > after THEN
            RETURN v_at;
        END IF;
        -- after is in the second pass of a repeated hour, and this tick's first (its only)
        -- firing was earlier: so are those of all the ticks up to the end of that hour. Rather
        -- than step tick by tick (60 with '* * * * *'), bisect for the first whole minute
        -- whose instant is after `after`, below L(after) + the DST shift (past that hour).
        v_low := v_local;
        v_high := date_trunc('minute', (after AT TIME ZONE time_zone)
                                       + ((v_at AT TIME ZONE time_zone) - (v_at AT TIME ZONE 'UTC'))
                                       - ((after AT TIME ZONE time_zone) - (after AT TIME ZONE 'UTC')))
                  + interval '1 minute';
        IF v_high > v_low AND _pq_zoned(v_high, time_zone) > after THEN
            WHILE v_high - v_low > interval '1 minute' LOOP
                v_mid := v_low + date_trunc('minute', (v_high - v_low) / 2);
                IF _pq_zoned(v_mid, time_zone) > after THEN
                    v_high := v_mid;
                ELSE
                    v_low := v_mid;
                END IF;
            END LOOP;
            v_local := v_high;
        ELSE
            v_local := v_local + interval '1 minute';
        END IF;
    END LOOP;
END;
$$;
COMMENT ON FUNCTION pq_cron_next(text, timestamptz, text) IS
    'The first tick of a five-field cron expression strictly after an instant, read as wall-clock time in a time zone (default UTC): pq_cron_next(''0 3 * * mon-fri'', now(), ''Europe/Paris''). A tick skipped by DST fires at the end of the gap; a repeated one once, the first time.';

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

-- pq_schedule(queue_name, func, args, kwargs, scheduled_for, repeat, repeat_until,
-- repeat_interval, between_start, between_end, weekdays, time_zone, timeout, result_ttl,
-- description, instance, name): add a 'scheduled' job and return its id. It first runs at
-- scheduled_for (default now()), moved into the window and weekdays if outside them; with
-- repeat (-1: for ever; N: N more runs, N + 1 in all) or repeat_until, it runs again on
-- the grid of repeat_interval (default '1 day' with a window or weekdays) from that first
-- run, skipping runs outside the window and weekdays (see above), each run a new job. A
-- name makes it a named schedule (create or replace, see _pq_put_schedule; pq_unschedule,
-- pq_schedules). The
-- window (between_start to between_end, crossing midnight when start > end), weekdays (0 =
-- Monday) and the interval's days and months are wall-clock rules in time_zone (NULL: the
-- session's TimeZone). func, args, kwargs, timeout, result_ttl, description and instance
-- are as for pq_enqueue, with its limits. Bad input raises PQ001 naming it; nothing is stored.
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

-- pq_schedule_cron(name, schedule, func, args, kwargs, queue_name, time_zone, timeout,
-- result_ttl, description): create or replace the named cron schedule (pg_cron style) and
-- return the id of the job of its next tick. schedule is a five-field cron expression read
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
-- name) and their latest run's job (the latest run claimed).
CREATE VIEW pq_schedules AS
SELECT s.schedule_name AS name,
       coalesce(s.cron, s.repeat_interval::text) AS schedule,
       s.time_zone, s.queue, s.func, s.args, s.kwargs,
       s.scheduled_for AS next_run, s.id AS next_job_id,
       l.id AS last_job_id, l.status AS last_status, l.scheduled_for AS last_run
  FROM (SELECT DISTINCT ON (p.schedule_name) p.*
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
                            repeat_from, cron, schedule_name)
        VALUES (OLD.queue, OLD.origin, 'scheduled', OLD.func, OLD.args, OLD.kwargs, OLD.instance,
                OLD.description, OLD.timeout, OLD.result_ttl, v_next,
                CASE WHEN OLD.repeat > 0 THEN OLD.repeat - 1 ELSE OLD.repeat END, OLD.repeat_until,
                OLD.repeat_interval, OLD.between_start, OLD.between_end, OLD.weekdays, OLD.time_zone,
                OLD.repeat_from, OLD.cron, OLD.schedule_name)
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

CREATE OR REPLACE FUNCTION _pq_notify_jobs()
RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('pq_jobs', n.queue)
       FROM (SELECT DISTINCT j.queue FROM pq_new_jobs j WHERE j.status IN ('queued', 'scheduled')) AS n;
    RETURN NULL;
END;
$$;

COMMENT ON FUNCTION _pq_notify_jobs() IS 'Trigger: NOTIFY pq_jobs once per queue an insert added ready or scheduled jobs to.';

CREATE OR REPLACE FUNCTION pq_version()
RETURNS integer
LANGUAGE sql IMMUTABLE AS $$
    SELECT 5;
$$;

REVOKE ALL ON FUNCTION pq_enqueue(text, text, jsonb, jsonb, integer, integer, text, timestamptz, bytea) FROM PUBLIC;
REVOKE ALL ON FUNCTION pq_enqueue_many(text, text[], jsonb[], jsonb[], integer, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION _pq_enqueue_job(text, text, jsonb, jsonb, integer, integer, text, timestamptz, bytea) FROM PUBLIC;
REVOKE ALL ON FUNCTION pq_schedule(text, text, jsonb, jsonb, timestamptz, integer, timestamptz, interval,
                                   time, time, integer[], text, integer, integer, text, bytea, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION _pq_schedule_job(text, text, jsonb, jsonb, timestamptz, integer, timestamptz, interval,
                                        time, time, integer[], text, integer, integer, text, bytea, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION pq_schedule_cron(text, text, text, jsonb, jsonb, text, text, integer, integer, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION pq_unschedule(text) FROM PUBLIC;

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
