"""The migration operation that runs django-pq's frozen SQL migrations."""

from __future__ import annotations

from typing import Any

from django.db import router
from django.db.migrations.operations.base import Operation

from pq import sqlfiles


class RunPQSQL(Operation):
    """Run ``sql/migrations/<name>.sql`` forwards and ``<reverse>.sql`` backwards.

    Skipped on databases that are not PostgreSQL and where the router does not allow pq's
    migrations, as ``django.contrib.postgres.operations.CreateExtension`` does.
    """

    reduces_to_sql = True
    reversible = True

    def __init__(self, name: str, reverse: str | None = None) -> None:
        self.name = name
        self.reverse = reverse

    def deconstruct(self) -> tuple[str, list[Any], dict[str, Any]]:
        kwargs = {"name": self.name}
        if self.reverse:
            kwargs["reverse"] = self.reverse
        return self.__class__.__qualname__, [], kwargs

    def state_forwards(self, app_label: str, state: Any) -> None:
        pass

    def _run(self, app_label: str, schema_editor: Any, file_name: str) -> None:
        connection = schema_editor.connection
        if connection.vendor != "postgresql":
            return
        if not router.allow_migrate(connection.alias, app_label):
            return
        schema_editor.execute(sqlfiles.read(file_name), params=None)

    def database_forwards(
        self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any
    ) -> None:
        self._run(app_label, schema_editor, f"migrations/{self.name}.sql")

    def database_backwards(
        self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any
    ) -> None:
        if self.reverse is None:
            raise NotImplementedError(f"django-pq SQL migration {self.name} cannot be reversed")
        self._run(app_label, schema_editor, f"{self.reverse}.sql")

    def describe(self) -> str:
        return f"Run django-pq SQL migration {self.name}"
