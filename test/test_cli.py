"""`fer-ros`'s one error boundary: every sub-command, handed a missing file or a corrupt checkpoint
(or, where it reads neither, another bad input), says so in one line and exits with code 2."""

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from fer_ros.cli import COMMANDS

MISSING = "/nonexistent/fer_ros_test/missing"


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    (d / "corrupt.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all}")
    (d / "corrupt.pth").write_bytes(b"this is not a torch file")
    (d / "corrupt.db3").write_bytes(b"SQLite format 3\0" + bytes(range(256)) * 8)
    (d / "unreadable" / "happy").mkdir(parents=True)
    (d / "unreadable" / "happy" / "broken.jpg").write_bytes(b"not a jpeg")
    (d / "corrupt.avi").write_bytes(b"RIFF\x00\x10\x00\x00AVI LIST" + bytes(range(256)) * 64)
    (d / "taken").mkdir()
    (d / "taken" / "something").write_text("a user's file")
    fer_ros = [sys.executable, "-m", "fer_ros.cli"]
    subprocess.run([*fer_ros, "synth-bag", str(d / "bag"), "--frames", "2"], check=True, capture_output=True)
    return d


def cases(d: Path) -> dict[str, list[list[str]]]:
    """Bad invocations of each sub-command: a missing file first, then a corrupt one."""
    tiny = ["--set", "data.synthetic_train=14", "--set", "data.synthetic_val=7", "--set", "data.synthetic_test=7",
            "--out", str(d / "run")]
    corrupt = str(d / "corrupt.safetensors")
    return {
        "run": [["--checkpoint", MISSING + ".safetensors"], ["--checkpoint", corrupt]],
        "train": [["--config", "synthetic", "--pretrained", MISSING + ".pth", *tiny],
                  ["--config", "synthetic", "--pretrained", str(d / "corrupt.pth"), *tiny],
                  ["--config", MISSING + ".yaml"]],
        "evaluate": [[MISSING + ".safetensors", "--format", "synthetic"], [corrupt, "--format", "synthetic"]],
        "synth": [[str(d / "faces.csv"), "--labels", "affectnet8"]],
        "export": [[MISSING + ".safetensors"], [corrupt]],
        "bench": [["--checkpoint", MISSING + ".safetensors"], ["--checkpoint", corrupt]],
        "bag-eval": [[MISSING], [str(d / "bag"), "--checkpoint", corrupt, "--out", str(d / "eval")],
                     [str(d / "corrupt.db3")]],
        "bag-replay": [[MISSING], [str(d / "corrupt.db3")]],
        "record": [[str(d / "taken")]],  # an output folder that holds a user's files
        "synth-bag": [[str(d / "taken")]],
        "images-bag": [[MISSING, str(d / "images_bag1")], [str(d / "unreadable"), str(d / "images_bag2")]],
        "video": [[MISSING + ".mp4", "--out", str(d / "video1")], [str(d / "corrupt.avi"), "--out", str(d / "video2")]],
        "camera": [["--video", MISSING + ".mp4"], ["--video", str(d / "corrupt.avi")]],
        "demo": [["--checkpoint", MISSING + ".safetensors", "--out", str(d / "demo1")],
                 ["--checkpoint", corrupt, "--out", str(d / "demo2")]],
    }


def test_every_sub_command_has_bad_input_cases(inputs):
    assert set(cases(inputs)) == set(COMMANDS)


def test_bad_input_is_one_line_and_exit_code_2(inputs):
    runs = [(name, args) for name, arg_lists in cases(inputs).items() for args in arg_lists]

    def call(item):
        name, args = item
        return subprocess.run([sys.executable, "-m", "fer_ros.cli", name, *args], capture_output=True, text=True,
                              timeout=300)

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(call, runs))
    for (name, args), done in zip(runs, results):
        lines = done.stderr.strip().splitlines()
        where = f"fer-ros {name} {' '.join(args)}:\n{done.stderr}"
        assert done.returncode == 2, where
        assert len(lines) == 1 and lines[0].startswith(f"fer-ros {name}: error: "), where
        assert "Traceback" not in done.stdout + done.stderr, where
    assert (inputs / "taken" / "something").read_text() == "a user's file"


def test_a_failure_of_the_run_is_one_line_and_exit_code_1(tmp_path):
    # An output that cannot be written (a file stands where the folder must go) is not bad input.
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    done = subprocess.run([sys.executable, "-m", "fer_ros.cli", "synth", str(blocker / "faces"), "--num", "7",
                           "--val", "0", "--test", "0"], capture_output=True, text=True, timeout=300)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1, done.stderr
    assert lines[-1].startswith("fer-ros synth: error: ") and "FER_ROS_DEBUG=1" in lines[-1], done.stderr
    assert "Traceback" not in done.stderr
