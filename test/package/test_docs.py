"""The README tells the truth: its parameter table is the node's, and every figure it cites is the
committed result it names."""

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_readme_parameter_table_is_the_nodes_and_names_both_commands():
    """One row per parameter, in the node's order, with its default, description, range and whether
    it applies at configure: the table is what the node declares (tools/readme_params.py writes it)."""
    sys.path.insert(0, str(REPO / "maintainer"))
    from readme_params import HEAD, rows

    readme = (REPO / "README.md").read_text()
    assert readme[readme.index(HEAD) + len(HEAD):].split("\n\n", 1)[0].splitlines() == rows()
    assert "make demo" in readme and "make test" in readme
    assert "make test" in (REPO / ".ci" / "run").read_text()


def _json_value(document, dotted: str):
    for part in dotted.split("."):
        document = document[int(part)] if isinstance(document, list) else document[part]
    return document


def test_readme_figures_are_the_committed_results_they_cite():
    """Every README table row whose last cell cites a committed file and key (`file.json` → `a.b`)
    states that file's number, as rounded in the table (percentages of fractions allowed)."""
    import re

    readme = (REPO / "README.md").read_text()
    cite = re.compile(r"`([\w./-]+\.json)`\s*→\s*`([\w.-]+)`")
    number = re.compile(r"-?\d[\d,]*(?:\.(\d+))?")
    checked = 0
    for line in readme.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")] if line.startswith("|") else []
        sources = cite.findall(cells[-1]) if cells else []
        if not sources:
            continue
        values = [m for cell in cells[1:-1] for m in number.finditer(cell)]
        assert len(values) == len(sources), f"one number per cited value: {line}"
        for (path, key), value in zip(sources, values):
            stated = float(value.group(0).replace(",", ""))
            actual = float(_json_value(json.loads((REPO / path).read_text()), key))
            if "%" in line and abs(actual) <= 1 and stated > 1:
                actual *= 100
            decimals = len(value.group(1) or "")
            assert abs(stated - actual) <= 0.5 * 10 ** -decimals + 1e-9, f"{line}: {path} {key} is {actual}"
            checked += 1
    assert checked >= 10, f"only {checked} figures cite their source"


def test_readme_demo_sample_reports_the_committed_demo_report():
    """The report block of the README's `make demo` sample is what `summary_lines` prints for the
    report it names (benchmarks/results/demo_report.json), line for line."""
    from fer_ros.bags.report import summary_lines

    readme = (REPO / "README.md").read_text()
    intro = "report (recorded /emotions vs the bag's /expression labels):\n"
    block = readme[readme.index(intro) + len(intro):readme.index("  latency: end_to_end = camera stamp")]
    report = json.loads((REPO / "benchmarks" / "results" / "demo_report.json").read_text())
    assert block.splitlines() == ["  " + line for line in summary_lines(report)]
