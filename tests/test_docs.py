"""Every pointer to docs/method.md, in the code, the configs, the README, the other docs and the results pages, names a
section that exists."""

from __future__ import annotations

import re

from .conftest import REPO

METHOD_DOC = REPO / "docs" / "method.md"
REFERENCE = re.compile(r"(?:docs/)?method\.md(?:\]\((?:docs/)?method\.md\))?\s+sections?\s+(\d+)(?:\s*-\s*(\d+))?")
SOURCES = ["README.md", "docs/*.md", "src/**/*.py", "tests/**/*.py", "benchmarks/**/*", "results/**/*.md"]


def cited_sections() -> dict[str, set[int]]:
    cited: dict[str, set[int]] = {}
    for pattern in SOURCES:
        for path in (p for p in REPO.glob(pattern) if p.is_file()):
            for first, last in REFERENCE.findall(path.read_text(errors="replace")):
                numbers = range(int(first), int(last or first) + 1)
                cited.setdefault(str(path.relative_to(REPO)), set()).update(numbers)
    return cited


def test_every_cited_section_of_the_method_page_exists():
    sections = {int(n) for n in re.findall(r"^## (\d+)\. ", METHOD_DOC.read_text(), flags=re.MULTILINE)}
    assert sections == set(range(1, 9))
    cited = cited_sections()
    assert {"README.md", "src/mixtune/config.py", "benchmarks/tune_table2.yaml", "docs/usage.md"} <= set(cited)
    assert {path: numbers - sections for path, numbers in cited.items() if numbers - sections} == {}


def test_nothing_cites_the_design_file_outside_the_repository():
    design_file = "METHOD" + ".md"  # spelt in two parts so this file does not cite it
    citing = [str(p.relative_to(REPO)) for pattern in SOURCES for p in REPO.glob(pattern) if p.is_file() and design_file in p.read_text(errors="replace")]
    assert citing == []


def test_every_relative_link_in_the_docs_resolves():
    broken = []
    for page in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), REPO / "benchmarks" / "archive" / "README.md"]:
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", page.read_text()):
            if not (page.parent / target).exists():
                broken.append(f"{page.relative_to(REPO)} -> {target}")
    assert broken == []
