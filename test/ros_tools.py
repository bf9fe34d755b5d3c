"""Upstream ROS 2 tools for tests: `ros2` (launch, topic, param, lifecycle, ...) and the interface
packages fer_ros's users meet (vision_msgs, hri_msgs), built into a throw-away layer on top of this
venv's ROS 2 wheels.

None of them is on PyPI. Their unmodified upstream sources lie in ../shared/vendor/ros2 (see its
README.md) on machines that have them; they are never copied into this project. `build_layer`
unpacks them under a folder the caller owns (a pytest tmp dir), builds the interface packages with
colcon + rosidl against the wheels (as test_colcon.py builds fer_ros), pip-installs the pure-Python
tools and their missing PyPI dependencies into the same prefix, and returns the environment in
which `ros2` sees the layer, the venv and the fer_ros that `make install` put there.

Importing this module imports nothing of ROS.
"""

import os
import shutil
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
VENDOR = Path(os.environ.get("FER_ROS_VENDOR_ROS2", REPO.parent / "shared" / "vendor" / "ros2"))
TOOLS_TARBALL = "ros2-python-tools.tar.gz"
INTERFACES_TARBALL = "interface-packages.tar.gz"

# Built with rosidl; launch_ros imports composition_interfaces.srv whenever a launch file loads.
INTERFACE_PACKAGES = ("composition_interfaces", "vision_msgs", "hri_msgs")
# pip-installed in this order (launch before the packages that extend it).
PYTHON_TOOLS = (
    "launch",
    "launch_xml",
    "launch_yaml",
    "rosidl_runtime_py",
    "launch_ros",
    "ros2cli",
    "ros2pkg",
    "ros2run",
    "ros2topic",
    "ros2node",
    "ros2param",
    "ros2lifecycle",
    "ros2interface",
    "ros2service",
    "ros2launch",
)
# The tools' run-time needs from PyPI, as (requirement, module); the ROS wheels bring lark, PyYAML,
# catkin_pkg, empy and numpy already. Only those the venv lacks go into the layer.
PYPI_DEPENDENCIES = (("osrf-pycommon==2.0.2", "osrf_pycommon"), ("psutil==7.2.2", "psutil"))

# CMAKE_PROJECT_INCLUDE for the upstream packages, the fix fer_ros's CMakeLists.txt carries itself:
# the wheels' exported *__rosidl_generator_py targets name the include directories of the machine
# that built the wheels (/opt/python/...), which CMake rejects. Deferred to the end of the
# top-level directory so that every target rosidl_generate_interfaces pulled in is covered.
_WHEELS_FIX_CMAKE = r"""
function(_wheels_fix_rosidl_generator_py_includes)
  execute_process(
    COMMAND "${Python3_EXECUTABLE}" -c
      "import sysconfig, numpy; print(sysconfig.get_path('include') + ';' + numpy.get_include())"
    OUTPUT_VARIABLE dirs OUTPUT_STRIP_TRAILING_WHITESPACE COMMAND_ERROR_IS_FATAL ANY)
  get_directory_property(targets DIRECTORY "${CMAKE_SOURCE_DIR}" IMPORTED_TARGETS)
  foreach(target ${targets})
    if(target MATCHES "__rosidl_generator_py$")
      get_target_property(old ${target} INTERFACE_INCLUDE_DIRECTORIES)
      if(old)
        list(GET old 0 first)
        if(NOT EXISTS "${first}")
          set_target_properties(${target} PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${dirs}")
        endif()
      endif()
    endif()
  endforeach()
endfunction()
if(CMAKE_CURRENT_SOURCE_DIR STREQUAL CMAKE_SOURCE_DIR)
  cmake_language(DEFER DIRECTORY "${CMAKE_SOURCE_DIR}"
                 CALL _wheels_fix_rosidl_generator_py_includes)
endif()
"""


class LayerError(RuntimeError):
    """A step of the layer build failed; the message ends with the step's output."""


@dataclass
class Layer:
    prefix: Path  # install prefix: bin/ros2, lib/, lib/python3.X/site-packages, share/
    env: dict  # environment for `ros2 ...` and for Pythons that import the layer's packages
    seconds: dict = field(default_factory=dict)  # wall time per build step

    def ros2(self, *args: str, timeout: float = 120.0) -> subprocess.CompletedProcess:
        """`ros2 <args>` in the layer's environment, output captured."""
        return subprocess.run(
            [str(self.prefix / "bin" / "ros2"), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )


def missing(python: str = sys.executable) -> str | None:
    """Why a layer cannot be built here (a skip reason), or None."""
    for name in (TOOLS_TARBALL, INTERFACES_TARBALL):
        if not (VENDOR / name).is_file():
            return (
                f"{VENDOR / name} is absent (upstream ROS 2 tools, "
                "see ../shared/vendor/ros2/README.md)"
            )
    if shutil.which("cmake") is None:
        return "cmake is not installed"
    if not (Path(python).parent / "colcon").exists():
        return "colcon is not installed next to the venv's Python"
    return None


def build_layer(base: Path, python: str = sys.executable, workers: int | None = None) -> Layer:
    """Build the layer under base (created if needed; everything it writes stays there).

    python is the venv's interpreter (not resolved: a venv's python is a symlink out of the venv).
    Takes ≈4 min on 2 busy cores, nearly all of it compiling the three interface packages.
    """
    reason = missing(python)
    if reason:
        raise LayerError(reason)
    base = Path(base).resolve()
    prefix, src, tools = base / "install", base / "src", base / "tools"
    for folder in (src, tools):
        folder.mkdir(parents=True, exist_ok=True)
    venv = Path(_python_output(python, "import sys; print(sys.prefix)"))
    seconds = {}

    start = time.monotonic()
    with tarfile.open(VENDOR / INTERFACES_TARBALL) as tar:
        tar.extractall(src, filter="data")
    with tarfile.open(VENDOR / TOOLS_TARBALL) as tar:
        tar.extractall(tools, filter="data")
    shutil.move(tools / "composition_interfaces", src / "composition_interfaces")
    for (
        name
    ) in PYTHON_TOOLS:  # setuptools would reuse the tarball's build/ and *.egg-info leftovers
        for leftover in [tools / name / "build", *(tools / name).glob("*.egg-info")]:
            shutil.rmtree(leftover, ignore_errors=True)
    fix = base / "wheels_rosidl_fix.cmake"
    fix.write_text(_WHEELS_FIX_CMAKE)
    seconds["unpack"] = time.monotonic() - start

    start = time.monotonic()
    env = dict(
        _without_layers(dict(os.environ)), AMENT_PREFIX_PATH=str(venv), CMAKE_PREFIX_PATH=str(venv)
    )
    command = [
        str(Path(python).parent / "colcon"),
        "--log-base",
        str(base / "log"),
        "build",
        "--merge-install",
        "--base-paths",
        str(src),
        "--build-base",
        str(base / "build"),
        "--install-base",
        str(prefix),
        "--packages-select",
        *INTERFACE_PACKAGES,
        "--event-handlers",
        "console_direct-",
    ]
    if workers:
        command += ["--parallel-workers", str(workers)]
    command += [
        "--cmake-args",
        f"-DPython3_EXECUTABLE={python}",
        "-DBUILD_TESTING=OFF",
        f"-DCMAKE_PROJECT_INCLUDE={fix}",
    ]
    _run("colcon build", command, cwd=base, env=env, timeout=1800)
    seconds["interfaces"] = time.monotonic() - start

    start = time.monotonic()
    have = _python_output(
        python,
        "import importlib.util as u; print(' '.join(m for m in %r if u.find_spec(m)))"
        % [module for _, module in PYPI_DEPENDENCIES],
    ).split()
    requirements = [req for req, module in PYPI_DEPENDENCIES if module not in have]
    # --no-deps: the tools' own requirements are the ROS wheels, these two and PyYAML, all present.
    _run(
        "pip install",
        [
            python,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--no-warn-script-location",
            "--disable-pip-version-check",
            "--prefix",
            str(prefix),
            *(str(tools / name) for name in PYTHON_TOOLS),
            *requirements,
        ],
        cwd=base,
        env=env,
        timeout=900,
    )
    seconds["python_tools"] = time.monotonic() - start

    return Layer(prefix, layer_env(prefix, venv, python, ros_home=base / "ros_home"), seconds)


def layer_env(
    prefix: Path,
    venv: Path,
    python: str = sys.executable,
    base_env: dict | None = None,
    ros_home: Path | None = None,
) -> dict:
    """The environment in which `ros2` and Python see the layer first, then the venv.

    fer_ros's share/ and lib/fer_ros/ are under the venv prefix (`make install`), so the venv stays
    on AMENT_PREFIX_PATH. LD_LIBRARY_PATH carries the layer's generated libraries (colcon installs
    them without an rpath); the venv's own libraries are added by ros-wheels-bootstrapper, which
    keeps what is already there.
    """
    env = _without_layers(dict(os.environ if base_env is None else base_env))
    version = _python_output(
        python, "import sys; print(f'{sys.version_info.major}.{sys.version_info.minor}')"
    )
    site = prefix / "lib" / f"python{version}" / "site-packages"

    def prepend(name, *paths):
        env[name] = os.pathsep.join(
            [*map(str, paths), *filter(None, env.get(name, "").split(os.pathsep))]
        )

    prepend("PATH", prefix / "bin", Path(python).parent)
    prepend("PYTHONPATH", site)
    prepend("LD_LIBRARY_PATH", prefix / "lib")
    env["AMENT_PREFIX_PATH"] = os.pathsep.join([str(prefix), str(venv)])
    env.pop("CMAKE_PREFIX_PATH", None)
    env.pop("COLCON_PREFIX_PATH", None)
    if (
        ros_home is not None
    ):  # logs of launch and of the nodes it starts stay in the throw-away folder
        env.setdefault("ROS_HOME", str(ros_home))
    return env


def _without_layers(env: dict) -> dict:
    """env without ROS set-up inherited from a sourced workspace (it would shadow the venv's
    wheels)."""
    for name in ("AMENT_PREFIX_PATH", "CMAKE_PREFIX_PATH", "COLCON_PREFIX_PATH", "PYTHONPATH"):
        env.pop(name, None)
    return env


def _python_output(python: str, code: str) -> str:
    return subprocess.run(
        [python, "-c", code],
        check=True,
        capture_output=True,
        text=True,
        env=_without_layers(dict(os.environ)),
    ).stdout.strip()


def _run(what: str, command: list[str], **kwargs) -> None:
    done = subprocess.run(command, capture_output=True, text=True, **kwargs)
    if done.returncode != 0:
        raise LayerError(
            f"{what} failed (exit code "
            f"{done.returncode}):\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
        )


def load_layer(base: Path) -> Layer:
    """The layer `python ros_tools.py BASE` built (BASE/layer.json), or LayerError with its log."""
    import json

    record = Path(base) / "layer.json"
    if not record.is_file():
        log = Path(base) / "build.log"
        raise LayerError(
            "the layer was not built:\n" + (log.read_text()[-4000:] if log.is_file() else "no log")
        )
    data = json.loads(record.read_text())
    return Layer(Path(data["prefix"]), data["env"], data["seconds"])


def main(argv: list[str]) -> int:
    """`python ros_tools.py BASE`: build the layer under BASE and record it in BASE/layer.json."""
    import json

    base = Path(argv[0])
    try:
        layer = build_layer(base)
    except LayerError as err:
        print(err, file=sys.stderr)
        return 1
    (base / "layer.json").write_text(
        json.dumps({"prefix": str(layer.prefix), "env": layer.env, "seconds": layer.seconds})
    )
    print(f"layer built in {sum(layer.seconds.values()):.0f} s: {layer.seconds}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
