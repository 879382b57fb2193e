-- The version of django-pq's SQL: the number of the latest migration that changed it.
--
-- Workers check it when they connect and refuse to start on another version, saying to
-- migrate (or to update the worker's code), instead of failing on the first job. Every SQL
-- migration replaces this function with its own number.

-- pq_version(): the version of the installed django-pq SQL. Locks: none.
CREATE FUNCTION pq_version()
RETURNS integer
LANGUAGE sql IMMUTABLE AS $$
    SELECT 11;
$$;
COMMENT ON FUNCTION pq_version() IS
    'Version of the installed django-pq SQL: the number of its latest migration.';
