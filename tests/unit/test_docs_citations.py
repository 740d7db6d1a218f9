"""Code, tests and docs cite pages under docs/, never design notes outside the repository.

A citation such as "reference §7.3" or "../shared/..." points a reader at a document they do not
have; docs/upstream.md holds the upstream facts the code relies on. Links to a section of a page
under docs/ must name a heading that exists, so a renamed section cannot leave citations dangling.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
SCANNED = [
    "spider",
    "tests",
    "docs",
    "benchmarks",
    "tools",
    "examples",
    "executor_bin",
    "deploy",
    "README.md",
]
SUFFIXES = {
    ".py",
    ".md",
    ".toml",
    ".yaml",
    ".yml",
    ".txt",
    ".sh",
    ".tpl",
    ".example",
    ".dockerignore",
}
NAMES = {"Dockerfile"}

# Split so that this file does not match its own patterns.
SECTION = "\N{SECTION SIGN}"
OUTSIDE_CITATIONS = re.compile(
    "|".join(
        [
            rf"reference {SECTION}",  # "reference §7.3": the design notes beside the checkout
            r"\.\./shared",
            r"shared/(?:reference|design)",
            rf"(?:architecture|interfaces)\.md {SECTION}",  # the design notes' numbered sections
            r"upstream-(?:em|storage-scheduler)\.md",
            rf"{SECTION}\d",  # a bare "§12.5" names a section of a document nobody can open
        ]
    )
)
DOCS_LINK = re.compile(r"([\w.-]+\.md)#([\w-]+)")


def _scanned_files() -> list[Path]:
    files: list[Path] = []
    for name in SCANNED:
        path = ROOT / name
        if path.is_file():
            files.append(path)
            continue
        files.extend(
            file
            for file in sorted(path.rglob("*"))
            if (file.suffix in SUFFIXES or file.name in NAMES)
            and "__pycache__" not in file.parts
            and file.is_file()
        )
    return [file for file in files if file != Path(__file__).resolve()]


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    anchors: set[str] = set()
    in_code = False
    for line in page.read_text().splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and (match := re.match(r"#{1,6} (.+)", line)):
            slug = _slug(match.group(1))
            count = sum(
                1 for anchor in anchors if re.fullmatch(rf"{re.escape(slug)}(-\d+)?", anchor)
            )
            anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


def test_the_scan_covers_the_code_the_tests_and_the_docs() -> None:
    files = {file.relative_to(ROOT).as_posix() for file in _scanned_files()}
    assert {
        "spider/scheduler/placement.py",
        "docs/upstream.md",
        "README.md",
        "deploy/compose.yaml",
        "deploy/Dockerfile",
    } <= files


def test_nothing_cites_documents_outside_the_repository() -> None:
    offending = [
        f"{file.relative_to(ROOT)}:{number}: {line.strip()}"
        for file in _scanned_files()
        for number, line in enumerate(file.read_text(errors="replace").splitlines(), 1)
        if OUTSIDE_CITATIONS.search(line)
    ]
    assert offending == [], "cite a page under docs/ (docs/upstream.md for upstream's facts)"


def test_links_to_sections_of_the_docs_name_existing_headings() -> None:
    pages = {page.name: _anchors(page) for page in DOCS.glob("*.md")}
    dangling = [
        f"{file.relative_to(ROOT)}: {page}#{anchor}"
        for file in _scanned_files()
        for page, anchor in DOCS_LINK.findall(file.read_text(errors="replace"))
        if page in pages and anchor not in pages[page]
    ]
    assert dangling == []


def test_the_anchor_rule_is_githubs() -> None:
    assert _slug("10. Differences from upstream, and why") == "10-differences-from-upstream-and-why"
    assert _slug("The scheduler's EM registry") == "the-schedulers-em-registry"
    assert (
        _slug("gRPC: deadlines, status mapping, retries") == "grpc-deadlines-status-mapping-retries"
    )
