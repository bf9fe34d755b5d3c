"""Write the frozen requirements of a virtual environment to standard output.

Usage: freeze_requirements.py PYTHON [REQUIREMENTS_IN [MAKE_TARGET]] (named in the header line).

`pip freeze` lists, beside each `ros-foo` wheel, a `foo` distribution that the wheel carries
inside it and that PyPI does not serve; those are left out so the file can be installed.
The local-version suffix of a CPU torch build is dropped so that the pin also matches the
CUDA build of the same release. A pin whose line in REQUIREMENTS_IN carries an environment marker
(a wheel that exists only for some platforms) keeps that marker.
"""

import re
import subprocess
import sys


def main() -> None:
    python = sys.argv[1] if len(sys.argv) > 1 else sys.executable
    source = sys.argv[2] if len(sys.argv) > 2 else "requirements.in"
    target = sys.argv[3] if len(sys.argv) > 3 else "lock"
    lines = subprocess.run(
        [python, "-m", "pip", "freeze", "--exclude-editable"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.splitlines()
    pins = [line for line in lines if "==" in line and not line.startswith("fer_ros")]
    names = {line.split("==")[0].lower().replace("_", "-") for line in pins}
    markers = {}
    for line in open(source).read().splitlines():
        spec, _, marker = line.split("#")[0].partition(";")
        if marker.strip():
            markers[re.split(r"[=<>!~\[ ]", spec.strip())[0].lower().replace("_", "-")] = (
                marker.strip()
            )
    print(f"# Generated from {source} by 'make {target}'. Do not edit by hand.")
    for line in pins:
        name = line.split("==")[0].lower().replace("_", "-")
        if not name.startswith("ros-") and f"ros-{name}" in names:
            continue
        line = re.sub(r"^(torch==[0-9.]+)\+cpu$", r"\1", line)
        print(f"{line}; {markers[name]}" if name in markers else line)


if __name__ == "__main__":
    main()
