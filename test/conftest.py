"""Shared test set-up: an isolated ROS graph, child processes, and a small real checkpoint.

Tests run against the *installed* package (make install); the source tree's fer_ros/ has no
__init__.py, so the installed package, which carries the generated messages, is the one imported.
"""

import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

# One DDS domain per test run, traffic kept on this machine: parallel runs on one host never
# see each other's topics. Set before anything imports rclpy; child processes inherit it.
os.environ.setdefault("ROS_DOMAIN_ID", str(random.Random(os.getpid()).randint(10, 100)))
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
# Camera-sized frames leave this process as they would leave a camera driver: with the shipped
# Fast DDS profile (tests that need the default transport remove it for their own child).
os.environ.setdefault("FASTDDS_DEFAULT_PROFILES_FILE", str(Path(sys.prefix) / "share" / "fer_ros" / "config"
                                                           / "fastdds_large_images.xml"))

REPO = Path(__file__).resolve().parents[1]


def pytest_configure(config):
    import fer_ros
    if fer_ros.__file__ is None or Path(fer_ros.__file__).resolve().is_relative_to(REPO / "fer_ros"):
        raise pytest.UsageError("fer_ros is imported from the source tree; run `make test` (installed package)")


@pytest.fixture
def spawn(tmp_path):
    children = []

    def start(*args, env=None, name=None):
        from fer_ros.tools.demo import Child

        name = name or "child"
        child = Child(name, [sys.executable, *args], tmp_path / f"{name}-{len(children)}.log", env=env)
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

    from fer_ros.model.checkpoint import ModelMeta, save_checkpoint
    from fer_ros.labels import FER7
    from fer_ros.model.mit import build_model
    from fer_ros.model.preprocess import Preprocess

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "small.safetensors"
    meta = ModelMeta(labels=list(FER7), arch={"variant": "mit_b0", "num_classes": 7},
                     preprocess=Preprocess(input_size=64, color="rgb"), dataset="random-test-weights")
    save_checkpoint(path, build_model("mit_b0", num_classes=7).eval(), meta)
    return path
