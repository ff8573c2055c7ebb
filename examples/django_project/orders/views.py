"""Views: create an order and enqueue its confirmation in one transaction; read a task."""

from __future__ import annotations

import json

from django.db import transaction
from django.http import HttpRequest, JsonResponse
from django.tasks import default_task_backend
from django.tasks.exceptions import TaskResultDoesNotExist
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from orders.models import Order
from orders.tasks import send_confirmation


@csrf_exempt
@require_POST
def create_order(request: HttpRequest) -> JsonResponse:
    body = json.loads(request.body)
    with transaction.atomic():
        order = Order.objects.create(number=body["number"], email=body["email"])
        # With PostgreSQL the job is part of this transaction: no order, no job.
        result = send_confirmation.enqueue(order.pk)
    return JsonResponse({"order": order.pk, "task": result.id}, status=201)


@require_GET
def task_status(request: HttpRequest, task_id: str) -> JsonResponse:
    try:
        result = default_task_backend.get_result(task_id)
    except TaskResultDoesNotExist:
        return JsonResponse({"error": f"no task {task_id}"}, status=404)
    body: dict[str, object] = {"id": result.id, "status": result.status}
    if result.is_finished and not result.errors:
        body["return_value"] = result.return_value
    if result.errors:
        body["error"] = result.errors[-1].exception_class_path
    return JsonResponse(body)
