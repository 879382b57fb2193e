-- django-pq SQL migration 0010: the view pq_schedules shows the priority, max_retries and
-- retry_intervals each named schedule gives its runs (which 0009 added), as its last three
-- columns, and reads the columns of pq_job it shows by name rather than p.* (which tied it
-- to every column of pq_job, those 0008 added included). pq_version() returns 10. The
-- view is that of sql/schedule.sql, the truth for fresh installs. Frozen once released:
-- never edit; add a new migration instead.

CREATE OR REPLACE VIEW pq_schedules AS
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

CREATE OR REPLACE FUNCTION pq_version()
RETURNS integer
LANGUAGE sql IMMUTABLE AS $$
    SELECT 10;
$$;
COMMENT ON FUNCTION pq_version() IS
    'Version of the installed django-pq SQL: the number of its latest migration.';
