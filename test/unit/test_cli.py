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
    subprocess.run(
        [*fer_ros, "synth-bag", str(d / "bag"), "--frames", "2"], check=True, capture_output=True
    )
    return d


def cases(d: Path) -> dict[str, list[list[str]]]:
    """Bad invocations of each sub-command: a missing file first, then a corrupt one."""
    tiny = [
        "--set",
        "data.synthetic_train=14",
        "--set",
        "data.synthetic_val=7",
        "--set",
        "data.synthetic_test=7",
        "--out",
        str(d / "run"),
    ]
    corrupt = str(d / "corrupt.safetensors")
    return {
        "run": [["--checkpoint", MISSING + ".safetensors"], ["--checkpoint", corrupt]],
        "train": [
            ["--config", "synthetic", "--pretrained", MISSING + ".pth", *tiny],
            ["--config", "synthetic", "--pretrained", str(d / "corrupt.pth"), *tiny],
            ["--config", MISSING + ".yaml"],
        ],
        "evaluate": [
            [MISSING + ".safetensors", "--format", "synthetic"],
            [corrupt, "--format", "synthetic"],
        ],
        "synth": [[str(d / "faces.csv"), "--labels", "affectnet8"]],
        "export": [[MISSING + ".safetensors"], [corrupt]],
        "bench": [["--checkpoint", MISSING + ".safetensors"], ["--checkpoint", corrupt]],
        "bag-eval": [
            [MISSING],
            [str(d / "bag"), "--checkpoint", corrupt, "--out", str(d / "eval")],
            [str(d / "corrupt.db3")],
        ],
        "bag-replay": [[MISSING], [str(d / "corrupt.db3")]],
        "record": [[str(d / "taken")]],  # an output folder that holds a user's files
        "synth-bag": [[str(d / "taken")]],
        "images-bag": [
            [MISSING, str(d / "images_bag1")],
            [str(d / "unreadable"), str(d / "images_bag2")],
        ],
        "video": [
            [MISSING + ".mp4", "--out", str(d / "video1")],
            [str(d / "corrupt.avi"), "--out", str(d / "video2")],
        ],
        "camera": [["--video", MISSING + ".mp4"], ["--video", str(d / "corrupt.avi")]],
        "demo": [
            ["--checkpoint", MISSING + ".safetensors", "--out", str(d / "demo1")],
            ["--checkpoint", corrupt, "--out", str(d / "demo2")],
        ],
    }


def test_every_sub_command_has_bad_input_cases(inputs):
    assert set(cases(inputs)) == set(COMMANDS)


def test_bad_input_is_one_line_and_exit_code_2(inputs):
    runs = [(name, args) for name, arg_lists in cases(inputs).items() for args in arg_lists]

    def call(item):
        name, args = item
        return subprocess.run(
            [sys.executable, "-m", "fer_ros.cli", name, *args],
            capture_output=True,
            text=True,
            timeout=300,
        )

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
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "fer_ros.cli",
            "synth",
            str(blocker / "faces"),
            "--num",
            "7",
            "--val",
            "0",
            "--test",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1, done.stderr
    assert lines[-1].startswith("fer-ros synth: error: ") and "FER_ROS_DEBUG=1" in lines[-1], (
        done.stderr
    )
    assert "Traceback" not in done.stderr


def hostile_cases(d: Path, checkpoint: str) -> dict[str, list[str]]:
    """Inputs that used to end in a traceback, a half-written file or a silent no-op."""
    scratch = [
        "--set",
        "model.pretrained=none",
        "--set",
        "data.synthetic_train=14",
        "--set",
        "data.synthetic_val=7",
        "--set",
        "data.synthetic_test=7",
    ]
    return {
        "train --data <a file>": [
            "train",
            "--data",
            str(d / "a_file"),
            "--format",
            "fer2013_folder",
            *scratch,
            "--out",
            str(d / "new_run"),
        ],
        "train --out <a file>": [
            "train",
            "--config",
            "synthetic",
            *scratch,
            "--out",
            str(d / "a_file"),
        ],
        "evaluate --out <a file>": [
            "evaluate",
            checkpoint,
            "--format",
            "synthetic",
            "--synthetic-n",
            "7",
            "--out",
            str(d / "a_file"),
        ],
        "evaluate <a folder>": ["evaluate", str(d / "a_folder"), "--format", "synthetic"],
        "export -o <a folder>": ["export", checkpoint, "-o", str(d / "a_folder")],
        "synth <a file>": ["synth", str(d / "a_file"), "--num", "7", "--val", "0", "--test", "0"],
        "synth <a folder>.csv": ["synth", str(d / "a_folder.csv"), "--num", "7"],
        "synth -n -5": ["synth", str(d / "s.csv"), "-n", "-5"],
        "synth --size 0": ["synth", str(d / "faces"), "--size", "0"],
        "synth-bag --size 0": ["synth-bag", str(d / "bag0"), "--size", "0", "--frames", "2"],
        "synth-bag huge scene": [
            "synth-bag",
            str(d / "bag1"),
            "--scene",
            "--width",
            "100000",
            "--height",
            "100000",
            "--frames",
            "2",
        ],
        "record --duration -1": ["record", str(d / "rec"), "--duration", "-1"],
        "bag-eval <a folder> checkpoint": [
            "bag-eval",
            str(d / "bag"),
            "--checkpoint",
            str(d / "a_folder"),
            "--out",
            str(d / "eval"),
        ],
    }


def test_hostile_arguments_are_one_line_exit_2_and_leave_nothing(
    inputs, tmp_path, small_checkpoint
):
    d = tmp_path
    (d / "a_file").write_text("a user's file")
    (d / "a_folder").mkdir()
    (d / "a_folder.csv").mkdir()
    (d / "bag").symlink_to(inputs / "bag")
    before = sorted(p.relative_to(d) for p in d.rglob("*"))
    runs = hostile_cases(d, str(small_checkpoint))

    def call(args):
        return subprocess.run(
            [sys.executable, "-m", "fer_ros.cli", *args],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=d,
        )

    with ThreadPoolExecutor(4) as pool:
        results = dict(zip(runs, pool.map(call, runs.values())))
    for name, done in results.items():
        lines = done.stderr.strip().splitlines()
        where = f"{name}: {' '.join(runs[name])}\n{done.stderr}"
        assert done.returncode == 2, where
        assert lines and lines[-1].startswith(f"fer-ros {runs[name][0]}: error: "), where
        assert len([line for line in lines if "rebuilding the ONNX cache" not in line]) == 1, where
        assert "Traceback" not in done.stdout + done.stderr, where
    assert "is a folder, not a file" in results["evaluate <a folder>"].stderr  # not "not found"
    assert (
        sorted(p.relative_to(d) for p in d.rglob("*")) == before
    )  # nothing created, nothing half-written
    assert (d / "a_file").read_text() == "a user's file"


def test_demo_never_deletes_a_folder_it_did_not_write(tmp_path):
    """A bag-eval output (it has a report.json too) with a user's file in it: refused, all kept."""
    out = tmp_path / "bag_fer"
    (out / "emotions").mkdir(parents=True)
    for name in ("report.json", "frames.csv", "timeline.png", "my_notes.txt"):
        (out / name).write_text(name)
    done = subprocess.run(
        [sys.executable, "-m", "fer_ros.cli", "demo", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2, done.stderr
    assert (
        done.stderr.strip().startswith("fer-ros demo: error: ")
        and "nothing was deleted" in done.stderr
    )
    assert "frames.csv" in done.stderr and "my_notes.txt" in done.stderr
    assert sorted(p.name for p in out.iterdir()) == [
        "emotions",
        "frames.csv",
        "my_notes.txt",
        "report.json",
        "timeline.png",
    ]
    assert (out / "my_notes.txt").read_text() == "my_notes.txt"
