"""The installed package: package.xml, share files, the params file and launch file against the
declared parameters, and the environment `fer-ros print-env` exports."""

import ast
import importlib.metadata
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import yaml

from fer_ros.paths import share_dir
from fer_ros.ros.dds import profile_variable
from fer_ros.ros.params import PARAMS

REPO = Path(__file__).resolve().parents[2]


def test_package_xml_declares_a_format3_interface_package():
    root = ET.parse(REPO / "package.xml").getroot()
    assert root.tag == "package" and root.get("format") == "3"
    assert root.findtext("name") == "fer_ros"
    depends = {e.text for e in root if e.tag in ("depend", "exec_depend")}
    assert {
        "rclpy",
        "sensor_msgs",
        "std_msgs",
        "diagnostic_msgs",
        "rosidl_default_runtime",
    } <= depends
    assert {e.text for e in root.findall("buildtool_depend")} >= {
        "ament_cmake",
        "rosidl_default_generators",
    }
    assert root.findtext("member_of_group") == "rosidl_interface_packages"
    assert root.find("export/build_type").text == "ament_cmake"
    installed = ET.parse(share_dir() / "package.xml").getroot()
    assert installed.findtext("version") == root.findtext("version")


def test_installed_share_files():
    share = share_dir()
    for name in (
        "config/fer.yaml",
        "config/fastdds_large_images.xml",
        "launch/fer.launch.py",
        "msg/EmotionStamped.msg",
        "msg/EmotionArray.msg",
    ):
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
    params = yaml.safe_load((REPO / "config" / "fer.yaml").read_text())["/**/fer_node"][
        "ros__parameters"
    ]
    assert set(params) == set(PARAMS), set(params) ^ set(PARAMS)
    for name, value in params.items():
        spec = PARAMS[name]
        assert type(value) is type(spec.default), f"{name}: {value!r} vs default {spec.default!r}"
        assert value == spec.default, f"{name}: the file and the node disagree on the default"
        if spec.choices:
            assert value in spec.choices
        if spec.low is not None:
            assert spec.low <= value <= spec.high


def launch_tree():
    return ast.parse((REPO / "launch" / "fer.launch.py").read_text())


def test_launch_file_names_the_installed_executable_params_file_and_profile():
    tree = launch_tree()
    keywords = {
        k.arg: k.value for n in ast.walk(tree) if isinstance(n, ast.Call) for k in n.keywords
    }
    assert ast.literal_eval(keywords["package"]) == "fer_ros"
    assert ast.literal_eval(keywords["executable"]) == "fer_node"
    strings = {
        n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)
    }
    assert {"config", "fer.yaml"} <= strings
    assert (share_dir() / "config" / "fer.yaml").is_file()
    assert "generate_launch_description" in {
        n.name for n in tree.body if isinstance(n, ast.FunctionDef)
    }
    # The profile and allocator rule is fer_ros.ros.dds's: the launch file asks it, restating
    # nothing.
    called = {
        n.func.id
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
    }
    assert {
        "large_image_env",
        "profile_variable",
        "SetEnvironmentVariable",
    } <= called and "GLIBC_TUNABLES" in strings
    assert not strings & {
        "fastdds_large_images.xml",
        "FASTDDS_DEFAULT_PROFILES_FILE",
        "FASTRTPS_DEFAULT_PROFILES_FILE",
    }
    from fer_ros.ros.dds import PROFILE, large_image_env

    assert large_image_env({})[profile_variable()] == str(share_dir() / "config" / PROFILE)


def test_launch_file_sets_only_declared_parameters():
    overrides = set()
    for node in ast.walk(launch_tree()):
        if isinstance(node, ast.Dict):
            overrides |= {ast.literal_eval(k) for k in node.keys if isinstance(k, ast.Constant)}
    assert overrides and overrides <= set(PARAMS)


def test_print_env_exports_the_profile_and_the_allocator_setting():
    from fer_ros.ros.dds import GLIBC_TUNABLES, PROFILE_VARS

    # The variable this environment's Fast DDS reads: FASTDDS_... from Kilted on, FASTRTPS_... on
    # Jazzy.
    wanted = (
        PROFILE_VARS[0]
        if int(importlib.metadata.version("ros-rclpy").split(".")[0]) >= 9
        else PROFILE_VARS[1]
    )
    assert profile_variable() == wanted
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in (*PROFILE_VARS, "GLIBC_TUNABLES", "ROS_DISTRO")
    }
    out = subprocess.run(
        [str(Path(sys.executable).parent / "fer-ros"), "run", "--print-env"],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    ).stdout.splitlines()
    assert len(out) == 2 and out[1] == f"export GLIBC_TUNABLES={GLIBC_TUNABLES}"
    assert out[0].startswith(f"export {wanted}=") and out[0].endswith("fastdds_large_images.xml")
    assert os.path.isfile(out[0].split("=", 1)[1].strip("'"))
    # A profile the user chose, under either name, is kept, under the name that counts here.
    for name in PROFILE_VARS:
        mine = subprocess.run(
            [str(Path(sys.executable).parent / "fer-ros"), "run", "--print-env"],
            capture_output=True,
            text=True,
            check=True,
            env=dict(env, **{name: "/etc/my.xml"}),
        ).stdout
        assert f"export {wanted}=/etc/my.xml" in mine, mine
    # A sourced ROS install names its distribution: Jazzy is Fast DDS 2, Kilted Fast DDS 3.
    for distro, name in (
        ("jazzy", PROFILE_VARS[1]),
        ("humble", PROFILE_VARS[1]),
        ("kilted", PROFILE_VARS[0]),
    ):
        out = subprocess.run(
            [str(Path(sys.executable).parent / "fer-ros"), "run", "--print-env"],
            capture_output=True,
            text=True,
            check=True,
            env=dict(env, ROS_DISTRO=distro),
        ).stdout
        assert out.startswith(f"export {name}="), (distro, out)
