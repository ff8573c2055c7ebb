"""The public names: what ``__all__`` exports, and what the API contract (API.md) promises.

``__all__`` is checked against the modules themselves: every name imports, carries its own
docstring, appears once, and the list keeps the order ruff's RUF022 gives it (constants,
then classes, then functions and modules, each alphabetical). The contract is checked by
reading the backticked names in ``shared/docs/API.md`` (outside the repository: it is
looked for beside each folder above this one) and resolving each from ``rexecutor``.
"""

from __future__ import annotations

import builtins
import dataclasses
import importlib
import inspect
import re
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import rexecutor
from rexecutor import Backend, Executor, Job, Rexecutor

ROOT = Path(__file__).resolve().parents[2]

# The modules whose ``__all__`` is the public surface; the contrib ones need their extras,
# which the dev install has (Django is checked by its own suite, on its own Python).
PUBLIC_MODULES = [
    "rexecutor",
    "rexecutor.backends",
    "rexecutor.testing",
    "rexecutor.sync",
    "rexecutor.telemetry",
    "rexecutor.backoff",
    "rexecutor.web",
    "rexecutor.pytest_plugin",
    "rexecutor.contrib.fastapi",
    "rexecutor.contrib.otel",
    "rexecutor.contrib.prometheus",
]


def _exports() -> Iterator[tuple[str, str]]:
    for module_name in PUBLIC_MODULES:
        for name in importlib.import_module(module_name).__all__:
            yield module_name, name


def _is_documentable(value: object) -> bool:
    # Plain values (a URL, a tuple of buckets, a type alias) cannot carry a docstring of their
    # own: their ``__doc__`` is their type's. They are documented by a comment where they are set.
    return isinstance(value, type | types.FunctionType | types.ModuleType) or inspect.isroutine(
        value
    )


def _own_docstring(value: object) -> str:
    if isinstance(value, type):
        doc = value.__dict__.get("__doc__") or ""
        # A dataclass without a docstring is given its signature, "Name(field: type, ...)".
        return "" if doc.startswith(f"{value.__name__}(") else doc
    return getattr(value, "__doc__", None) or ""


@pytest.mark.parametrize(("module_name", "name"), list(_exports()))
def test_every_export_imports_and_has_a_docstring(module_name: str, name: str) -> None:
    module = importlib.import_module(module_name)
    value = getattr(module, name)  # also the lazy ones, through the module's __getattr__
    namespace: dict[str, Any] = {}
    exec(f"from {module_name} import {name}", namespace)
    assert namespace[name] is value
    if _is_documentable(value):
        assert _own_docstring(value).strip(), f"{module_name}.{name} has no docstring"


def _ruff_order(name: str) -> tuple[int, str]:
    # RUF022's "isort-style" order: SCREAMING_CASE, then CamelCase, then everything else.
    if name.isupper():
        return (0, name)
    return (1, name) if name[0].isupper() else (2, name)


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_all_has_no_duplicates_and_keeps_its_order(module_name: str) -> None:
    exported = list(importlib.import_module(module_name).__all__)
    assert len(exported) == len(set(exported)), f"duplicates in {module_name}.__all__"
    assert exported == sorted(exported, key=_ruff_order)


def test_the_package_exports_the_backends_and_the_errors() -> None:
    from rexecutor import backends, errors

    assert {"InMemoryBackend", "SqliteBackend", "PostgresBackend"} <= set(rexecutor.__all__)
    for name in ("InMemoryBackend", "SqliteBackend", "PostgresBackend"):
        assert getattr(rexecutor, name) is getattr(backends, name)
    public_errors = {
        name
        for name, value in vars(errors).items()
        if isinstance(value, type)
        and issubclass(value, rexecutor.RexecutorError)
        and not name.startswith("_")
    }
    assert public_errors <= set(rexecutor.__all__)


# --- the contract: shared/docs/API.md -----------------------------------------------------


def _find_contract() -> Path | None:
    for folder in ROOT.parents:
        candidate = folder / "shared" / "docs" / "API.md"
        if candidate.is_file():
            return candidate
    return None


CONTRACT = _find_contract()
needs_contract = pytest.mark.skipif(
    CONTRACT is None, reason="shared/docs/API.md is not beside this checkout"
)

# The contract's examples call their objects by example names; these are what they stand for.
EXAMPLE_NAMES: dict[str, object] = {
    "EmailJob": Executor,
    "rex": Rexecutor,
    "backend": Backend,
    "job": Job,
    "Done": rexecutor.ExecutionResult,  # "returning None means `Done`"
}
EXAMPLE_ATTRIBUTES = {"Done": "Done"}


def _prose() -> str:
    assert CONTRACT is not None
    text = CONTRACT.read_text()
    # Fenced examples are run by tests/test_api_examples.py; here only the prose and tables.
    return re.sub(r"```.*?```", "", text, flags=re.S)


def _spans(text: str) -> list[str]:
    return re.findall(r"`([^`\n]+)`", text)


def _has(owner: object, attribute: str) -> bool:
    if hasattr(owner, attribute):
        return True
    # Fields declared on the class but set per instance or per subclass (``name: ClassVar``).
    annotated = (getattr(klass, "__annotations__", {}) for klass in getattr(owner, "__mro__", ()))
    fields = {field.name for field in dataclasses.fields(owner)} if _is_dataclass(owner) else set()
    return attribute in fields or any(attribute in names for names in annotated)


def _is_dataclass(owner: object) -> bool:
    return isinstance(owner, type) and dataclasses.is_dataclass(owner)


def _resolve(path: str) -> object:
    """The object a dotted name in the contract names; raises if it does not exist."""
    head, *rest = path.split(".")
    if head == "rexecutor":
        # Import the longest prefix that is a module, then walk attributes.
        for split in range(len(rest), -1, -1):
            try:
                value: object = importlib.import_module(".".join([head, *rest[:split]]))
            except ModuleNotFoundError:
                continue
            for attribute in rest[split:]:
                value = getattr(value, attribute)
            return value
    if head in EXAMPLE_NAMES:
        value = EXAMPLE_NAMES[head]
        if head in EXAMPLE_ATTRIBUTES:
            value = getattr(value, EXAMPLE_ATTRIBUTES[head])
    else:
        value = getattr(rexecutor, head)
    for attribute in rest:
        assert _has(value, attribute), f"{path}: {value!r} has no {attribute!r}"
        value = getattr(value, attribute, value)
    return value


def _names_in_the_contract() -> Iterator[tuple[str, str]]:
    """(span, kind) for each backticked name the contract's prose and tables use."""
    for span in _spans(_prose()):
        match = re.match(r"^(?:await\s+)?(\.?[A-Za-z_][\w.]*)", span)
        if match is None:
            continue
        path = match.group(1)
        head = path.lstrip(".").split(".")[0]
        if path.startswith("."):
            yield path, "chained"
        elif head == "rexecutor" or (head in EXAMPLE_NAMES and "." in path):
            yield path, "path"
        elif re.fullmatch(r"[A-Z][a-z]\w*", head) and not hasattr(builtins, head):
            # A CamelCase name that is not Python's own (None, True, AssertionError ...).
            yield path, "path"


@needs_contract
def test_every_name_in_the_contract_resolves() -> None:
    owner: object = None
    checked: list[str] = []
    for path, kind in _names_in_the_contract():
        if kind == "path":
            value = _resolve(path)
            if isinstance(value, type):
                owner = value
            elif "." in path and isinstance(parent := _resolve(path.rsplit(".", 1)[0]), type):
                # ``Replace.scheduled_at()``: a later ``.data()`` chains on ``Replace``.
                owner = parent
        else:
            # ``.and_key(value)`` after ``UniquenessCriteria.by_key(...)``: a method of the
            # class named last.
            assert owner is not None, f"{path} chains on nothing"
            for attribute in path.lstrip(".").split("."):
                assert _has(owner, attribute), f"{path}: {owner!r} has no {attribute!r}"
        checked.append(path)
    # The contract names at least its main types; an empty parse would pass for nothing.
    heads = {path.lstrip(".").split(".")[0] for path in checked}
    assert {"Executor", "Rexecutor", "UniquenessCriteria", "Where", "rexecutor"} <= heads


def _listed(sentence: str) -> list[str]:
    without_asides = re.sub(r"\([^)]*\)", "", sentence)
    # The leading name of each span: ``id: JobId`` -> ``id``.
    return re.findall(r"`(\w+)[^`\n]*`", without_asides)


@needs_contract
def test_the_fields_and_members_the_contract_lists_exist() -> None:
    prose = " ".join(_prose().split())
    # "`Job[D, M]` has: `id: JobId`, ...", "`JobError` has `attempt`, ...".
    owners = re.findall(r"`(\w+)(?:\[[^\]]*\])?` has:? (.*?)[.;] ", prose)
    # "`JobStatus` members: `SCHEDULED`, ..., and `JobStatus.ALL`".
    owners += re.findall(r"`(\w+)` members: (.*?)\. ", prose)
    assert {owner for owner, _ in owners} >= {"Job", "JobError", "JobStatus"}
    for owner_name, sentence in owners:
        owner = getattr(rexecutor, owner_name)
        for name in _listed(sentence):
            assert name == owner_name or _has(owner, name), f"{owner_name} has no {name!r}"


@needs_contract
def test_the_executor_attributes_in_the_contract_table_exist() -> None:
    rows = [line for line in _prose().splitlines() if line.startswith("| `")]
    assert rows, "the contract's table was not found"
    for row in rows:
        python_column = row.split(" | ", 1)[1]
        for span in _spans(python_column):
            # ``max_attempts: int = 5``, ``execute(self, job)``: members of ``Executor``.
            match = re.match(r"^(\w+)(?::| *\(self)", span)
            if match:
                assert _has(Executor, match.group(1)), f"Executor has no {match.group(1)!r}"


@needs_contract
def test_the_testing_filters_in_the_contract_are_parameters() -> None:
    from rexecutor.testing import assert_enqueued

    prose = " ".join(_prose().split())
    match = re.search(r"with keyword filters (.*?)\. ", prose)
    assert match is not None, "the contract's assert_enqueued filters were not found"
    parameters = inspect.signature(assert_enqueued).parameters
    for name in _listed(match.group(1)):
        assert name in parameters, f"assert_enqueued has no keyword {name!r}"
