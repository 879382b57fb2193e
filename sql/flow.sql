-- Flows: jobs that run one after the other, each once the previous one has finished.
--
-- A flow is built, then started. pq_flow_create makes the pq_flow row, pq_flow_enqueue adds
-- a job to it (each job 'deferred', depending on the flow's previous job), pq_flow_start
-- releases its first job: nothing of a flow runs before, so a flow built in one transaction
-- (as Python's Flow builds it) leaves nothing behind when that transaction rolls back.
--
-- The chaining is the trigger below, whatever ends the job (a worker's pq_finish, pq_fail,
-- pq_reap_workers failing a dead worker's job, pq_requeue):
--   a job of the flow finishes: the next one is released ('queued', or 'scheduled' while
--     the time it was scheduled for is ahead); after the last one the flow is 'finished'
--     and expires with that job's result (pq_expire_jobs deletes it with its final job,
--     never while a job of it is kept);
--   a job fails (its retries, if any, used up): the flow is 'failed' and the jobs after it
--     stay 'deferred';
--   the failed job is requeued: the flow is 'started' again and goes on from there.
-- A flow's jobs are on its queue, so a flow on a serial queue runs as the queue's other
-- jobs do, one at a time.
--
-- Flow statuses: 'deferred' (being built), 'started', 'finished', 'failed'.

-- _pq_check_flow_name(caller, name): raise PQ001, naming the caller, unless name is NULL
-- (no name) or 1 to 100 characters.
CREATE FUNCTION _pq_check_flow_name(caller text, name text)
RETURNS void
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF name = '' OR length(name) > 100 THEN
        RAISE EXCEPTION '%: a flow name must be 1 to 100 characters long, got %', caller, length(name)
            USING ERRCODE = 'PQ001', HINT = 'Name the flow in a few words, or pass NULL for none.';
    END IF;
END;
$$;

-- _pq_flow_for_update(caller, flow_id): the flow row, locked, if it is still being built;
-- PQ007 if there is no such flow, PQ004 if it has been started.
CREATE FUNCTION _pq_flow_for_update(caller text, flow_id bigint)
RETURNS pq_flow
LANGUAGE plpgsql AS $$
DECLARE
    v_flow pq_flow;
BEGIN
    SELECT * INTO v_flow FROM pq_flow f WHERE f.id = flow_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION '%: no flow with id %', caller, coalesce(flow_id::text, 'NULL')
            USING ERRCODE = 'PQ007', HINT = 'Create the flow with pq_flow_create and use the id it returns.';
    END IF;
    IF v_flow.status <> 'deferred' THEN
        RAISE EXCEPTION '%: flow % is %: jobs are added to a flow before pq_flow_start, and it starts once',
                caller, flow_id, v_flow.status
            USING ERRCODE = 'PQ004', HINT = 'Build a new flow for more jobs.';
    END IF;
    RETURN v_flow;
END;
$$;

-- pq_flow_create(queue_name, name): make a flow on queue_name (created if it does not
-- exist) and return its id. name is optional, 1 to 100 characters, not unique. The flow
-- runs nothing until pq_flow_start. Locks: none beyond the new row.
-- Security definer, as pq_enqueue.
CREATE FUNCTION pq_flow_create(queue_name text, name text DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    v_id bigint;
BEGIN
    PERFORM _pq_check_enqueue('pq_flow_create', queue_name, NULL, NULL);
    PERFORM _pq_check_flow_name('pq_flow_create', name);
    PERFORM _pq_ensure_queue(queue_name);
    INSERT INTO pq_flow (name, queue, status) VALUES (name, queue_name, 'deferred')
    RETURNING id INTO v_id;
    RETURN v_id;
END;
$$;
COMMENT ON FUNCTION pq_flow_create(text, text) IS
    'Make a django-pq flow on a queue, optionally named; returns its id. Add jobs with pq_flow_enqueue, then pq_flow_start.';

-- pq_flow_enqueue(flow_id, func, args, kwargs, timeout, result_ttl, description,
-- scheduled_for, instance, priority, max_retries, retry_intervals): add a job to a flow that is being built and return its id; it
-- runs after the flow's previous job has finished, and not before scheduled_for.
-- _pq_flow_enqueue_job(...), same arguments: the same, returning the new row.
-- The arguments and their limits are pq_enqueue's. PQ007 if there is no such flow, PQ004
-- if it has been started. Locks: the flow row, until the transaction ends (jobs are added
-- in order). Notifies: nothing (the job is deferred).
-- Security definer, both, as pq_enqueue.
CREATE FUNCTION _pq_flow_enqueue_job(
    flow_id bigint,
    func text,
    args jsonb DEFAULT '[]',
    kwargs jsonb DEFAULT '{}',
    timeout integer DEFAULT NULL,
    result_ttl integer DEFAULT NULL,
    description text DEFAULT NULL,
    scheduled_for timestamptz DEFAULT NULL,
    instance bytea DEFAULT NULL,
    priority integer DEFAULT 0,
    max_retries integer DEFAULT 0,
    retry_intervals integer[] DEFAULT NULL
)
RETURNS pq_job
LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    v_flow pq_flow := _pq_flow_for_update('pq_flow_enqueue', flow_id);
    v_job pq_job;
BEGIN
    PERFORM _pq_check_enqueue('pq_flow_enqueue', v_flow.queue, timeout, result_ttl, description, scheduled_for);
    PERFORM _pq_check_call('pq_flow_enqueue', func, args, kwargs, instance);
    PERFORM _pq_check_retry('pq_flow_enqueue', priority, max_retries, retry_intervals);
    INSERT INTO pq_job (queue, origin, status, func, args, kwargs, instance, description,
                        timeout, result_ttl, scheduled_for, flow_id, depends_on, priority,
                        max_retries, retry_intervals)
    VALUES (v_flow.queue, v_flow.queue, 'deferred', func, args, kwargs, instance, description,
            timeout, result_ttl, scheduled_for, v_flow.id, v_flow.jobs[cardinality(v_flow.jobs)],
            priority, max_retries, retry_intervals)
    RETURNING * INTO v_job;
    UPDATE pq_flow f SET jobs = f.jobs || v_job.id WHERE f.id = v_flow.id;
    RETURN v_job;
END;
$$;
COMMENT ON FUNCTION _pq_flow_enqueue_job(bigint, text, jsonb, jsonb, integer, integer, text, timestamptz,
                                         bytea, integer, integer, integer[]) IS
    'Add a job to a django-pq flow being built, as pq_flow_enqueue does, returning the new pq_job row.';

CREATE FUNCTION pq_flow_enqueue(
    flow_id bigint,
    func text,
    args jsonb DEFAULT '[]',
    kwargs jsonb DEFAULT '{}',
    timeout integer DEFAULT NULL,
    result_ttl integer DEFAULT NULL,
    description text DEFAULT NULL,
    scheduled_for timestamptz DEFAULT NULL,
    instance bytea DEFAULT NULL,
    priority integer DEFAULT 0,
    max_retries integer DEFAULT 0,
    retry_intervals integer[] DEFAULT NULL
)
RETURNS bigint
LANGUAGE sql SECURITY DEFINER AS $$
    SELECT (_pq_flow_enqueue_job(flow_id, func, args, kwargs, timeout, result_ttl, description,
                                scheduled_for, instance, priority, max_retries,
                                retry_intervals)).id;
$$;
COMMENT ON FUNCTION pq_flow_enqueue(bigint, text, jsonb, jsonb, integer, integer, text, timestamptz, bytea,
                                    integer, integer, integer[]) IS
    'Add a job to a django-pq flow being built; it runs after the previous one finished. Returns the job id. Arguments and limits as pq_enqueue.';

-- _pq_flow_release(job_id): make a deferred job of a flow ready: 'scheduled' while the time
-- it was scheduled for is ahead, else 'queued'. Notifies pq_jobs with its queue (a
-- scheduled job too, so that a sleeping worker plans its wake-up). Locks: the job row.
CREATE FUNCTION _pq_flow_release(job_id bigint)
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_queue text;
BEGIN
    UPDATE pq_job j
       SET status = CASE WHEN j.scheduled_for > now() THEN 'scheduled' ELSE 'queued' END,
           scheduled_for = CASE WHEN j.scheduled_for > now() THEN j.scheduled_for END,
           enqueued_at = now()
     WHERE j.id = job_id AND j.status = 'deferred'
    RETURNING j.queue INTO v_queue;
    IF FOUND THEN
        PERFORM pg_notify('pq_jobs', v_queue);
    END IF;
END;
$$;

-- pq_flow_start(flow_id): start a flow: its first job is released (queued, or scheduled),
-- each next one when the previous finishes. Returns the number of jobs in the flow; a flow
-- without jobs is finished at once. PQ007 if there is no such flow, PQ004 if it was
-- started already. Locks: the flow row and its first job's. Notifies: pq_jobs with the
-- flow's queue, when the transaction commits.
-- Security definer, as pq_enqueue.
CREATE FUNCTION pq_flow_start(flow_id bigint)
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    v_flow pq_flow := _pq_flow_for_update('pq_flow_start', flow_id);
BEGIN
    IF cardinality(v_flow.jobs) = 0 THEN
        UPDATE pq_flow f SET status = 'finished', ended_at = now(), expires_at = now()
         WHERE f.id = v_flow.id;
        RETURN 0;
    END IF;
    UPDATE pq_flow f SET status = 'started' WHERE f.id = v_flow.id;
    PERFORM _pq_flow_release(v_flow.jobs[1]);
    RETURN cardinality(v_flow.jobs);
END;
$$;
COMMENT ON FUNCTION pq_flow_start(bigint) IS
    'Start a django-pq flow built with pq_flow_enqueue: its jobs run one after the other. Returns its number of jobs.';

-- _pq_flow_job_moved(): AFTER UPDATE row trigger on pq_job, for jobs of a flow whose status
-- changed: chains the flow (see the top of this file). Locks: the flow row, and the next
-- job's row when it is released.
CREATE FUNCTION _pq_flow_job_moved()
RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_next bigint;
BEGIN
    IF NEW.status = 'finished' THEN
        SELECT j.id INTO v_next FROM pq_job j
         WHERE j.depends_on = NEW.id AND j.flow_id = NEW.flow_id AND j.status = 'deferred';
        IF FOUND THEN
            PERFORM _pq_flow_release(v_next);
        ELSE
            UPDATE pq_flow f SET status = 'finished', ended_at = now(), expires_at = NEW.expires_at
             WHERE f.id = NEW.flow_id AND f.status = 'started';
        END IF;
    ELSIF NEW.status = 'failed' THEN
        UPDATE pq_flow f SET status = 'failed', ended_at = now()
         WHERE f.id = NEW.flow_id AND f.status = 'started';
    ELSIF OLD.status = 'failed' THEN
        UPDATE pq_flow f SET status = 'started', ended_at = NULL
         WHERE f.id = NEW.flow_id AND f.status = 'failed';
    END IF;
    RETURN NULL;
END;
$$;
COMMENT ON FUNCTION _pq_flow_job_moved() IS
    'Trigger: when a job of a django-pq flow finishes, release the next one or finish the flow; fail and resume the flow with its jobs.';

CREATE TRIGGER pq_job_200_flow
    AFTER UPDATE OF status ON pq_job
    FOR EACH ROW WHEN (NEW.flow_id IS NOT NULL AND NEW.status IS DISTINCT FROM OLD.status)
    EXECUTE FUNCTION _pq_flow_job_moved();
