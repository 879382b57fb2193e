"""A runnable demo: ``python -m pq.demo`` runs the README's jobs on a worker."""
