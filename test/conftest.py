"""Shared test set-up: an isolated ROS graph, child processes, and a small real checkpoint.

Layout: test/unit/ mirrors the package and needs no DDS; test/ros/ runs real processes over Fast
DDS (fer_node, fer-ros, launch); test/package/ checks the install, the docs and the architecture.

Imports in this process read fer_ros's Python modules from the SOURCE tree and only what the build
generates (fer_ros.msg and its compiled type support, which the source tree lacks) from the
installed package: a unit test sees an edit at once (`make unit`), without reinstalling. Child
processes (fer-ros, fer_node, launch) run the installed package, so the ros/ and package/ tests
need `make install` after an edit (`make test` does it).
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _source_first() -> None:
    """fer_ros as one package over two folders: the source tree first, then the installed package
    (found as Python would find it), which alone holds the generated message modules."""
    import importlib.util

    installed = importlib.util.find_spec("fer_ros")
    if installed is None or not installed.origin:
        raise pytest.UsageError(
            "fer_ros is not installed: run `make install` once (it generates the messages)"
        )
    folder = Path(installed.origin).parent
    spec = importlib.util.spec_from_file_location(
        "fer_ros",
        installed.origin,
        submodule_search_locations=[str(REPO / "fer_ros"), str(folder)],
    )
    package = importlib.util.module_from_spec(spec)
    sys.modules["fer_ros"] = package
    spec.loader.exec_module(package)


_source_first()

# One DDS domain per test run, claimed (a lock file per id) so that concurrent runs, demos and
# benchmarks on one host never share a graph; traffic kept on this machine. Set before anything
# imports rclpy; child processes inherit it.
from fer_ros.ros.dds import profile_variable  # noqa: E402 (plain Python: no rclpy import)
from fer_ros.ros.domain import private_graph  # noqa: E402 (plain Python: no rclpy import)

os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
private_graph()
# Camera-sized frames leave this process as they would leave a camera driver: with the shipped
# Fast DDS profile (tests that need the default transport remove it for their own child).
os.environ.setdefault(
    profile_variable(),
    str(Path(sys.prefix) / "share" / "fer_ros" / "config" / "fastdds_large_images.xml"),
)


@pytest.fixture
def spawn(tmp_path):
    children = []

    def start(*args, env=None, name=None):
        from fer_ros.tools.demo import Child

        name = name or "child"
        child = Child(
            name, [sys.executable, *args], tmp_path / f"{name}-{len(children)}.log", env=env
        )
        children.append(child)
        return child

    yield start
    for child in children:
        child.stop()


@pytest.fixture(scope="session")
def ros():
    """rclpy, initialised once per test process."""
    import rclpy

    if not rclpy.ok():
        rclpy.init()
    yield rclpy
    rclpy.try_shutdown()


@pytest.fixture(scope="session")
def small_checkpoint(tmp_path_factory) -> Path:
    """A real checkpoint (random MiT-b0 weights, 64x64 RGB input), written by save_checkpoint."""
    import torch

    from fer_ros.labels import FER7
    from fer_ros.model.checkpoint import ModelMeta, save_checkpoint
    from fer_ros.model.mit import build_model
    from fer_ros.model.preprocess import Preprocess

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "small.safetensors"
    meta = ModelMeta(
        labels=list(FER7),
        arch={"variant": "mit_b0", "num_classes": 7},
        preprocess=Preprocess(input_size=64, color="rgb"),
        dataset="random-test-weights",
    )
    save_checkpoint(path, build_model("mit_b0", num_classes=7).eval(), meta)
    return path


def pytest_addoption(parser):
    # A test that passes only after (or before) another has left something behind is found by
    # running the files the other way round: make test PYTEST_ARGS=--file-order=reverse.
    parser.addoption(
        "--file-order",
        choices=("forward", "reverse"),
        default="forward",
        help="run the test files in reverse order (each file's tests keep their order)",
    )


def in_file_order(items, order: str) -> None:
    """Reorder `items` so whole files run last-first (`reverse`), each file's tests in order."""
    if order != "reverse":
        return
    files = list(dict.fromkeys(item.path for item in items))
    rank = {path: i for i, path in enumerate(reversed(files))}
    items.sort(key=lambda item: rank[item.path])  # stable: a file's own order stays


# -- upstream ROS tools and interface packages -------------------------------------------------
# `ros2 launch` / `ros2 topic ...` and vision_msgs / hri_msgs are not wheels: test/ros_tools.py
# builds them from ../shared/vendor/ros2 into a throw-away layer. That takes minutes, so the build
# starts in the background as soon as a collected test asks for the layer, and overlaps the other
# tests.

_LAYER: dict = {}


def pytest_collection_modifyitems(session, config, items):
    in_file_order(items, config.getoption("--file-order"))
    if not any("ros_layer" in getattr(item, "fixturenames", ()) for item in items):
        return
    import tempfile

    sys.path.insert(0, str(Path(__file__).parent))
    from ros_tools import missing

    reason = missing(sys.executable)
    if reason:
        _LAYER["skip"] = reason
        return
    base = Path(tempfile.mkdtemp(prefix="fer_ros_layer-"))
    log = open(base / "build.log", "wb")
    _LAYER.update(
        base=base,
        log=log,
        proc=subprocess.Popen(
            [sys.executable, str(Path(__file__).parent / "ros_tools.py"), str(base)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        ),
    )


def pytest_unconfigure(config):
    proc = _LAYER.get("proc")
    if proc is not None:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        _LAYER["log"].close()
        import shutil

        shutil.rmtree(_LAYER["base"], ignore_errors=True)


@pytest.fixture(scope="session")
def ros_layer():
    """The built layer (test/ros_tools.Layer): `ros2` CLI, launch, vision_msgs and hri_msgs."""
    if "skip" in _LAYER:
        pytest.skip(_LAYER["skip"])
    from ros_tools import load_layer

    _LAYER["proc"].wait(timeout=1800)
    return load_layer(_LAYER["base"])
