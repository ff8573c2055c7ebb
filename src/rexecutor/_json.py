"""JSON encoding shared by every backend: canonical text and stable hashes."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from pydantic_core import to_jsonable_python

from rexecutor.errors import PayloadTooLarge, ValidationError


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
    """Refuse a job whose data and metadata are too large, or that holds NUL characters.

    NUL cannot be stored by PostgreSQL's jsonb; refusing it everywhere keeps the backends
    alike.
    """
    if _has_nul(data) or _has_nul(metadata) or _has_nul(list(tags)):
        raise ValidationError(
            f"a job for executor {executor!r} contains a NUL character (\\x00) in its data, "
            "metadata or tags, which cannot be "
            "stored; remove it or encode the value (for example as base64)"
        )
    if limit is not None:
        size = len(canonical([data, metadata]).encode())
        if size > limit:
            raise PayloadTooLarge(
                f"job for executor {executor!r} is {size} bytes of JSON, over the backend's "
                f"limit of {limit} bytes; store large content elsewhere and enqueue a "
                "reference to it, or raise backend.max_payload_bytes"
            )


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False
