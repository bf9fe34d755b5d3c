"""`fer-ros video`: a clip of a real face (the astronaut, moved, scaled and tilted) through the
node's pipeline offline, the files it writes, --every/--start/--end, and what it does with bad
input."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import cv2
import pytest
from bounded import run_bounded
from hostile import YAML_ALIAS_BOMB

from fer_ros.cli import main as fer_ros
from fer_ros.video.clip import write_clip

FPS = 15.0
FRAMES = 40


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return write_clip(tmp_path_factory.mktemp("video") / "astronaut.avi", FRAMES, 320, 240, FPS)


def frame_count(path) -> int:
    capture = cv2.VideoCapture(str(path))
    count = 0
    while capture.read()[0]:
        count += 1
    capture.release()
    return count


def read_rows(path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_a_clip_becomes_a_table_a_video_a_plot_and_a_summary(clip, tmp_path, capsys):
    out = tmp_path / "out"
    assert fer_ros(["video", str(clip), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "frames/s" in printed and "face 1:" in printed and "happy" in printed
    summary = json.loads((out / "summary.json").read_text())
    labels = summary["labels"]

    rows = read_rows(out / "faces.csv")
    frames = sorted({int(r["frame"]) for r in rows})
    assert frames == list(range(FRAMES))  # every frame, with or without a face
    per_frame = {f: [r for r in rows if int(r["frame"]) == f] for f in frames}
    for f, own in per_frame.items():
        faces = int(own[0]["faces"])
        assert len(own) == max(1, faces)  # rows = frames x faces, plus one per frame with none
        assert float(own[0]["time_s"]) == pytest.approx(f / FPS, abs=1e-3)
        for r in own:
            if faces == 0:
                assert r["face_id"] == "" and r["label"] == "" and r["p_happy"] == ""
                continue
            probabilities = [float(r[f"p_{c}"]) for c in labels]
            assert sum(probabilities) == pytest.approx(1.0, abs=1e-3)
            assert r["label"] == labels[probabilities.index(max(probabilities))]
            assert int(r["width"]) > 0 and int(r["height"]) > 0
            assert r["too_small"] == "False"  # the clip's face is wider than min_classify_size
    empty = [f for f, own in per_frame.items() if own[0]["faces"] == "0"]
    assert 0 in empty and FRAMES - 1 in empty  # nobody at the start and the end of the clip
    with_face = [f for f in frames if f not in empty]
    assert len(with_face) >= 0.6 * FRAMES
    assert {per_frame[f][0]["face_id"] for f in with_face} == {
        "1"
    }  # one person, tracked throughout

    assert summary["frames"] == {
        "processed": FRAMES,
        "with_face": len(with_face),
        "no_face": len(empty),
    }
    assert summary["faces_seen"] == 1 and summary["faces"]["1"]["frames"] == len(with_face)
    assert sum(summary["faces"]["1"]["share"].values()) == pytest.approx(1.0, abs=1e-3)
    assert summary["frames_per_second"] > 0 and summary["note"] == ""
    assert frame_count(out / summary["outputs"]["video"]) == FRAMES
    assert (out / "timeline.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob("*.incomplete-*"))


def test_every_start_and_end_choose_the_frames(clip, tmp_path, capsys):
    out = tmp_path / "part"
    assert (
        fer_ros(
            [
                "video",
                str(clip),
                "--out",
                str(out),
                "--every",
                "3",
                "--start",
                "0.5",
                "--end",
                "2.0",
                "-p",
                "detector:=haar",
                "-p",
                "smoothing:=ema",
            ]
        )
        == 0
    )
    capsys.readouterr()
    rows = read_rows(out / "faces.csv")
    wanted = list(range(8, 30, 3))  # frames at 0.5 s (frame 8) up to 2.0 s (frame 30), every third
    assert sorted({int(r["frame"]) for r in rows}) == wanted
    summary = json.loads((out / "summary.json").read_text())
    assert summary["detector"] == "haar" and summary["options"]["params"] == {
        "detector": "haar",
        "smoothing": "ema",
    }
    assert frame_count(out / summary["outputs"]["video"]) == len(wanted)


def test_bad_input_is_one_line_exit_2_and_leaves_nothing(clip, tmp_path):
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 40)
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "mine.txt").write_text("a user's file")
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    cases = {
        "no video file": [str(tmp_path / "missing.mp4"), "--out", str(tmp_path / "o1")],
        "not a video OpenCV can read": [str(corrupt), "--out", str(tmp_path / "o2")],
        "already exists": [str(clip), "--out", str(taken)],
        "cannot create the output folder": [str(clip), "--out", str(blocker / "o3")],
        "unknown option": [str(clip), "--out", str(tmp_path / "o4"), "-p", "qos_depth:=1"],
        "no frame between": [str(clip), "--out", str(tmp_path / "o5"), "--start", "100"],
        "--every must be": [str(clip), "--out", str(tmp_path / "o6"), "--every", "0"],
    }
    if Path("/sys").is_dir():  # a folder even root cannot write: refused before the model loads
        cases["cannot write the output folder"] = [str(clip), "--out", "/sys/fer-ros-out"]
    for expected, args in cases.items():
        done = subprocess.run(
            [sys.executable, "-m", "fer_ros.cli", "video", *args],
            capture_output=True,
            text=True,
            timeout=300,
        )
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2, (expected, done.stderr)
        assert (
            len(lines) == 1
            and lines[0].startswith("fer-ros video: error: ")
            and expected in lines[0]
        ), (expected, done.stderr)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "blocker",
        "corrupt.mp4",
        "taken",
    ]  # nothing half-written
    assert (taken / "mine.txt").read_text() == "a user's file"


def test_nan_and_inf_are_one_line_exit_2_before_the_model_loads(clip, tmp_path, capsys):
    """argparse's float() takes nan and inf; YAML read -p 0.5 and .nan alike. Each once ended in a
    raw exception (exit 1), NaN smoothing in a faces.csv of NaN, NaN track_timeout in a new face
    id every frame."""
    finite = "must be a finite number"
    cases = {
        "--start must be a number of seconds, not nan": ["--start", "nan"],
        "--start must be a number of seconds, not inf": ["--start", "inf"],
        "--end must be a number of seconds, not nan": ["--end", "nan"],
        "--end must be a number of seconds, not inf": ["--end", "inf"],
        f"smoothing_alpha {finite} within 0.01..1, not nan": ["-p", "smoothing_alpha:=.nan"],
        f"track_timeout {finite} within 0..60, not nan": ["-p", "track_timeout:=.nan"],
        f"track_timeout {finite} within 0..60, not inf": ["-p", "track_timeout:=.inf"],
    }
    for expected, args in cases.items():
        assert fer_ros(["video", str(clip), "--out", str(tmp_path / "out"), *args]) == 2, expected
        err = capsys.readouterr().err.strip().splitlines()
        assert err == [f"fer-ros video: error: {expected}"], (expected, err)
    assert not list(tmp_path.iterdir())


def test_an_alias_bomb_in_a_parameter_is_refused_unexpanded(clip, tmp_path):
    """A 280-character -p once reached 2.7 GB and MemoryError (the error message's repr() walked
    its 387 million strings); here in a child that may use 1.5 GB and a minute."""
    done = run_bounded(f"""
        from fer_ros.cli import main
        sys.exit(main(["video", {str(clip)!r}, "--out", {str(tmp_path / "out")!r},
                       "-p", "detector:={YAML_ALIAS_BOMB}"]))
    """)
    assert done.returncode == 2, done
    assert done.stderr.strip() == (
        "fer-ros video: error: -p detector: YAML aliases (*name) are "
        "not accepted (line 1, column 29): write the value out"
    )
    assert not list(tmp_path.iterdir())


def test_force_replaces_only_an_earlier_output_never_a_users_files(
    clip, tmp_path, monkeypatch, capsys
):
    """--force may replace a folder that fer-ros video wrote, and nothing else: not the working
    folder, its parents, `/`, the input video or a folder holding it, nor a folder of a user's."""
    work = tmp_path / "work"
    work.mkdir()
    video = work / "clip.avi"
    video.write_bytes(clip.read_bytes())
    (work / "mine.txt").write_text("a user's file")
    monkeypatch.chdir(work)
    for out, why in (
        (".", "is the working folder"),
        ("..", "is a parent of the working folder"),
        ("/", "is the root folder"),
        ("clip.avi", "is the input"),
        (str(tmp_path), "is a parent of the working folder"),
    ):
        assert fer_ros(["video", "clip.avi", "--out", out, "--force", "--no-video"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and why in err[0], (out, err)
    assert sorted(p.name for p in work.iterdir()) == ["clip.avi", "mine.txt"]
    assert video.read_bytes() == clip.read_bytes()

    assert fer_ros(["video", "clip.avi", "--out", "res", "--no-video"]) == 0
    (work / "res" / "faces.csv").write_text("old")
    assert (
        fer_ros(["video", "clip.avi", "--out", "res", "--force", "--no-video"]) == 0
    )  # its own output
    assert (work / "res" / "faces.csv").read_text() != "old"
    (work / "res" / "notes.txt").write_text("the user's")
    assert fer_ros(["video", "clip.avi", "--out", "res", "--force", "--no-video"]) == 2
    assert "not an earlier output" in capsys.readouterr().err
    assert (work / "res" / "notes.txt").read_text() == "the user's"


@pytest.mark.parametrize("signame", ["SIGTERM", "SIGHUP"])
def test_sigterm_leaves_no_half_written_output_and_a_killed_runs_leftovers_go(
    clip, tmp_path, signame
):
    import signal
    import time

    sig = getattr(signal, signame)

    # Long enough that the run is still going when the signal comes, however fast the machine
    # (400 frames were done in 2.8 s on a quiet one).
    long_clip = write_clip(tmp_path / "long.avi", 4000, 320, 240, FPS)
    stale = tmp_path / "out.incomplete-999999999-abc"  # a run killed outright (no such pid)
    stale.mkdir()
    (stale / "annotated.mp4").write_bytes(b"half")
    run = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fer_ros.cli",
            "video",
            str(long_clip),
            "--out",
            str(tmp_path / "out"),
        ],
        stderr=subprocess.PIPE,
        text=True,
        # A run started under nohup inherits an ignored SIGHUP and keeps it (it should outlive a
        # hangup): the child starts from the default so that the test means the same everywhere.
        preexec_fn=lambda: signal.signal(sig, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(f"out.incomplete-{run.pid}-*")) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not stale.exists()  # the dead run's folder went when the new one started
    time.sleep(1.0)
    run.send_signal(sig)
    assert run.wait(timeout=60) == 128 + sig, run.stderr.read()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["long.avi"]
