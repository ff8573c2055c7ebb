"""Settings of the example project.

``DJANGO_DB=sqlite`` (the default): Django's data in ``db.sqlite3`` and the task queue in a
rexecutor SQLite file, ``rexecutor.db`` (``REXECUTOR_URL`` to change it). Enqueueing is then
not part of Django's transactions.

``DJANGO_DB=postgres``: Django's data and the task queue in one PostgreSQL database
(``DJANGO_PG_NAME``, ``DJANGO_PG_HOST``, ``DJANGO_PG_PORT``, ``DJANGO_PG_USER``,
``DJANGO_PG_PASSWORD``); a task enqueued inside ``transaction.atomic()`` exists only if the
block commits.
"""

from __future__ import annotations

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-only-not-secret")
DEBUG = os.environ.get("DJANGO_DEBUG", "1") == "1"
ALLOWED_HOSTS = ["localhost", "127.0.0.1", "testserver"]

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "rexecutor.contrib.django",
    "orders",
]

MIDDLEWARE = ["django.middleware.common.CommonMiddleware"]
ROOT_URLCONF = "shop.urls"
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

if os.environ.get("DJANGO_DB", "sqlite") == "postgres":
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": os.environ.get("DJANGO_PG_NAME", "shop"),
            "HOST": os.environ.get("DJANGO_PG_HOST", "127.0.0.1"),
            "PORT": os.environ.get("DJANGO_PG_PORT", "5432"),
            "USER": os.environ.get("DJANGO_PG_USER", "postgres"),
            "PASSWORD": os.environ.get("DJANGO_PG_PASSWORD", ""),
        }
    }
    TASK_OPTIONS: dict[str, object] = {}  # the jobs live in the database above
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.environ.get("DJANGO_SQLITE_PATH", str(BASE_DIR / "db.sqlite3")),
        }
    }
    TASK_OPTIONS = {
        "URL": os.environ.get("REXECUTOR_URL", f"sqlite:///{BASE_DIR / 'rexecutor.db'}")
    }

TASKS = {
    "default": {
        "BACKEND": "rexecutor.contrib.django.backend.RexecutorBackend",
        "QUEUES": ["default", "reports"],
        "OPTIONS": {**TASK_OPTIONS, "MAX_ATTEMPTS": int(os.environ.get("TASK_MAX_ATTEMPTS", "1"))},
    }
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"rexecutor": {"handlers": ["console"], "level": "WARNING"}},
}
