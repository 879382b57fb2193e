-- Reverse of django-pq SQL migration 0010: pq_schedules without the priority and retry
-- columns. A view cannot lose columns in place: it is dropped and made again, and the
-- roles it was granted to get their privileges back. Its columns are named, not p.* (at
-- this point p.* would include the columns of 0008, whose reverse then could not drop them).

DO $$
DECLARE
    v_acl aclitem[] := (SELECT c.relacl FROM pg_class c WHERE c.oid = 'pq_schedules'::regclass);
    v_owner oid := (SELECT c.relowner FROM pg_class c WHERE c.oid = 'pq_schedules'::regclass);
    v_grant record;
BEGIN
    DROP VIEW pq_schedules;
    CREATE VIEW pq_schedules AS
    SELECT s.schedule_name AS name,
           coalesce(s.cron, s.repeat_interval::text) AS schedule,
           s.time_zone, s.queue, s.func, s.args, s.kwargs,
           s.scheduled_for AS next_run, s.id AS next_job_id,
           l.id AS last_job_id, l.status AS last_status, l.scheduled_for AS last_run
      FROM (SELECT DISTINCT ON (p.schedule_name) p.id, p.schedule_name, p.cron, p.repeat_interval,
                  p.time_zone, p.queue, p.func, p.args, p.kwargs, p.scheduled_for
              FROM pq_job p
             WHERE p.status = 'scheduled' AND p.schedule_name IS NOT NULL
             ORDER BY p.schedule_name, p.scheduled_for, p.id) AS s
      LEFT JOIN LATERAL (
            SELECT r.id, r.status, r.scheduled_for FROM pq_job r
             WHERE r.schedule_name = s.schedule_name AND r.status <> 'scheduled'
             ORDER BY r.scheduled_for DESC, r.id DESC
             LIMIT 1) AS l ON true;
    COMMENT ON VIEW pq_schedules IS 'django-pq named schedules: next run and latest run''s job.';
    FOR v_grant IN
        SELECT a.grantee, a.privilege_type FROM aclexplode(v_acl) AS a WHERE a.grantee <> v_owner
    LOOP
        EXECUTE format('GRANT %s ON pq_schedules TO %s', v_grant.privilege_type,
                       CASE WHEN v_grant.grantee = 0 THEN 'PUBLIC'
                            ELSE quote_ident(pg_get_userbyid(v_grant.grantee)) END);
    END LOOP;
END;
$$;

CREATE OR REPLACE FUNCTION pq_version()
RETURNS integer
LANGUAGE sql IMMUTABLE AS $$
    SELECT 9;
$$;
COMMENT ON FUNCTION pq_version() IS
    'Version of the installed django-pq SQL: the number of its latest migration.';
