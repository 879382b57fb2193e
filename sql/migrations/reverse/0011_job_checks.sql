-- Reverse of django-pq SQL migration 0011: pq_job's thirteen CHECK constraints again, with
-- the names PostgreSQL gave them in migrations 0001, 0005 and 0008.

ALTER TABLE pq_job
    DROP CONSTRAINT pq_job_valid,
    ADD CONSTRAINT pq_job_status_check
        CHECK (status IN ('queued', 'scheduled', 'deferred', 'started', 'finished', 'failed')),
    ADD CONSTRAINT pq_job_func_check CHECK (func <> ''),
    ADD CONSTRAINT pq_job_args_check CHECK (jsonb_typeof(args) = 'array'),
    ADD CONSTRAINT pq_job_kwargs_check CHECK (jsonb_typeof(kwargs) = 'object'),
    ADD CONSTRAINT pq_job_timeout_check CHECK (timeout > 0),
    ADD CONSTRAINT pq_job_result_ttl_check CHECK (result_ttl >= -1),
    ADD CONSTRAINT pq_job_repeat_check CHECK (repeat >= -1),
    ADD CONSTRAINT pq_job_priority_check CHECK (priority BETWEEN -100 AND 100),
    ADD CONSTRAINT pq_job_max_retries_check CHECK (max_retries >= 0),
    ADD CONSTRAINT pq_job_retry_intervals_check CHECK (0 <= ALL (retry_intervals)),
    ADD CONSTRAINT pq_job_errors_check CHECK (jsonb_typeof(errors) = 'array'),
    ADD CONSTRAINT pq_job_check CHECK (status <> 'scheduled' OR scheduled_for IS NOT NULL),
    ADD CONSTRAINT pq_job_check1 CHECK (cron IS NULL OR repeat_interval IS NULL);

DROP FUNCTION _pq_job_valid(text, timestamptz, text, jsonb, jsonb, jsonb, integer, integer, integer, text,
                            interval, smallint, integer, integer[]);

CREATE OR REPLACE FUNCTION pq_version()
RETURNS integer
LANGUAGE sql IMMUTABLE AS $$
    SELECT 10;
$$;
COMMENT ON FUNCTION pq_version() IS
    'Version of the installed django-pq SQL: the number of its latest migration.';
