-- One job's life as plain SQL on pqbench_job, a copy of pq_job (same columns, defaults,
-- checks and indexes; no trigger, so no NOTIFY): three transactions per job, as a worker
-- with result_ttl=0 does it. The table is prefilled, so a claim always finds a row.
INSERT INTO pqbench_job (queue, origin, func, args, result_ttl) VALUES ('pgbench', 'pgbench', 'pq.utils.do_nothing', '[0]', 0);
WITH next AS (SELECT id FROM pqbench_job WHERE queue = 'pgbench' AND status = 'queued' ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED) UPDATE pqbench_job j SET status = 'started', started_at = now(), worker = 'pgbench' FROM next WHERE j.id = next.id RETURNING j.id \gset
DELETE FROM pqbench_job WHERE id = :id;
