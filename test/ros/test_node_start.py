"""Starting and stopping fer_node as a process: a params file, signals, start-up errors in one
line."""

import signal
import sys
from pathlib import Path

import pytest
import yaml

from fer_ros.paths import share_dir
from fer_ros.ros.dds import profile_variable
from fer_ros.ros.params import PARAMS

REPO = Path(__file__).resolve().parents[2]


def list_node_parameters(ros, node_name: str, timeout: float = 30.0) -> dict:
    from rcl_interfaces.srv import GetParameters, ListParameters
    from rclpy.parameter import parameter_value_to_python

    node = ros.create_node("param_reader")
    try:
        lister = node.create_client(ListParameters, f"/{node_name}/list_parameters")
        getter = node.create_client(GetParameters, f"/{node_name}/get_parameters")
        assert lister.wait_for_service(timeout) and getter.wait_for_service(timeout)
        future = lister.call_async(ListParameters.Request())
        ros.spin_until_future_complete(node, future, timeout_sec=timeout)
        names = [n for n in future.result().result.names if n in PARAMS]
        future = getter.call_async(GetParameters.Request(names=names))
        ros.spin_until_future_complete(node, future, timeout_sec=timeout)
        return {n: parameter_value_to_python(v) for n, v in zip(names, future.result().values)}
    finally:
        node.destroy_node()


def test_fer_ros_run_starts_the_node_with_a_params_file_and_stops_on_sigterm(
    ros, spawn, tmp_path, small_checkpoint
):
    params = yaml.safe_load((REPO / "config" / "fer.yaml").read_text())
    params["/**/fer_node"]["ros__parameters"].update(detect_every=7, detector="none")
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(params))
    fer_ros = str(Path(sys.executable).parent / "fer-ros")
    node = spawn(
        fer_ros,
        "run",
        "--params-file",
        str(params_file),
        "--checkpoint",
        str(small_checkpoint),
        "--image",
        "/pkg_test/camera",
        "--namespace",
        "pkg_test",
        name="fer_node",
    )
    assert node.wait_for("listening on", timeout=60), node.output()
    assert "/pkg_test/camera" in node.output() and "/pkg_test/emotions" in node.output()
    values = list_node_parameters(ros, "pkg_test/fer_node")
    assert set(values) == set(PARAMS)
    assert values["detect_every"] == 7 and values["detector"] == "none"
    assert values["checkpoint"] == str(small_checkpoint)
    environ = Path(f"/proc/{node.proc.pid}/environ").read_bytes().split(b"\0")
    name = (
        f"{profile_variable()}=".encode()
    )  # the variable this Fast DDS reads (FASTRTPS_... on Jazzy)
    assert any(e.startswith(name) and e.endswith(b"fastdds_large_images.xml") for e in environ)
    assert node.stop(signal.SIGTERM) == 0, node.output()
    assert "Traceback" not in node.output()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_fer_node_exits_cleanly_on_signals(spawn, small_checkpoint, sig):
    node = spawn(
        str(Path(sys.executable).parent / "fer_node"),
        "--ros-args",
        "--params-file",
        str(share_dir() / "config" / "fer.yaml"),
        "-p",
        f"checkpoint:={small_checkpoint}",
        "-r",
        "__node:=signal_test",
        name="fer_node",
    )
    assert node.wait_for("listening on", timeout=60), node.output()
    assert node.stop(sig) == 0, node.output()
    assert "Traceback" not in node.output()


def start_node(spawn, *params, name="start_test"):
    args = [str(Path(sys.executable).parent / "fer_node"), "--ros-args", "-r", f"__node:={name}"]
    for p in params:
        args += ["-p", p]
    return spawn(*args, name="fer_node")


def corrupt_checkpoint(tmp_path) -> str:
    path = tmp_path / "corrupt.safetensors"
    path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    return str(path)


@pytest.mark.parametrize("case", ["missing", "corrupt", "cuda_without_gpu"])
def test_start_up_errors_are_one_clear_line_and_exit_1(spawn, tmp_path, small_checkpoint, case):
    import torch

    if case == "cuda_without_gpu" and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    params, expected = {
        "missing": (
            ["checkpoint:=/nonexistent/model.safetensors"],
            "/nonexistent/model.safetensors",
        ),
        "corrupt": ([f"checkpoint:={corrupt_checkpoint(tmp_path)}"], "corrupt"),
        "cuda_without_gpu": (
            [f"checkpoint:={small_checkpoint}", "device:=cuda"],
            "CUDA is not available",
        ),
    }[case]
    node = start_node(spawn, *params)
    node.proc.wait(60)
    output = node.output()
    assert node.proc.returncode == 1, output
    assert "Traceback" not in output
    errors = [line for line in output.splitlines() if "ERROR" in line]
    assert len(errors) == 1 and expected in errors[0], output


def test_cuda_with_cpu_fallback_runs_on_the_cpu_and_says_so(spawn, small_checkpoint):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    node = start_node(
        spawn, f"checkpoint:={small_checkpoint}", "device:=cuda", "allow_cpu_fallback:=true"
    )
    assert node.wait_for("listening on", timeout=60), node.output()
    assert (
        "no GPU is available: running on the CPU" in node.output() and " on cpu " in node.output()
    )
