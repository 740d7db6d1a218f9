"""Code, tests and docs cite pages under docs/, never design notes outside the repository.

A citation such as "reference §7.3" or "../shared/..." points a reader at a document they do not
have; docs/upstream.md holds the upstream facts the code relies on. Every page cited must exist,
and a citation of a section, as ``docs/page.md#anchor``, ``(docs/page.md, "Heading")`` or
``"Heading" in docs/page.md``, must name a heading that exists, so a renamed page or section
cannot leave citations dangling.
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
    "protos",
    "scripts",
    "deploy",
    "README.md",
    "pyproject.toml",
    "noxfile.py",
    ".ci/run",
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
    ".proto",
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
            r"(?:conventions|interfaces|aesthetics|peers)\.md",  # the other design notes
            rf"{SECTION}\d",  # a bare "§12.5" names a section of a document nobody can open
            rf"\.md ?{SECTION}",  # "page.md § 4": cite the heading or its anchor instead
        ]
    )
)
DOCS_LINK = re.compile(r"([\w.-]+\.md)#([\w-]+)")
CITED_PAGE = re.compile(r"(?<![\w./-])((?:[\w.-]+/)*[\w-]+\.md)\b")
URL = re.compile(r"\bhttps?://\S+")
QUOTED_SECTION = re.compile(r"(?<![\w/.-])(?:docs/)?([\w-]+\.md),\s+\"([^\"]+)\"")
SECTION_IN_PAGE = re.compile(r"\"([^\"]+)\"\s+in\s+`?docs/([\w-]+\.md)")
LOCAL_LINK = re.compile(r"\]\(#([\w-]+)\)")


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


def _text(file: Path) -> str:
    return file.read_text(errors="replace")


def _prose(file: Path) -> str:
    """The file's text as one line: indentation and comment markers dropped, so that a citation
    wrapped across the lines of a docstring or a comment reads as it was written."""
    lines = (
        re.sub(r"^\s*(?:#+|//+)?\s*", "", line) for line in URL.sub("", _text(file)).splitlines()
    )
    return " ".join(line for line in lines if line)


def _headings(page: Path) -> list[str]:
    headings: list[str] = []
    in_code = False
    for line in page.read_text().splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and (match := re.match(r"#{1,6} (.+)", line)):
            headings.append(match.group(1).strip())
    return headings


def _names_a_heading(quoted: str, headings: list[str]) -> bool:
    """True if ``quoted`` is a heading, or the start of one up to a word's end; a numbered
    heading ("4. Dataflow, ...") may be cited with or without its number."""
    for heading in headings:
        for text in {heading, heading.replace("`", ""), re.sub(r"^\d+(?:\.\d+)*\.? ", "", heading)}:
            if text == quoted or (text.startswith(quoted) and not text[len(quoted)].isalnum()):
                return True
    return False


def _resolves(cited: str, file: Path) -> bool:
    """True if ``cited`` (a path ending in .md) names a file of the repository: from the root,
    from the citing file's folder, or, for a bare name, a page under docs/."""
    candidates = [ROOT / cited, file.parent / cited]
    if "/" not in cited:
        candidates.append(DOCS / cited)
    return any(candidate.is_file() for candidate in candidates)


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    anchors: set[str] = set()
    for heading in _headings(page):
        slug = _slug(heading)
        count = sum(1 for anchor in anchors if re.fullmatch(rf"{re.escape(slug)}(-\d+)?", anchor))
        anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


def test_the_scan_covers_the_code_the_tests_and_the_docs() -> None:
    files = {file.relative_to(ROOT).as_posix() for file in _scanned_files()}
    assert {
        "spider/scheduler/placement.py",
        "docs/upstream.md",
        "README.md",
        "pyproject.toml",
        "protos/storage/storage.proto",
        "scripts/ci-install-netfaults.sh",
        "deploy/compose.yaml",
        "deploy/Dockerfile",
    } <= files


def test_nothing_cites_documents_outside_the_repository() -> None:
    offending = [
        f"{file.relative_to(ROOT)}:{number}: {line.strip()}"
        for file in _scanned_files()
        for number, line in enumerate(_text(file).splitlines(), 1)
        if OUTSIDE_CITATIONS.search(line)
    ]
    assert offending == [], "cite a page under docs/ (docs/upstream.md for upstream's facts)"


def test_links_to_sections_of_the_docs_name_existing_headings() -> None:
    pages = {page.name: _anchors(page) for page in DOCS.glob("*.md")}
    dangling = [
        f"{file.relative_to(ROOT)}: {page}#{anchor}"
        for file in _scanned_files()
        for page, anchor in DOCS_LINK.findall(_text(file))
        if page in pages and anchor not in pages[page]
    ]
    assert dangling == []


def test_cited_pages_exist() -> None:
    missing = [
        f"{file.relative_to(ROOT)}: {cited}"
        for file in _scanned_files()
        for cited in CITED_PAGE.findall(URL.sub("", _text(file)))
        if not _resolves(cited, file)
    ]
    assert missing == [], "cite a page that exists under docs/"


def test_quoted_sections_of_the_docs_exist() -> None:
    pages = {page.name: _headings(page) for page in DOCS.glob("*.md")}
    dangling = []
    for file in _scanned_files():
        prose = _prose(file)
        cited = QUOTED_SECTION.findall(prose) + [
            (page, section) for section, page in SECTION_IN_PAGE.findall(prose)
        ]
        dangling += [
            f'{file.relative_to(ROOT)}: {page}, "{section}"'
            for page, section in cited
            if page not in pages or not _names_a_heading(section, pages[page])
        ]
    assert dangling == [], 'cite a section as (docs/page.md, "Its heading")'


def test_links_within_a_page_name_its_headings() -> None:
    dangling = [
        f"{page.relative_to(ROOT)}: #{anchor}"
        for page in sorted(DOCS.glob("*.md"))
        for anchor in LOCAL_LINK.findall(page.read_text())
        if anchor not in _anchors(page)
    ]
    assert dangling == []


def test_a_quoted_section_may_be_the_start_of_its_heading() -> None:
    headings = ["4. Dataflow, persistence and consistency", "Declared dead: registering again"]
    assert _names_a_heading("Dataflow, persistence and consistency", headings)
    assert _names_a_heading("4. Dataflow, persistence and consistency", headings)
    assert _names_a_heading("Declared dead", headings)
    assert not _names_a_heading("Declared", ["Declaredness"])
    assert not _names_a_heading("Job cache ordering", headings)


def test_the_anchor_rule_is_githubs() -> None:
    assert _slug("10. Differences from upstream, and why") == "10-differences-from-upstream-and-why"
    assert _slug("The scheduler's EM registry") == "the-schedulers-em-registry"
    assert (
        _slug("gRPC: deadlines, status mapping, retries") == "grpc-deadlines-status-mapping-retries"
    )
