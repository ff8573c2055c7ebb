"""The Django app of the rexecutor tasks backend: its ``rexecutor_worker`` command, and the
rexecutor schema migrated along with ``manage.py migrate``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:

    class AppConfig:  # the parts of django.apps.AppConfig used here (no Django stubs)
        name: str
        label: str
        verbose_name: str

        def ready(self) -> None: ...

    post_migrate: Any
else:
    from django.apps import AppConfig
    from django.db.models.signals import post_migrate


class RexecutorConfig(AppConfig):
    """``"rexecutor.contrib.django"`` in ``INSTALLED_APPS``."""

    name = "rexecutor.contrib.django"
    label = "rexecutor"
    verbose_name = "rexecutor"

    def ready(self) -> None:
        """Migrate rexecutor's tables after ``manage.py migrate``."""
        post_migrate.connect(_migrate_stores, sender=self)


def _migrate_stores(using: str = "default", **kwargs: Any) -> None:
    """After ``manage.py migrate`` on a database, migrate the rexecutor schema of every task
    backend that keeps its jobs in that database."""
    from rexecutor.contrib.django.backend import migrate_stores

    migrate_stores(database=using)
