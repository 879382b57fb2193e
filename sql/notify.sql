-- Notifications: wake the workers listening on channel pq_jobs.
--
-- One channel for every queue, the payload being the queue name: workers LISTEN on the
-- constant channel and filter by payload, so no queue name is ever written into SQL text.
-- NOTIFY is transactional: it is delivered at commit, never for a rolled back enqueue, and
-- PostgreSQL folds identical notifications of one transaction into one, so a bulk insert
-- into a queue sends one wake-up, not one per job.

-- _pq_notify_job(): AFTER UPDATE row trigger on pq_job; notifies pq_jobs with the queue
-- name when a row becomes 'queued' (requeued, released). Locks: none.
CREATE FUNCTION _pq_notify_job()
RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('pq_jobs', NEW.queue);
    RETURN NULL;
END;
$$;
COMMENT ON FUNCTION _pq_notify_job() IS 'Trigger: NOTIFY pq_jobs with the queue name when a job becomes ready.';

-- _pq_notify_jobs(): AFTER INSERT statement trigger on pq_job; notifies pq_jobs once per
-- queue that got 'queued' or 'scheduled' rows from the statement (a bulk insert: one call,
-- not one per row): a worker woken for a scheduled job finds nothing due yet and plans its
-- sleep with the new due time. Locks: none.
CREATE FUNCTION _pq_notify_jobs()
RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('pq_jobs', n.queue)
       FROM (SELECT DISTINCT j.queue FROM pq_new_jobs j WHERE j.status IN ('queued', 'scheduled')) AS n;
    RETURN NULL;
END;
$$;
COMMENT ON FUNCTION _pq_notify_jobs() IS 'Trigger: NOTIFY pq_jobs once per queue an insert added ready or scheduled jobs to.';

CREATE TRIGGER pq_job_900_notify_insert
    AFTER INSERT ON pq_job
    REFERENCING NEW TABLE AS pq_new_jobs
    FOR EACH STATEMENT
    EXECUTE FUNCTION _pq_notify_jobs();

CREATE TRIGGER pq_job_900_notify_update
    AFTER UPDATE OF status ON pq_job
    FOR EACH ROW WHEN (NEW.status = 'queued' AND OLD.status IS DISTINCT FROM 'queued')
    EXECUTE FUNCTION _pq_notify_job();
