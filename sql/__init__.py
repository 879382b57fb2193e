"""SQL files of django-pq, installed as the package ``pq._sqlfiles`` (see setup.py)."""
