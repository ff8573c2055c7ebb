"""RexecutorBackend under real Django 6: enqueue, results, the worker command, transactions."""

from __future__ import annotations

import os
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from .conftest import DATABASE

pytestmark = pytest.mark.usefixtures("project_env")

postgres_only = pytest.mark.skipif(DATABASE != "postgres", reason="a PostgreSQL-only behaviour")
sqlite_only = pytest.mark.skipif(DATABASE != "sqlite", reason="a SQLite-only behaviour")


def wait_finished(result: Any, timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while not result.is_finished:
        assert time.monotonic() < deadline, f"task {result.id} is still {result.status}"
        time.sleep(0.05)
        result.refresh()
    return result


def new_order(**fields: Any) -> Any:
    from orders.models import Order

    return Order.objects.create(
        number=fields.get("number", f"T-{uuid.uuid4().hex[:10]}"),
        email=fields.get("email", "ann@example.com"),
    )


def stored_job(result_id: str) -> Any:
    from django.tasks import default_task_backend

    from rexecutor import sync

    store, _ = default_task_backend._store()
    return sync.call(lambda b: b.get_job(int(result_id)), store)


def test_enqueue_stores_a_ready_job() -> None:
    from django.tasks import TaskResultStatus, default_task_backend
    from orders.tasks import orders_report, send_confirmation

    order = new_order()
    result = send_confirmation.enqueue(order.pk)
    assert result.status == TaskResultStatus.READY and result.id.isdigit()
    assert result.backend == "default" and result.args == [order.pk]
    fetched = send_confirmation.get_result(result.id)
    assert fetched.status == TaskResultStatus.READY and fetched.args == [order.pk]
    assert fetched.task.func is send_confirmation.func and fetched.attempts == 0
    job = stored_job(result.id)
    assert (job.executor, job.priority, job.max_attempts) == ("django:default", 100, 1)
    report = default_task_backend.get_result(orders_report.enqueue("X-").id)
    assert report.task.queue_name == "reports" and report.task.priority == 10
    assert stored_job(report.id).executor == "django:reports"
    assert stored_job(report.id).priority == 90


def test_the_worker_runs_sync_and_async_tasks(worker: Any) -> None:
    from django.tasks import TaskResultStatus
    from orders.tasks import orders_report, send_confirmation

    prefix = f"W{uuid.uuid4().hex[:6]}-"
    order = new_order(number=f"{prefix}1", email="bob@example.com")
    confirmed = wait_finished(send_confirmation.enqueue(order.pk))
    assert confirmed.status == TaskResultStatus.SUCCESSFUL, confirmed.errors
    assert confirmed.return_value == f"confirmed {prefix}1 to bob@example.com"
    assert confirmed.attempts == 1 and confirmed.worker_ids[0]
    assert confirmed.enqueued_at <= confirmed.started_at <= confirmed.finished_at
    order.refresh_from_db()
    assert order.confirmed
    new_order(number=f"{prefix}2")
    report = wait_finished(orders_report.enqueue(prefix))
    assert report.status == TaskResultStatus.SUCCESSFUL, report.errors
    assert report.return_value == {"prefix": prefix, "orders": 2, "confirmed": 1}


def test_a_failing_task_fails_with_its_exception(worker: Any) -> None:
    from django.tasks import TaskResultStatus

    from .extra_tasks import PaymentDeclined, charge

    result = wait_finished(charge.enqueue(250))
    assert result.status == TaskResultStatus.FAILED
    [error] = result.errors
    assert error.exception_class is PaymentDeclined
    assert error.exception_class_path == "tests.django.suite.extra_tasks.PaymentDeclined"
    assert "declined: 250 cents" in error.traceback
    with pytest.raises(ValueError, match="Task failed"):
        result.return_value  # noqa: B018


def test_context_arguments_and_unserialisable_results(worker: Any) -> None:
    from django.tasks import TaskResultStatus

    from .extra_tasks import echo, unserialisable, whoami

    me = wait_finished(whoami.enqueue(note="hi"))
    assert me.return_value == {"attempt": 1, "id": me.id, "note": "hi"}
    echoed = wait_finished(echo.enqueue(1, "two", [3], four={"five": 5}))
    assert echoed.return_value == {"args": [1, "two", [3]], "kwargs": {"four": {"five": 5}}}
    bad = wait_finished(unserialisable.enqueue())
    assert bad.status == TaskResultStatus.FAILED
    assert bad.errors[0].exception_class is TypeError


def test_run_after_and_priority() -> None:
    from django.tasks import TaskResultStatus

    from .extra_tasks import echo

    later = datetime.now(UTC) + timedelta(hours=2)
    deferred = echo.using(run_after=later, priority=-20).enqueue("later")
    job = stored_job(deferred.id)
    assert job.scheduled_at == later and job.priority == 120
    fetched = echo.get_result(deferred.id)
    assert fetched.status == TaskResultStatus.READY
    assert fetched.task.run_after == later and fetched.task.priority == -20


def test_django_refuses_what_it_refuses() -> None:
    from django.tasks.exceptions import InvalidTask, TaskResultDoesNotExist

    from .extra_tasks import echo

    with pytest.raises(InvalidTask, match="Queue 'nope' is not valid"):
        echo.using(queue_name="nope")
    with pytest.raises(TypeError):
        echo.enqueue(object())
    for missing in ("999999", "not-a-number"):
        with pytest.raises(TaskResultDoesNotExist):
            echo.get_result(missing)


def test_the_view_creates_an_order_and_its_task(worker: Any) -> None:
    from django.test import Client

    client = Client()
    number = f"V-{uuid.uuid4().hex[:8]}"
    response = client.post(
        "/orders/", {"number": number, "email": "c@example.com"}, content_type="application/json"
    )
    assert response.status_code == 201
    task_id = response.json()["task"]
    deadline = time.monotonic() + 20
    while (body := client.get(f"/tasks/{task_id}/").json())["status"] != "SUCCESSFUL":
        assert body["status"] in ("READY", "RUNNING") and time.monotonic() < deadline, body
        time.sleep(0.05)
    assert body["return_value"] == f"confirmed {number} to c@example.com"
    assert client.get("/tasks/424242/").status_code == 404


def test_the_worker_command_refuses_bad_arguments() -> None:
    from django.core.management import call_command
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="no TASKS backend 'nope'"):
        call_command("rexecutor_worker", backend="nope")
    with pytest.raises(CommandError, match="not in TASKS"):
        call_command("rexecutor_worker", queues=["elsewhere"])


@postgres_only
def test_enqueue_joins_djangos_transaction() -> None:
    from django.db import connection, transaction
    from django.tasks.exceptions import TaskResultDoesNotExist
    from orders.models import Order
    from orders.tasks import send_confirmation

    number = f"R-{uuid.uuid4().hex[:8]}"
    with pytest.raises(RuntimeError, match="payment failed"), transaction.atomic():
        order = new_order(number=number)
        rolled_back = send_confirmation.enqueue(order.pk)
        raise RuntimeError("payment failed")
    assert not Order.objects.filter(number=number).exists()
    with pytest.raises(TaskResultDoesNotExist):
        send_confirmation.get_result(rolled_back.id)

    with transaction.atomic():
        order = new_order()
        kept = send_confirmation.enqueue(order.pk)
        # Not committed yet: invisible to every other connection, the results' included.
        with pytest.raises(TaskResultDoesNotExist):
            send_confirmation.get_result(kept.id)
        with connection.cursor() as cursor:
            cursor.execute("SELECT executor FROM rexecutor_jobs WHERE id = %s", [int(kept.id)])
            assert cursor.fetchone() == ("django:default",)  # on Django's own connection
    assert send_confirmation.get_result(kept.id).args == [order.pk]


@postgres_only
def test_migrate_creates_rexecutors_tables_in_the_named_schema() -> None:
    from django.core.management import call_command
    from django.db import connection
    from django.test import override_settings

    schema = f"tasks_{uuid.uuid4().hex[:8]}"
    tasks = {
        "default": {
            "BACKEND": "rexecutor.contrib.django.backend.RexecutorBackend",
            "QUEUES": ["default", "reports"],
            "OPTIONS": {"SCHEMA": schema},
        }
    }
    with override_settings(TASKS=tasks):
        call_command("migrate", verbosity=0)
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = %s", [schema]
            )
            assert cursor.fetchone()[0] >= 2
            from .extra_tasks import echo

            result = echo.enqueue("in the other schema")
            cursor.execute(
                f'SELECT count(*) FROM "{schema}".rexecutor_jobs WHERE id = %s', [int(result.id)]
            )
            assert cursor.fetchone() == (1,)
        with connection.cursor() as cursor:
            cursor.execute(f'DROP SCHEMA "{schema}" CASCADE')


@sqlite_only
def test_with_a_url_enqueue_is_not_part_of_the_transaction(project_env: dict[str, str]) -> None:
    from pathlib import Path

    from django.db import transaction
    from django.tasks import TaskResultStatus

    from .extra_tasks import echo

    assert Path(project_env["REXECUTOR_URL"].removeprefix("sqlite:///")).exists()  # migrated
    with pytest.raises(RuntimeError), transaction.atomic():
        result = echo.enqueue("kept")
        raise RuntimeError("rolled back")
    assert echo.get_result(result.id).status in (
        TaskResultStatus.READY,
        TaskResultStatus.RUNNING,
        TaskResultStatus.SUCCESSFUL,
    )


@sqlite_only
def test_without_a_url_the_database_must_be_postgresql() -> None:
    from django.core.exceptions import ImproperlyConfigured
    from django.test import override_settings

    tasks = {"default": {"BACKEND": "rexecutor.contrib.django.backend.RexecutorBackend"}}
    with override_settings(TASKS=tasks):
        from django.tasks import default_task_backend

        with pytest.raises(ImproperlyConfigured, match="only on PostgreSQL"):
            default_task_backend.get_result("1")


def test_a_job_naming_no_registered_task_is_cancelled_without_importing_it(worker: Any) -> None:
    from django.tasks import TaskResultStatus, default_task_backend

    from rexecutor import sync
    from rexecutor.contrib.django.backend import DjangoTaskExecutor, TaskCall

    from .extra_tasks import echo

    store, _ = default_task_backend._store()
    paths = {
        "tests.django.suite.not_tasks.run": "not a registered task",  # outside the apps
        "os.system": "not a registered task",
        "orders.models.Order": "not a task of a RexecutorBackend",  # an app, not a task
        "orders.tasks.no_such_task": "not a task of a RexecutorBackend",
        "orders.../../etc/passwd": "not a registered task",
    }
    ids = {}
    for path in paths:
        call = TaskCall(path=path, args=["echo pwned"], kwargs={}, backend="default")
        builder = DjangoTaskExecutor.for_queue("default").builder().with_data(call)
        ids[path] = int(sync.enqueue(builder, store))
    deadline = time.monotonic() + 20
    for path, expected in paths.items():
        while (job := stored_job(str(ids[path]))).status.value != "cancelled":
            assert time.monotonic() < deadline, f"{path}: still {job.status}"
            time.sleep(0.05)
        details = job.errors[-1].details
        assert expected in details, details
        if expected == "not a registered task":
            assert "it was not imported" in details, details
    assert not Path(os.environ["REXECUTOR_TEST_IMPORT_MARKER"]).exists()
    healthy = wait_finished(echo.enqueue("after"))
    assert healthy.status == TaskResultStatus.SUCCESSFUL
