"""Rewrite the parameter tables from the parameters fer_node declares (fer_ros.ros.params): every
parameter in docs/parameters.md, the few people change in the README.

    .venv/bin/python maintainer/readme_params.py

test/package/test_docs.py checks that both tables are exactly this; run it after changing a
parameter.
"""

from pathlib import Path

from fer_ros.ros.params import PARAMS

REPO = Path(__file__).resolve().parents[1]
PARAMETERS = REPO / "docs" / "parameters.md"
README = REPO / "README.md"
HEAD = "| parameter | default | what it does |\n|---|---|---|\n"
# The parameters people change: the README's short table, in the node's order.
COMMON = (
    "checkpoint",
    "device",
    "detector",
    "min_face_size",
    "max_faces",
    "smoothing",
    "confidence_threshold",
    "image_transport",
    "max_rate",
    "hri",
)


def shown(value) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else repr(value)


def rows(names=None) -> list[str]:
    """One table row per parameter (all of them, or those named), in the node's order."""
    return [
        f"| `{name}` | `{shown(s.default)}` | {s.doc}"
        + (f" ({s.low:g}–{s.high:g})" if s.low is not None else "")
        + "."
        + ("" if s.live else " *Set before configure.*")
        + " |"
        for name, s in PARAMS.items()
        if names is None or name in names
    ]


def table(text: str) -> list[str]:
    """The rows of the parameter table in a Markdown text: the lines after HEAD to a blank line."""
    start = text.index(HEAD) + len(HEAD)
    return text[start:].split("\n\n", 1)[0].splitlines()


def rewrite(path: Path, lines: list[str]) -> None:
    text = path.read_text()
    start = text.index(HEAD) + len(HEAD)
    end = text.index("\n\n", start)
    path.write_text(text[:start] + "\n".join(lines) + text[end:])


def main() -> None:
    rewrite(PARAMETERS, rows())
    rewrite(README, rows(COMMON))


if __name__ == "__main__":
    main()
