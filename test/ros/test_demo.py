"""`fer-ros demo`, shortened: the whole live chain with the committed demo checkpoint, and
agreement with the offline evaluator."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fer_ros.cli import main as fer_ros
from fer_ros.paths import share_dir
from fer_ros.tools.demo import DEMO_CHECKPOINT

FER_ROS = str(Path(sys.executable).parent / "fer-ros")


def test_demo_runs_end_to_end_and_agrees_with_bag_eval(tmp_path):
    out = tmp_path / "demo"
    checkpoint = share_dir() / DEMO_CHECKPOINT
    assert checkpoint.is_file(), (
        "the demo checkpoint is committed under models/ and installed with the package"
    )
    # Reliable image QoS, a mailbox that holds every frame and half speed (15 Hz): on a busy
    # 2-core machine no frame may be lost.
    demo = subprocess.run(
        [
            FER_ROS,
            "demo",
            "--frames",
            "45",
            "--rate",
            "0.5",
            "--out",
            str(out),
            "-p",
            "qos_reliability:=reliable",
            "-p",
            "qos_depth:=45",
            "--clip-frames",
            "30",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert demo.returncode == 0, demo.stdout + demo.stderr
    lines = demo.stdout.splitlines()
    assert [line.split("]")[0] for line in lines if line.startswith("[")] == [
        "[1/6",
        "[2/6",
        "[3/6",
        "[4/6",
        "[5/6",
        "[6/6",
    ]
    live = [line for line in lines if "latency" in line and " truth " in line]
    assert len(live) == 45  # one printed line per result, as it arrived
    assert (
        "accuracy:" in demo.stdout
        and "end_to_end ms" in demo.stdout
        and "timeline.png" in demo.stdout
    )

    # Step 6: the shipped real model reads the astronaut in a clip, through fer-ros video.
    real = json.loads((out / "astronaut_fer" / "summary.json").read_text())
    assert real["model"].startswith("fer2013_mit_b0_64@") and real["frames"]["processed"] == 30
    assert (
        real["faces_seen"] >= 1 and real["frames"]["no_face"] >= 2 and real["faces"]["1"]["share"]
    )
    assert "face 1:" in demo.stdout and "astronaut_fer" in demo.stdout
    for name in ("astronaut.avi", "astronaut_fer/faces.csv", "astronaut_fer/timeline.png"):
        assert (out / name).is_file(), name
    assert not (out / "INCOMPLETE").exists()
    for name in (
        "report.json",
        "timeline.png",
        "confusion.png",
        "confusion.json",
        "node.log",
        "recorder.log",
        "synthetic/metadata.yaml",
        "recorded/metadata.yaml",
    ):
        assert (out / name).is_file(), name
    report = json.loads((out / "report.json").read_text())
    assert report["frames"] == {"total": 45, "processed": 45, "dropped": 0, "with_face": 45}
    assert report["accuracy"]["samples"] == 45
    assert report["accuracy"]["accuracy"] >= 0.9  # the bar for the demo checkpoint
    assert report["checkpoint"] == str(checkpoint)
    for name in ("end_to_end", "node"):
        stats = report["latency_ms"][name]
        assert (
            stats["count"] == 45
            and 0 < stats["p50"] <= stats["p95"] <= stats["p99"] <= stats["max"]
        )
    assert report["latency_ms"]["node"]["p50"] <= report["latency_ms"]["end_to_end"]["p50"]

    # The live node and the offline evaluator run one pipeline: same frames, same answers.
    evaluated = tmp_path / "eval"
    assert (
        fer_ros(
            [
                "bag-eval",
                str(out / "synthetic"),
                "--out",
                str(evaluated),
                "--checkpoint",
                str(checkpoint),
                "-p",
                "detector:=none",
            ]
        )
        == 0
    )
    offline = json.loads((evaluated / "report.json").read_text())
    assert offline["predicted_counts"] == report["predicted_counts"]
    assert offline["accuracy"]["accuracy"] == pytest.approx(report["accuracy"]["accuracy"])


def test_demo_without_its_checkpoint_says_how_to_get_one(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("fer_ros.tools.demo.DEMO_CHECKPOINT", "models/not_there.safetensors")
    assert fer_ros(["demo", "--out", str(tmp_path / "demo")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "models/not_there.safetensors" in err[0] and "fer-ros train" in err[0]
    assert not (tmp_path / "demo").exists()
