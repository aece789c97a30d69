"""Hooks cannot rot: each one is documented with its exact signature and used by a test.

The documented form is a heading line built from the hookspec's parameter names:
    ### `arena_register(registry)`
"""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from arena_core import hookspecs

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "plugins.md"
TESTS = ROOT / "tests"


def hook_specs() -> dict[str, inspect.Signature]:
    return {
        name: inspect.signature(fn)
        for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
        if hasattr(fn, "arena_spec")  # set by pluggy's HookspecMarker("arena")
    }


def heading(name: str, signature: inspect.Signature) -> str:
    return f"### `{name}({', '.join(signature.parameters)})`"


HOOKS = hook_specs()


def test_the_hookspecs_are_found() -> None:
    assert {"arena_register", "arena_match_finished"} <= set(HOOKS)
    assert heading("arena_register", HOOKS["arena_register"]) == "### `arena_register(registry)`"


@pytest.mark.parametrize("name", sorted(HOOKS))
def test_hook_is_documented_with_its_signature(name: str) -> None:
    lines = DOCS.read_text(encoding="utf-8").splitlines()
    expected = heading(name, HOOKS[name])
    assert expected in lines, f"docs/plugins.md has no heading line {expected!r}"


def test_docs_document_no_hook_that_does_not_exist() -> None:
    documented = [
        line.split("`")[1].split("(")[0]
        for line in DOCS.read_text(encoding="utf-8").splitlines()
        if line.startswith("### `arena_")
    ]
    assert sorted(documented) == sorted(HOOKS)


@pytest.mark.parametrize("name", sorted(HOOKS))
def test_hook_has_a_test(name: str) -> None:
    here = Path(__file__).resolve()
    users = [
        p.relative_to(ROOT)
        for p in sorted(TESTS.rglob("test_*.py"))
        if p.resolve() != here and name in p.read_text(encoding="utf-8")
    ]
    assert users, f"no test under tests/ mentions the hook {name}"
