-- django-pq SQL migration 0011: the thirteen CHECK constraints of pq_job become one,
-- pq_job_valid, calling _pq_job_valid. The rules are the same; a row that breaks one is
-- refused with check_violation (23514) naming the rule. PostgreSQL reads every CHECK
-- expression of a table back from its stored text at each statement that writes a row:
-- the thirteen cost about a fifth of the server time of an enqueue and of a claim or finish.
-- Adding the constraint checks the rows already in pq_job (which the old constraints kept
-- valid) while the table is locked: 1.8 s for a million rows here. pq_version() returns
-- 11. The function and constraint are those of sql/schema.sql, the truth for fresh
-- installs. Frozen once released: never edit; add a new migration instead.

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

ALTER TABLE pq_job
    DROP CONSTRAINT IF EXISTS pq_job_status_check,
    DROP CONSTRAINT IF EXISTS pq_job_func_check,
    DROP CONSTRAINT IF EXISTS pq_job_args_check,
    DROP CONSTRAINT IF EXISTS pq_job_kwargs_check,
    DROP CONSTRAINT IF EXISTS pq_job_timeout_check,
    DROP CONSTRAINT IF EXISTS pq_job_result_ttl_check,
    DROP CONSTRAINT IF EXISTS pq_job_repeat_check,
    DROP CONSTRAINT IF EXISTS pq_job_priority_check,
    DROP CONSTRAINT IF EXISTS pq_job_max_retries_check,
    DROP CONSTRAINT IF EXISTS pq_job_retry_intervals_check,
    DROP CONSTRAINT IF EXISTS pq_job_errors_check,
    DROP CONSTRAINT IF EXISTS pq_job_check,
    DROP CONSTRAINT IF EXISTS pq_job_check1,
    ADD CONSTRAINT pq_job_valid CHECK (_pq_job_valid(status, scheduled_for, func, args, kwargs, errors,
                                                     timeout, result_ttl, repeat, cron, repeat_interval,
                                                     priority, max_retries, retry_intervals));

CREATE OR REPLACE FUNCTION pq_version()
RETURNS integer
LANGUAGE sql IMMUTABLE AS $$
    SELECT 11;
$$;
COMMENT ON FUNCTION pq_version() IS
    'Version of the installed django-pq SQL: the number of its latest migration.';
