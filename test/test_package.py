"""The package as users get it: package.xml, installed files, params file, launch file, commands."""

import ast
import importlib.metadata
import json
import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from fer_ros.ros.dds import profile_variable
from fer_ros.ros.params import PARAMS
from fer_ros.paths import share_dir

REPO = Path(__file__).resolve().parents[1]


def test_package_xml_declares_a_format3_interface_package():
    root = ET.parse(REPO / "package.xml").getroot()
    assert root.tag == "package" and root.get("format") == "3"
    assert root.findtext("name") == "fer_ros"
    depends = {e.text for e in root if e.tag in ("depend", "exec_depend")}
    assert {"rclpy", "sensor_msgs", "std_msgs", "diagnostic_msgs", "rosidl_default_runtime"} <= depends
    assert {e.text for e in root.findall("buildtool_depend")} >= {"ament_cmake", "rosidl_default_generators"}
    assert root.findtext("member_of_group") == "rosidl_interface_packages"
    assert root.find("export/build_type").text == "ament_cmake"
    installed = ET.parse(share_dir() / "package.xml").getroot()
    assert installed.findtext("version") == root.findtext("version")


def test_installed_share_files():
    share = share_dir()
    for name in ("config/fer.yaml", "config/fastdds_large_images.xml", "launch/fer.launch.py",
                 "msg/EmotionStamped.msg", "msg/EmotionArray.msg"):
        assert (share / name).is_file(), name
    bin_dir = Path(sys.executable).parent
    assert (bin_dir / "fer_node").is_file() and (bin_dir / "fer-ros").is_file()


def test_training_is_installed_under_fer_ros_not_top_level():
    import importlib.util

    import fer_ros.training
    assert Path(fer_ros.training.__file__).parent.parent.name == "fer_ros"
    spec = importlib.util.find_spec("training")
    assert spec is None or not Path(spec.origin or "").is_relative_to(Path(sys.prefix))


def test_params_file_sets_exactly_the_declared_parameters():
    params = yaml.safe_load((REPO / "config" / "fer.yaml").read_text())["/**/fer_node"]["ros__parameters"]
    assert set(params) == set(PARAMS), set(params) ^ set(PARAMS)
    for name, value in params.items():
        spec = PARAMS[name]
        assert type(value) is type(spec.default), f"{name}: {value!r} vs default {spec.default!r}"
        assert value == spec.default, f"{name}: the file and the node disagree on the default"
        if spec.choices:
            assert value in spec.choices
        if spec.low is not None:
            assert spec.low <= value <= spec.high


def test_readme_parameter_table_is_the_nodes_and_names_both_commands():
    """One row per parameter, in the node's order, with its default, description, range and whether
    it applies at configure: the table is what the node declares (tools/readme_params.py writes it)."""
    sys.path.insert(0, str(REPO / "tools"))
    from readme_params import HEAD, rows

    readme = (REPO / "README.md").read_text()
    assert readme[readme.index(HEAD) + len(HEAD):].split("\n\n", 1)[0].splitlines() == rows()
    assert "make demo" in readme and "make test" in readme
    assert "make test" in (REPO / ".ci" / "run").read_text()


def launch_tree():
    return ast.parse((REPO / "launch" / "fer.launch.py").read_text())


def test_launch_file_names_the_installed_executable_params_file_and_profile():
    tree = launch_tree()
    keywords = {k.arg: k.value for n in ast.walk(tree) if isinstance(n, ast.Call) for k in n.keywords}
    assert ast.literal_eval(keywords["package"]) == "fer_ros"
    assert ast.literal_eval(keywords["executable"]) == "fer_node"
    strings = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
    assert {"config", "fer.yaml"} <= strings
    assert (share_dir() / "config" / "fer.yaml").is_file()
    assert "generate_launch_description" in {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    # The profile and allocator rule is fer_ros.ros.dds's: the launch file asks it, restating nothing.
    called = {n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    assert {"large_image_env", "profile_variable", "SetEnvironmentVariable"} <= called and "GLIBC_TUNABLES" in strings
    assert not strings & {"fastdds_large_images.xml", "FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE"}
    from fer_ros.ros.dds import PROFILE, large_image_env, profile_variable
    assert large_image_env({})[profile_variable()] == str(share_dir() / "config" / PROFILE)


def test_launch_file_sets_only_declared_parameters():
    overrides = set()
    for node in ast.walk(launch_tree()):
        if isinstance(node, ast.Dict):
            overrides |= {ast.literal_eval(k) for k in node.keys if isinstance(k, ast.Constant)}
    assert overrides and overrides <= set(PARAMS)


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


def test_fer_ros_run_starts_the_node_with_a_params_file_and_stops_on_sigterm(ros, spawn, tmp_path,
                                                                               small_checkpoint):
    params = yaml.safe_load((REPO / "config" / "fer.yaml").read_text())
    params["/**/fer_node"]["ros__parameters"].update(detect_every=7, detector="none")
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(params))
    fer_ros = str(Path(sys.executable).parent / "fer-ros")
    node = spawn(fer_ros, "run", "--params-file", str(params_file), "--checkpoint", str(small_checkpoint),
                 "--image", "/pkg_test/camera", "--namespace", "pkg_test", name="fer_node")
    assert node.wait_for("listening on", timeout=60), node.output()
    assert "/pkg_test/camera" in node.output() and "/pkg_test/emotions" in node.output()
    values = list_node_parameters(ros, "pkg_test/fer_node")
    assert set(values) == set(PARAMS)
    assert values["detect_every"] == 7 and values["detector"] == "none"
    assert values["checkpoint"] == str(small_checkpoint)
    environ = Path(f"/proc/{node.proc.pid}/environ").read_bytes().split(b"\0")
    name = f"{profile_variable()}=".encode()  # the variable this Fast DDS reads (FASTRTPS_... on Jazzy)
    assert any(e.startswith(name) and e.endswith(b"fastdds_large_images.xml") for e in environ)
    assert node.stop(signal.SIGTERM) == 0, node.output()
    assert "Traceback" not in node.output()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_fer_node_exits_cleanly_on_signals(spawn, small_checkpoint, sig):
    node = spawn(str(Path(sys.executable).parent / "fer_node"), "--ros-args", "--params-file",
                 str(share_dir() / "config" / "fer.yaml"), "-p", f"checkpoint:={small_checkpoint}",
                 "-r", "__node:=signal_test", name="fer_node")
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
        "missing": (["checkpoint:=/nonexistent/model.safetensors"], "/nonexistent/model.safetensors"),
        "corrupt": ([f"checkpoint:={corrupt_checkpoint(tmp_path)}"], "corrupt"),
        "cuda_without_gpu": ([f"checkpoint:={small_checkpoint}", "device:=cuda"], "CUDA is not available"),
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
    node = start_node(spawn, f"checkpoint:={small_checkpoint}", "device:=cuda", "allow_cpu_fallback:=true")
    assert node.wait_for("listening on", timeout=60), node.output()
    assert "no GPU is available: running on the CPU" in node.output() and " on cpu " in node.output()


def test_print_env_exports_the_profile_and_the_allocator_setting():
    from fer_ros.ros.dds import GLIBC_TUNABLES

    from fer_ros.ros.dds import PROFILE_VARS, profile_variable

    # The variable this environment's Fast DDS reads: FASTDDS_... from Kilted on, FASTRTPS_... on Jazzy.
    wanted = PROFILE_VARS[0] if int(importlib.metadata.version("ros-rclpy").split(".")[0]) >= 9 else PROFILE_VARS[1]
    assert profile_variable() == wanted
    env = {k: v for k, v in os.environ.items() if k not in (*PROFILE_VARS, "GLIBC_TUNABLES", "ROS_DISTRO")}
    out = subprocess.run([str(Path(sys.executable).parent / "fer-ros"), "run", "--print-env"],
                         capture_output=True, text=True, check=True, env=env).stdout.splitlines()
    assert len(out) == 2 and out[1] == f"export GLIBC_TUNABLES={GLIBC_TUNABLES}"
    assert out[0].startswith(f"export {wanted}=") and out[0].endswith("fastdds_large_images.xml")
    assert os.path.isfile(out[0].split("=", 1)[1].strip("'"))
    # A profile the user chose, under either name, is kept, under the name that counts here.
    for name in PROFILE_VARS:
        mine = subprocess.run([str(Path(sys.executable).parent / "fer-ros"), "run", "--print-env"], capture_output=True,
                              text=True, check=True, env=dict(env, **{name: "/etc/my.xml"})).stdout
        assert f"export {wanted}=/etc/my.xml" in mine, mine
    # A sourced ROS install names its distribution: Jazzy is Fast DDS 2, Kilted Fast DDS 3.
    for distro, name in (("jazzy", PROFILE_VARS[1]), ("humble", PROFILE_VARS[1]), ("kilted", PROFILE_VARS[0])):
        out = subprocess.run([str(Path(sys.executable).parent / "fer-ros"), "run", "--print-env"], capture_output=True,
                             text=True, check=True, env=dict(env, ROS_DISTRO=distro)).stdout
        assert out.startswith(f"export {name}="), (distro, out)


def test_rclpy_is_imported_only_where_ros_starts():
    """The core (model, inference, training) never imports rclpy; only ros/ and the bag tools that
    talk DDS do. Checked on the source text and by importing the core with rclpy made unimportable."""
    offenders = []
    for path in sorted((REPO / "fer_ros").rglob("*.py")):
        text = path.read_text()
        if ("import rclpy" in text or "from rclpy" in text) and path.parent.name not in ("ros", "bags"):
            offenders.append(str(path.relative_to(REPO)))
    assert not offenders
    code = ("import sys\n"
            "class Block:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name == 'rclpy' or name.startswith('rclpy.'):\n"
            "            raise ImportError('rclpy is blocked in this test')\n"
            "sys.meta_path.insert(0, Block())\n"
            "import fer_ros.model.checkpoint, fer_ros.model.export, fer_ros.inference.pipeline\n"
            "import fer_ros.training.train, fer_ros.training.evaluate, fer_ros.tools.bench, fer_ros.cli\n"
            "import fer_ros.api, fer_ros.video.analyse, fer_ros.video.source, fer_ros.video.clip\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_imports_run_one_way():
    """Each folder of fer_ros imports only from the folders below it (base modules at the bottom)."""
    allowed = {
        "base": {"base"},
        "model": {"base", "model"},
        "inference": {"base", "model", "inference"},
        "api": {"base", "model", "inference", "api"},  # fer_ros/api.py: the Python door onto inference
        "video": {"base", "model", "inference", "api", "video"},
        "training": {"base", "model", "inference", "training"},
        "ros": {"base", "model", "inference", "video", "ros", "msg"},
        "bags": {"base", "model", "inference", "ros", "bags", "msg"},
        "tools": {"base", "model", "inference", "api", "video", "training", "ros", "bags", "tools", "msg"},
    }

    def layer(module: str) -> str:
        parts = module.split(".")
        return parts[1] if len(parts) > 2 or parts[1] in allowed or parts[1] == "msg" else "base"

    wrong = []
    for path in sorted((REPO / "fer_ros").rglob("*.py")):
        rel = path.relative_to(REPO).with_suffix("")
        own = layer(".".join(rel.parts))
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) and node.module else []
            for name in names:
                if name.startswith("fer_ros.") and layer(name) not in allowed[own]:
                    wrong.append(f"{rel}: {name}")
    assert not wrong


def _json_value(document, dotted: str):
    for part in dotted.split("."):
        document = document[int(part)] if isinstance(document, list) else document[part]
    return document


def test_readme_figures_are_the_committed_results_they_cite():
    """Every README table row whose last cell cites a committed file and key (`file.json` → `a.b`)
    states that file's number, as rounded in the table (percentages of fractions allowed)."""
    import re

    readme = (REPO / "README.md").read_text()
    cite = re.compile(r"`([\w./-]+\.json)`\s*→\s*`([\w.-]+)`")
    number = re.compile(r"-?\d[\d,]*(?:\.(\d+))?")
    checked = 0
    for line in readme.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")] if line.startswith("|") else []
        sources = cite.findall(cells[-1]) if cells else []
        if not sources:
            continue
        values = [m for cell in cells[1:-1] for m in number.finditer(cell)]
        assert len(values) == len(sources), f"one number per cited value: {line}"
        for (path, key), value in zip(sources, values):
            stated = float(value.group(0).replace(",", ""))
            actual = float(_json_value(json.loads((REPO / path).read_text()), key))
            if "%" in line and abs(actual) <= 1 and stated > 1:
                actual *= 100
            decimals = len(value.group(1) or "")
            assert abs(stated - actual) <= 0.5 * 10 ** -decimals + 1e-9, f"{line}: {path} {key} is {actual}"
            checked += 1
    assert checked >= 10, f"only {checked} figures cite their source"
