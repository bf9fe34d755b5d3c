"""The docs tell the truth: the README is a front door with a table of contents, every link leads
somewhere, the parameter tables are the node's, and every figure cites the committed result it
states. "The docs" are README.md and every docs/*.md."""

import json
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
DOCS = [README, *sorted((REPO / "docs").glob("*.md"))]
README_MAX_LINES = 300


def _prose(text: str) -> list[str]:
    """The lines of a Markdown text outside fenced code blocks."""
    lines, fenced = [], False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(line)
    return lines


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    """The #anchors a Markdown file's headings get (a repeated heading gets -1, -2, ...)."""
    anchors: set[str] = set()
    for line in _prose(path.read_text()):
        heading = re.match(r"#{1,6} (.+)", line)
        if heading:
            slug = base = _slug(heading.group(1))
            n = 0
            while slug in anchors:
                n += 1
                slug = f"{base}-{n}"
            anchors.add(slug)
    return anchors


def _links(path: Path) -> list[str]:
    """The targets of a Markdown file's inline links and images, outside code."""
    targets = []
    for line in _prose(path.read_text()):
        line = re.sub(r"`[^`]*`", "", line)
        targets += re.findall(r"\]\(([^)\s]+)\)", line)
    return targets


def test_parameter_tables_are_the_nodes_and_the_readme_names_both_commands():
    """docs/parameters.md holds one row per parameter, in the node's order, with its default,
    description, range and whether it applies at configure; the README's short table holds the same
    rows for the parameters people change: both are what maintainer/readme_params.py writes."""
    sys.path.insert(0, str(REPO / "maintainer"))
    from readme_params import COMMON, PARAMETERS, rows, table

    assert table(PARAMETERS.read_text()) == rows()
    readme = README.read_text()
    assert table(readme) == rows(COMMON)
    assert "docs/parameters.md" in readme
    assert "make demo" in readme and "make test" in readme
    assert "make test" in (REPO / ".ci" / "run").read_text()


def test_readme_is_a_front_door_with_a_table_of_contents():
    """At most 300 lines; a Contents list whose every link is a heading of the README, and
    which names every second-level heading; the first screen shows how to run the node and read
    its results."""
    text = README.read_text()
    length = len(text.splitlines())
    assert length <= README_MAX_LINES, f"README.md has {length} lines"
    lines = _prose(text)
    start = lines.index("## Contents") + 1
    end = next(i for i in range(start, len(lines)) if lines[i].startswith("#"))
    toc = re.findall(r"\]\(#([^)]+)\)", "\n".join(lines[start:end]))
    assert toc, "the Contents list links no heading"
    anchors = _anchors(README)
    assert not [a for a in toc if a not in anchors], "Contents links that are no heading"
    sections = [
        _slug(line[3:]) for line in lines if line.startswith("## ") and line != "## Contents"
    ]
    assert [s for s in sections if s not in toc] == [], "sections missing from Contents"
    first_screen = text[: text.index("## Use it from Python")]
    for must in ("ros2 launch fer_ros fer.launch.py", "fer-ros run", "/emotion", "`emotions`"):
        assert must in first_screen, must


def test_every_relative_link_in_the_docs_leads_somewhere():
    """Every relative link in README.md and docs/*.md names a file that exists, and an #anchor
    names a heading of the file it points to (the same file for a bare #anchor)."""
    broken = []
    for doc in DOCS:
        for target in _links(doc):
            if re.match(r"[a-z][a-z+.-]*:", target):  # https:, mailto: ...
                continue
            path, _, anchor = target.partition("#")
            linked = (doc.parent / path).resolve() if path else doc
            if not linked.exists():
                broken.append(f"{doc.relative_to(REPO)}: {target} (no such file)")
            elif anchor and linked.suffix == ".md" and anchor not in _anchors(linked):
                broken.append(f"{doc.relative_to(REPO)}: {target} (no such heading)")
    assert broken == []


def test_every_docs_page_links_back_to_the_readme_and_the_readme_links_every_page():
    readme = README.read_text()
    for doc in DOCS[1:]:
        assert any(t.split("#")[0] == "../README.md" for t in _links(doc)), doc.name
        assert f"docs/{doc.name}" in readme, f"the README does not link docs/{doc.name}"


def _json_value(document, dotted: str):
    for part in dotted.split("."):
        document = document[int(part)] if isinstance(document, list) else document[part]
    return document


def test_figures_are_the_committed_results_they_cite():
    """Every table row in the docs whose last cell cites a committed file and key
    (`file.json` → `a.b`) states that file's number, as rounded in the table (percentages of
    fractions allowed)."""
    cite = re.compile(r"`([\w./@-]+\.json)`\s*→\s*`([\w.-]+)`")
    number = re.compile(r"-?\d[\d,]*(?:\.(\d+))?")
    checked = {}
    for doc in DOCS:
        for line in doc.read_text().splitlines():
            if not line.startswith("|"):
                continue
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            sources = cite.findall(cells[-1])
            if not sources:
                continue
            where = f"{doc.relative_to(REPO)}: {line}"
            values = [m for cell in cells[1:-1] for m in number.finditer(cell)]
            assert len(values) == len(sources), f"one number per cited value: {where}"
            for (path, key), value in zip(sources, values):
                stated = float(value.group(0).replace(",", ""))
                actual = float(_json_value(json.loads((REPO / path).read_text()), key))
                if "%" in line and abs(actual) <= 1 and stated > 1:
                    actual *= 100
                decimals = len(value.group(1) or "")
                assert abs(stated - actual) <= 0.5 * 10**-decimals + 1e-9, (
                    f"{where}: {path} {key} is {actual}"
                )
                checked[doc.name] = checked.get(doc.name, 0) + 1
    assert sum(checked.values()) >= 10, f"only {checked} figures cite their source"
    assert checked.get("README.md", 0) >= 10, "the README's model table cites no results"


def test_demo_sample_reports_the_committed_demo_report():
    """The report block of the `make demo` sample (docs/bags.md) is what `summary_lines` prints for
    the report it names (benchmarks/results/demo_report.json), line for line."""
    from fer_ros.bags.report import summary_lines

    bags = (REPO / "docs" / "bags.md").read_text()
    intro = "report (recorded /emotions vs the bag's /expression labels):\n"
    block = bags[
        bags.index(intro) + len(intro) : bags.index("  latency: end_to_end = camera stamp")
    ]
    report = json.loads((REPO / "benchmarks" / "results" / "demo_report.json").read_text())
    assert block.splitlines() == ["  " + line for line in summary_lines(report)]
