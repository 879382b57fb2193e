-- Install django-pq into the current schema: psql -v ON_ERROR_STOP=1 -f sql/install.sql
-- Django's migrations run the same files (pq/migrations); use one way or the other.
-- Functions named pq_* are django-pq's public SQL API; those named _pq_* are private
-- helpers, which may change in any release.
\ir schema.sql
\ir notify.sql
\ir queue.sql
\ir enqueue.sql
\ir zone.sql
\ir cron.sql
\ir schedule.sql
\ir dequeue.sql
\ir finish.sql
\ir flow.sql
\ir worker.sql
\ir security.sql
\ir version.sql
