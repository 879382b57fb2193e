-- The django-pq job life 100 jobs at a time: pq_enqueue_many, pq_dequeue_many and
-- pq_finish_many, three transactions per 100 jobs.
SELECT count(*) FROM pq_enqueue_many('pgbench', array_fill('pq.utils.do_nothing'::text, ARRAY[100]), array_fill('[0]'::jsonb, ARRAY[100]), NULL, NULL, 0);
SELECT array_agg(id) AS ids FROM pq_dequeue_many('{pgbench}', 'pgbench.' || :client_id::text, 100) \gset
SELECT pq_finish_many(:ids::bigint[], 'pgbench.' || :client_id::text, array_fill(NULL::jsonb, ARRAY[cardinality(:ids::bigint[])]), 0);
