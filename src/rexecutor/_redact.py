"""Passwords out of anything shown: connection URLs and libpq conninfo strings, masked.

:func:`mask_url` masks one URL or conninfo string; :func:`mask_secrets` masks every one that
appears inside a longer text (an error message, a log line). Both keep everything else as it
was, so the message still says which user, host and database it is about.
"""

from __future__ import annotations

import re

__all__ = ["MASK", "mask_secrets", "mask_url"]

#: What a password is replaced with.
MASK = "***"

# [scheme://]user:password@host — the password runs to the last "@" before the host part, so
# an unescaped "@" or ":" inside it is masked too. The scheme is optional because a URL that
# lacks one is exactly what an error message about a bad URL quotes. The parts are bounded in
# length so that a long text with many colons and no "@" (a job's error in a log line) is
# scanned in linear time, not quadratic.
_USERINFO = re.compile(
    r"(?P<head>(?:[A-Za-z][A-Za-z0-9+.\-]{0,32}://)?[^:/?#@\s'\"]{0,256}:)"
    r"(?P<secret>[^\s/?#'\"]{0,256})@"
)
# password=... in a query string (?password=x&...) or a conninfo string (password=x or
# password='x y'); also the spellings libpq does not accept but people write anyway.
_PARAM = re.compile(
    r"(?P<head>\b(?:password|passwd|pwd|pass)\s*=\s*)"
    r"(?P<secret>'(?:[^'\\]|\\.)*'?|\"(?:[^\"\\]|\\.)*\"?|[^\s&;'\"]*)",
    re.IGNORECASE,
)


def mask_url(url: str) -> str:
    """``url`` with its password replaced by ``***``.

    Handles ``scheme://user:password@host/...``, ``password=`` in the query string and
    ``password=`` in a key=value conninfo string (quoted or not). Text without a password is
    returned unchanged.

    Example:
        >>> mask_url("postgresql://app:s3cret@db.example.com/jobs")
        'postgresql://app:***@db.example.com/jobs'
        >>> mask_url("host=db user=app password='a b' dbname=jobs")
        'host=db user=app password=*** dbname=jobs'
    """
    return mask_secrets(url)


def mask_secrets(text: str) -> str:
    """``text`` with the password of every URL or conninfo string in it replaced by ``***``."""
    if ":" not in text and "=" not in text:
        return text
    if "@" in text:
        text = _USERINFO.sub(lambda m: m["head"] + MASK + "@", text)
    return _PARAM.sub(lambda m: m["head"] + MASK, text)
