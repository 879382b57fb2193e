-- Install django-pq into the current schema: psql -v ON_ERROR_STOP=1 -f sql/install.sql
-- Django's migrations run the same files (pq/migrations); use one way or the other.
\ir schema.sql
\ir notify.sql
\ir queue.sql
\ir enqueue.sql
\ir dequeue.sql
\ir finish.sql
\ir worker.sql
\ir security.sql
