"""The README stays a front door, and the documentation's links and generated parts hold.

`mkdocs build --strict` (in .ci/run) checks the built site; these checks need no MkDocs, so
a plain `pytest` catches a broken link or a placeholder that names no command.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
LINK = re.compile(r"\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)


def _hooks():
    spec = importlib.util.spec_from_file_location("mkdocs_hooks", ROOT / "scripts" / "mkdocs_hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _markdown_files() -> list[Path]:
    return [ROOT / "README.md", ROOT / "CHANGELOG.md", ROOT / "models" / "MODEL_CARD.md", *sorted(DOCS.rglob("*.md"))]


def test_the_readme_is_at_most_10_kb():
    assert len((ROOT / "README.md").read_bytes()) <= 10 * 1024


@pytest.mark.parametrize("path", _markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(path):
    text = FENCE.sub("", path.read_text(encoding="utf-8"))
    broken = []
    for target in LINK.findall(text):
        if "://" in target or target.startswith(("#", "mailto:")):
            continue
        file = target.split("#", 1)[0]
        if not (path.parent / file).exists():
            broken.append(target)
    assert broken == []


def test_every_page_is_in_the_navigation_and_every_entry_exists():
    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    nav = set(re.findall(r"([\w/.-]+\.md)\s*$", config.split("\nnav:", 1)[1], flags=re.M))
    pages = {p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md")}
    assert nav == pages


def test_every_placeholder_renders():
    hooks = _hooks()
    for path in DOCS.rglob("*.md"):
        page = SimpleNamespace(file=SimpleNamespace(src_path=path.relative_to(DOCS).as_posix()))
        for match in hooks.PLACEHOLDER.finditer(path.read_text(encoding="utf-8")):
            assert hooks._replace(match, page, ROOT).strip(), (path, match[0])


def test_the_fields_table_lists_every_tag_photocap_writes():
    from photocap.metadata import fields

    table = _hooks().fields_table()
    for name in [s.name for s in fields.CAPTION_TAGS + fields.KEYWORD_TAGS] + list(fields.PROVENANCE_TAGS):
        assert f"`{name}`" in table


def test_included_files_link_to_pages_of_the_site():
    hooks = _hooks()
    page = SimpleNamespace(file=SimpleNamespace(src_path="changelog.md"))
    text = hooks.include("CHANGELOG.md", page, ROOT)
    assert "](decisions/fusion-weights.md)" in text and "](model-card.md)" in text
    assert "](docs/" not in text
