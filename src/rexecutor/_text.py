"""Texts that are always storable: error details, tracebacks and reasons.

A job's outcome must be recorded whatever the job's code produced, so every text that goes
into an error entry passes through here: :func:`storable` removes what no backend can store,
:func:`cap` bounds its size, and :func:`describe`, :func:`safe_repr` and
:func:`format_traceback` turn any object into a text without ever raising.
"""

from __future__ import annotations

import re
import traceback

#: Default cap on each error text (details, traceback), in bytes of UTF-8.
DEFAULT_MAX_ERROR_BYTES = 64 * 1024

_SURROGATE = re.compile("[\ud800-\udfff]")
# Room kept for the truncation marker, so a capped text stays within its limit.
_MARKER_ROOM = 64


def storable(text: str) -> str:
    """``text`` with what SQL backends refuse made visible or replaced.

    NUL (refused by PostgreSQL) becomes the four characters ``\\x00``; a surrogate pair is
    joined into its character and a lone surrogate (not encodable as UTF-8) becomes U+FFFD.
    """
    if "\x00" in text:
        text = text.replace("\x00", "\\x00")
    if _SURROGATE.search(text) is not None:
        text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


def cap(text: str, max_bytes: int = DEFAULT_MAX_ERROR_BYTES) -> str:
    """``text`` cut to at most ``max_bytes`` of UTF-8, the cut marked with how much went.

    ``text`` must be storable (no lone surrogates), as :func:`storable` makes it.
    """
    if len(text) * 4 <= max_bytes:
        return text  # cannot be over the limit, even if every character took 4 bytes
    encoded = text.encode("utf-8")
    if len(encoded) <= max_bytes:
        return text
    keep = max(0, max_bytes - _MARKER_ROOM)
    # errors="ignore" drops a character the cut went through the middle of.
    head = encoded[:keep].decode("utf-8", "ignore")
    dropped = len(encoded) - len(head.encode("utf-8"))
    return f"{head}… [truncated {dropped:,} bytes]"


def clean(text: str, max_bytes: int = DEFAULT_MAX_ERROR_BYTES) -> str:
    """:func:`storable` then :func:`cap`: the form every stored error text takes."""
    return cap(storable(text), max_bytes)


def type_name(obj: object) -> str:
    """The name of ``obj``'s class, whatever that class does."""
    try:
        return str(type(obj).__name__)
    except Exception:
        return "object"


def describe(obj: object) -> str:
    """``str(obj)``, or when that raises, the type name and what went wrong."""
    try:
        return str(obj)
    except Exception as exc:
        return f"{type_name(obj)} (str() raised {type_name(exc)})"


def safe_repr(obj: object) -> str:
    """``repr(obj)``, or when that raises, the type name and what went wrong."""
    try:
        return repr(obj)
    except Exception as exc:
        return f"<{type_name(obj)} (repr() raised {type_name(exc)})>"


def format_traceback(exc: BaseException) -> str:
    """The formatted traceback of ``exc``, or a line saying why it could not be formatted."""
    try:
        return "".join(traceback.format_exception(exc))
    except Exception as failure:
        return (
            f"{type_name(exc)}: {describe(exc)}\n"
            f"(traceback.format_exception raised {type_name(failure)})\n"
        )
