"""Rewrite the README's parameter table from the parameters fer_node declares (fer_ros.ros.params).

    .venv/bin/python maintainer/readme_params.py

test/package/test_docs.py checks that the table is exactly this; run this after changing a parameter.
"""

from pathlib import Path

from fer_ros.ros.params import PARAMS

README = Path(__file__).resolve().parents[1] / "README.md"
HEAD = "| parameter | default | what it does |\n|---|---|---|\n"


def shown(value) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else repr(value)


def rows() -> list[str]:
    return [f"| `{name}` | `{shown(s.default)}` | {s.doc}" + (f" ({s.low:g}–{s.high:g})" if s.low is not None else "")
            + "." + ("" if s.live else " *Set before configure.*") + " |" for name, s in PARAMS.items()]


def main() -> None:
    text = README.read_text()
    start = text.index(HEAD) + len(HEAD)
    end = text.index("\n\n", start)
    README.write_text(text[:start] + "\n".join(rows()) + text[end:])


if __name__ == "__main__":
    main()
