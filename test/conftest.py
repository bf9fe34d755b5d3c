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


class Child:
    """A Python process of the test, stdout+stderr captured to a file for failure messages."""

    def __init__(self, args, log: Path, env=None):
        self.log_path = log
        self.log = open(log, "wb")
        self.proc = subprocess.Popen([sys.executable, *args], stdout=self.log, stderr=subprocess.STDOUT,
                                     env=env, start_new_session=True)

    def output(self) -> str:
        if not self.log.closed:
            self.log.flush()
        return self.log_path.read_text(errors="replace")

    def wait_for_output(self, text: str, timeout: float = 60.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.output():
                return True
            if self.proc.poll() is not None:
                return text in self.output()
            time.sleep(0.1)
        return False

    def stop(self, sig=None, timeout: float = 15.0) -> int:
        import signal
        if self.proc.poll() is None:
            self.proc.send_signal(sig or signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode


@pytest.fixture
def spawn(tmp_path):
    children = []

    def start(*args, env=None, name=None):
        child = Child(list(args), tmp_path / f"{name or 'child'}-{len(children)}.log", env=env)
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

    from fer_ros.checkpoint import ModelMeta, save_checkpoint
    from fer_ros.labels import FER7
    from fer_ros.model import build_model

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "small.safetensors"
    meta = ModelMeta(labels=list(FER7), arch={"variant": "mit_b0", "num_classes": 7}, input_size=64,
                     color="rgb", dataset="random-test-weights")
    save_checkpoint(path, build_model("mit_b0", num_classes=7).eval(), meta)
    return path
