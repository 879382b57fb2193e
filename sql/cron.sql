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
