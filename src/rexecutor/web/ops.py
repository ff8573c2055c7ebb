"""Host names for the dashboard: which ones name this machine, and reading a Host header.

The job operations the dashboard offers live in :mod:`rexecutor.admin` and the JSON and text
views of jobs in :mod:`rexecutor._views`, shared with the command line; only what is about
serving over HTTP is here. It imports nothing beyond the standard library, so the command line
checks ``--host`` with it without the ``web`` extra installed.
"""

from __future__ import annotations

import ipaddress

__all__ = ["host_name", "is_loopback"]


def is_loopback(host: str) -> bool:
    """Whether ``host`` names only this machine (``localhost`` or a loopback address)."""
    name = host.strip().lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name.strip("[]")).is_loopback
    except ValueError:
        return False


def host_name(header: str) -> str:
    """The name in a Host header, lower case, without the port: ``[::1]:8000`` → ``::1``."""
    value = header.strip().lower()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value
    if value.count(":") == 1:
        value = value.split(":", 1)[0]
    return value.rstrip(".")
