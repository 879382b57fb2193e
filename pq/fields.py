"""Model fields for django-pq's columns."""

from __future__ import annotations

from typing import Any

from django.db import models

from pq.serialization import from_json, to_json


class PickleJSONField(models.JSONField):
    """A jsonb column holding values as :mod:`pq.serialization` stores them.

    Reads give Python values (pickled parts unpickled); writes store JSON, pickling what JSON
    cannot hold.
    """

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> Any:
        return from_json(super().from_db_value(value, expression, connection))

    def get_prep_value(self, value: Any) -> Any:
        return super().get_prep_value(to_json(value))
