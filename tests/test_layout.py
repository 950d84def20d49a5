"""The folders of kb/ import one way: face -> service -> search, index, tools -> engines and content -> base."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

KB = Path(__file__).resolve().parent.parent / "kb"
BASE = ("kb.errors", "kb.config", "kb.clock")
# What each folder may import besides itself and the base modules.
ALLOWED = {
    "engines": (),
    "content": (),
    "index": ("kb.engines", "kb.content"),
    # the read side opens a generation through kb.index.generation and never touches the build
    "search": ("kb.engines", "kb.content", "kb.index.generation"),
    "tools": ("kb.engines", "kb.content", "kb.index", "kb.search"),
}


def imports_of(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module == "kb":  # from kb import clock
            found |= {f"kb.{a.name}" for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("kb."):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("kb")}
    return found


def allowed(folder: str, module: str) -> bool:
    own = (f"kb.{folder}", *BASE, *ALLOWED[folder])
    return any(module == p or module.startswith(p + ".") for p in own)


@pytest.mark.parametrize("folder", sorted(ALLOWED))
def test_a_folder_imports_only_what_lies_below_it(folder):
    wrong = {
        f"{path.relative_to(KB.parent)} imports {module}"
        for path in sorted((KB / folder).rglob("*.py"))
        for module in imports_of(path)
        if not allowed(folder, module)
    }
    assert not wrong, sorted(wrong)


def test_the_check_sees_a_wrong_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from kb.index.build import build_index\nimport kb.web\nfrom kb import clock, service\n")
    assert not allowed("search", "kb.index.build") and allowed("search", "kb.index.generation")
    assert {m for m in imports_of(bad) if not allowed("engines", m)} == {"kb.index.build", "kb.web", "kb.service"}


def test_only_the_face_uses_flask():
    users = {
        str(path.relative_to(KB.parent))
        for path in KB.rglob("*.py")
        if any(m == "flask" or m.startswith("flask.") for m in _third_party(path))
    }
    assert users and all(u.startswith("kb/web/") or u == "kb/cli.py" for u in users), sorted(users)


def _third_party(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
    return names
