"""django-pq's benchmarks against RQ: run ``python -m bench`` (see bench/README.md).

Not part of the test run: it starts its own throwaway PostgreSQL and Redis, measures, and
writes bench/out/results.{txt,csv,png}.
"""
