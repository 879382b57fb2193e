"""Model fields for django-pq's columns."""

from __future__ import annotations

import logging
from typing import Any

from django.db import models

from pq.serialization import from_json, to_json

logger = logging.getLogger("pq")


class PickleJSONField(models.JSONField):
    """A jsonb column holding values as :mod:`pq.serialization` stores them.

    Reads give Python values (pickled parts unpickled); writes store JSON, pickling what JSON
    cannot hold.
    """

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> Any:
        stored = super().from_db_value(value, expression, connection)
        try:
            return from_json(stored)
        except Exception as exc:
            # A pickled part that does not load (any pq_enqueue caller can write one): give
            # the stored JSON as it is, so the row stays readable (the admin's failed jobs,
            # Job.fetch); the worker fails such a job with the reason (Job.from_row).
            logger.warning("A stored %s value does not decode (%s); read as stored", self.name, exc)
            return stored

    def get_prep_value(self, value: Any) -> Any:
        return super().get_prep_value(to_json(value))


class PGArrayField(models.Field):
    """A PostgreSQL array column (``bigint[]``, ``text[]``...) read and written as a list.

    A small stand-in for ``django.contrib.postgres``'s ArrayField, so that using pq does not
    require adding ``django.contrib.postgres`` to INSTALLED_APPS (Django 6 checks for it).
    It supports reading, writing and equality lookups, not ArrayField's special lookups.
    """

    def __init__(self, *args: Any, element_type: str = "text", **kwargs: Any) -> None:
        self.element_type = element_type
        super().__init__(*args, **kwargs)

    def deconstruct(self) -> Any:
        name, path, args, kwargs = super().deconstruct()
        kwargs["element_type"] = self.element_type
        return name, path, args, kwargs

    def db_type(self, connection: Any) -> str:
        return f"{self.element_type}[]"

    def get_prep_value(self, value: Any) -> Any:
        return None if value is None else list(value)

    def to_python(self, value: Any) -> Any:
        if value is None or isinstance(value, list):
            return value
        if isinstance(value, str):  # from a form: comma-separated
            return [item.strip() for item in value.split(",") if item.strip()]
        return list(value)

    def value_to_string(self, obj: Any) -> str:
        value = self.value_from_object(obj)
        return "" if value is None else ", ".join(str(item) for item in value)
