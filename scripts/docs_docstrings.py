"""A griffe extension for the API reference: reads the package's docstrings as Markdown.

The docstrings are written for ``help()`` and for reading in the source, with two habits
that Markdown does not know: Sphinx roles (``:class:`Executor```) and a singular
``Example:`` section, which griffe would render as an admonition (so ``>>>`` became nested
quotes). Translating them here keeps ``src/`` as it is and the generated pages tidy.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

# :class:`Executor`, :meth:`~rexecutor.Executor.builder` ... -> `Executor`, `builder`
_ROLE = re.compile(r":(?:class|func|meth|attr|mod|data|exc|obj):`~?([^`]+)`")
_EXAMPLE_SECTION = re.compile(r"^(\s*)Example:\s*$", re.MULTILINE)


def _markdown(text: str) -> str:
    text = _ROLE.sub(lambda m: f"`{m.group(1)}`", text)
    return _EXAMPLE_SECTION.sub(r"\1Examples:", text)


class MarkdownDocstrings(griffe.Extension):
    """Rewrite each docstring before it is parsed (parsing is lazy, so this comes first)."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = _markdown(obj.docstring.value)
