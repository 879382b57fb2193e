-- The plain-SQL job life (pgbench_job.sql) 100 jobs at a time: insert 100, claim 100 with
-- SKIP LOCKED, finish (delete) them; three transactions per 100 jobs.
INSERT INTO pqbench_job (queue, origin, func, args, result_ttl) SELECT 'pgbench', 'pgbench', 'pq.utils.do_nothing', '[0]', 0 FROM generate_series(1, 100);
WITH next AS (SELECT id FROM pqbench_job WHERE queue = 'pgbench' AND status = 'queued' ORDER BY id LIMIT 100 FOR UPDATE SKIP LOCKED), claimed AS (UPDATE pqbench_job j SET status = 'started', started_at = now(), worker = 'pgbench' FROM next WHERE j.id = next.id RETURNING j.id) SELECT array_agg(id) AS ids FROM claimed \gset
DELETE FROM pqbench_job WHERE id = ANY (:ids::bigint[]);
