"""Django: rexecutor as a backend of Django's built-in tasks framework (``django.tasks``).

Needs Django 6 or newer (the ``django`` extra). In ``settings.py``::

    INSTALLED_APPS = [..., "rexecutor.contrib.django"]
    TASKS = {
        "default": {
            "BACKEND": "rexecutor.contrib.django.backend.RexecutorBackend",
            "QUEUES": ["default", "emails"],
            # OPTIONS (all optional): "URL", "DATABASE", "SCHEMA", "MAX_ATTEMPTS", "MIGRATE"
        }
    }

``my_task.enqueue(...)`` then stores a rexecutor job, and ``python manage.py
rexecutor_worker`` runs them. Without a ``URL`` the jobs live in the PostgreSQL database
named by ``DATABASE`` (default ``"default"``) and are enqueued on Django's own connection,
inside the current transaction: a task enqueued in ``transaction.atomic()`` exists only once
that transaction commits. See :mod:`rexecutor.contrib.django.backend` for the details.
"""
