"""Write the frozen requirements of a virtual environment to standard output.

`pip freeze` lists, beside each `ros-foo` wheel, a `foo` distribution that the wheel carries
inside it and that PyPI does not serve; those are left out so the file can be installed.
The local-version suffix of a CPU torch build is dropped so that the pin also matches the
CUDA build of the same release.
"""

import re
import subprocess
import sys


def main() -> None:
    python = sys.argv[1] if len(sys.argv) > 1 else sys.executable
    lines = subprocess.run([python, "-m", "pip", "freeze", "--exclude-editable"],
                           check=True, capture_output=True, text=True).stdout.splitlines()
    pins = [line for line in lines if "==" in line and not line.startswith("fer_ros")]
    names = {line.split("==")[0].lower().replace("_", "-") for line in pins}
    print("# Generated from requirements.in by 'make lock'. Do not edit by hand.")
    for line in pins:
        name = line.split("==")[0].lower().replace("_", "-")
        if not name.startswith("ros-") and f"ros-{name}" in names:
            continue
        print(re.sub(r"^(torch==[0-9.]+)\+cpu$", r"\1", line))


if __name__ == "__main__":
    main()
