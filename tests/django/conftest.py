"""tests/django/suite runs only under Django 6 (Python 3.12+), in its own virtualenv.

The main run collects ``test_django_project.py`` only, which builds ``.venv-django`` and
runs the suite there once per database; that run sets ``REXECUTOR_DJANGO_SUITE``.
"""

from __future__ import annotations

import os

collect_ignore = [] if os.environ.get("REXECUTOR_DJANGO_SUITE") else ["suite"]
