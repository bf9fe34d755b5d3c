"""Hostile inputs run in a child process under a memory ceiling (RLIMIT_AS) and a time limit: a
regression fails the test there (MemoryError, a non-zero exit, a timeout) instead of taking the
machine with it. The child imports fer_ros from the source tree, as the unit tests do."""

import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# The child sees the source tree first, then the installed package (which alone holds the
# generated message modules), as test/conftest.py arranges for this process.
_PRELUDE = """
import importlib.util, resource, sys
from pathlib import Path

resource.setrlimit(resource.RLIMIT_AS, ({limit}, {limit}))
_installed = importlib.util.find_spec("fer_ros")
_spec = importlib.util.spec_from_file_location(
    "fer_ros", _installed.origin,
    submodule_search_locations=[{source!r}, str(Path(_installed.origin).parent)])
_package = importlib.util.module_from_spec(_spec)
sys.modules["fer_ros"] = _package
_spec.loader.exec_module(_package)
"""


def run_bounded(code: str, memory_gb: float = 1.5, timeout: float = 60):
    """Run `code` (Python, dedented) in a child limited to `memory_gb` of address space; a timeout
    is reported as exit code -9 with what it printed so far."""
    prelude = _PRELUDE.format(limit=int(memory_gb * 2**30), source=str(REPO / "fer_ros"))
    try:
        return subprocess.run(
            [sys.executable, "-c", prelude + textwrap.dedent(code)],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=REPO,
        )
    except subprocess.TimeoutExpired as err:
        out = err.stdout.decode() if isinstance(err.stdout, bytes) else err.stdout or ""
        return subprocess.CompletedProcess(err.cmd, -9, out, f"timed out after {timeout} s")
