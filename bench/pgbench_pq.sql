-- One job's life through django-pq's SQL functions: pq_enqueue, pq_dequeue, pq_finish
-- (result_ttl=0: the row is deleted), three transactions per job, one worker name per client.
SELECT pq_enqueue('pgbench', 'pq.utils.do_nothing', '[0]', '{}', NULL, 0);
SELECT id FROM pq_dequeue('{pgbench}', 'pgbench.' || :client_id::text) \gset
SELECT pq_finish(:id::bigint, 'pgbench.' || :client_id::text, NULL, 0);
