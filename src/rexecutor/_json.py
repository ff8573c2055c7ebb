"""JSON encoding shared by every backend: canonical text and stable hashes."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from pydantic_core import to_jsonable_python

from rexecutor._payload import check_values
from rexecutor.errors import ValidationError


def to_json_value(value: object, what: str = "value") -> Any:
    """Convert ``value`` to plain JSON types (dict, list, str, int, float, bool, None)."""
    try:
        return to_jsonable_python(value)
    except Exception as exc:
        raise ValidationError(
            f"{what} cannot be stored as JSON: {exc}. Use types that serialise to JSON "
            "(str, int, float, bool, None, list, dict, dataclasses, pydantic models)."
        ) from exc


def canonical(value: Any) -> str:
    """Encode a JSON value as compact text with sorted keys, the same in every process."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def stable_hash(value: object) -> int:
    """A signed 64-bit hash of ``value``'s canonical JSON; stable across processes and machines.

    Python's built-in ``hash`` is salted per process, so it cannot identify unique jobs.
    """
    digest = hashlib.blake2b(canonical(to_json_value(value, "key")).encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "big", signed=True)


def check_payload(
    data: Any, metadata: Any, tags: Sequence[str], limit: int | None, executor: str
) -> None:
    """Refuse data, metadata and tags that no backend can store, or too large together.

    The rule lives in :func:`rexecutor._payload.check_values`; this is its entry point for
    callers that hold no whole job.
    """
    check_values(executor, data, metadata, tags, limit)
