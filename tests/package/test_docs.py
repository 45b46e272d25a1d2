"""The documentation is self-contained: relative links resolve, and nothing points at the former external spec."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOC_FILES = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])
CODE_PLACES = ["src", "tests", "benchmarks", "spaces", "model_cards", "Makefile", "constraints.txt", "pyproject.toml"]
TEXT_SUFFIXES = {".py", ".md", ".json", ".txt", ".toml", ".cfg", ".yaml", ".yml", ""}

_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
_HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*$", re.MULTILINE)
_FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
# Built from pieces so that this file does not match itself.
_SPEC_DIR = "shared" + "/spec"
_SECTION_REF = re.compile(r"[a-z]+\.md ?" + "\u00a7")


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors_of(path: Path) -> set[str]:
    text = _FENCE.sub("", path.read_text(encoding="utf-8"))
    return {github_anchor(h) for h in _HEADING.findall(text)}


def relative_links(path: Path) -> list[str]:
    text = _FENCE.sub("", path.read_text(encoding="utf-8"))
    return [t for t in _LINK.findall(text) if not re.match(r"[a-z]+:", t)]


def test_github_anchor_rule():
    assert github_anchor("`make demo`") == "make-demo"
    assert github_anchor("ELUE score and the reference curve") == "elue-score-and-the-reference-curve"
    assert github_anchor("Proposal: `PeftType.LPT` in PEFT upstream") == "proposal-pefttypelpt-in-peft-upstream"


@pytest.mark.parametrize("doc", DOC_FILES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_relative_links_resolve(doc):
    broken = []
    for target in relative_links(doc):
        file_part, _, anchor = target.partition("#")
        dest = (doc.parent / file_part).resolve() if file_part else doc
        if not dest.exists():
            broken.append(f"{target} (no such file)")
        elif anchor and dest.suffix == ".md" and anchor not in anchors_of(dest):
            broken.append(f"{target} (no heading with anchor #{anchor})")
    assert not broken, f"{doc.relative_to(ROOT)}: " + "; ".join(broken)


def test_readme_opens_with_the_two_commands():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    first_block = re.search(r"```bash\n(.*?)```", text, re.DOTALL).group(1).splitlines()
    assert [line.split()[:2] for line in first_block] == [["make", "demo"], ["make", "test"]]


def _text_files():
    for place in CODE_PLACES:
        path = ROOT / place
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        for f in files:
            if f.suffix in TEXT_SUFFIXES and "__pycache__" not in f.parts:
                yield f


def test_nothing_points_at_the_external_spec():
    offenders = []
    for f in _text_files():
        try:
            text = f.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        text = text.replace("\\u00a7", "\u00a7")  # JSON files escape the section sign
        for n, line in enumerate(text.splitlines(), 1):
            if _SPEC_DIR in line or _SECTION_REF.search(line):
                offenders.append(f"{f.relative_to(ROOT)}:{n}")
    assert not offenders, "point at docs/*.md sections instead: " + ", ".join(offenders)


# `docs/elue.md, "Tasks"` or `hashee.md, "Saving and loading"` (optionally `... and "Another section"`), in code
# comments, docstrings and docs alike
_DOC_SECTION = re.compile(r"([\w.-]+\.md),? \"([^\"\n]+)\"((?: and \"[^\"\n]+\")*)")


def section_references(text: str) -> list[tuple[str, str]]:
    refs = []
    for doc, first, more in _DOC_SECTION.findall(text):
        refs += [(doc, first), *((doc, extra) for extra in re.findall(r"\"([^\"\n]+)\"", more))]
    return refs


def test_section_reference_rule():
    text = 'see docs/elue.md, "Tasks" and "Data files and Hub copies"; also (hashee.md, "Saving and loading")'
    assert section_references(text) == [("elue.md", "Tasks"), ("elue.md", "Data files and Hub copies"),
                                        ("hashee.md", "Saving and loading")]


def test_section_references_name_existing_headings():
    """Every `<page>.md, "Section"` reference in the code and the docs names a heading of that page."""
    pages = {p.name: p for p in DOC_FILES}
    missing = []
    for f in [*_text_files(), *DOC_FILES]:
        try:
            text = f.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        for doc, section in section_references(text):
            page = pages.get(doc)
            if page is None and doc != "CHANGELOG.md":
                missing.append(f"{f.relative_to(ROOT)}: {doc} (no such page)")
            elif page is not None and github_anchor(section) not in anchors_of(page):
                missing.append(f"{f.relative_to(ROOT)}: {doc}, {section!r} (no such heading)")
    assert not missing, "; ".join(sorted(set(missing)))
