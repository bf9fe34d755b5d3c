"""Atomic writes: the old file survives a failed write, and a new file gets the usual
permissions."""

import os

import pytest

from fer_ros.atomic import atomic_file, atomic_write_text


def test_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "state.json"
    atomic_write_text("old", path)
    with pytest.raises(RuntimeError):
        with atomic_file(path) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed mid-write")
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["state.json"]


def test_permissions_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write_text("x", tmp_path / "shared.txt")
    finally:
        os.umask(old)
    assert (tmp_path / "shared.txt").stat().st_mode & 0o777 == 0o644


def test_a_writer_that_replaces_the_temporary_file_still_gets_the_usual_mode(tmp_path):
    # safetensors, torch.save and onnx.save write a new file over the temporary one.
    old = os.umask(0o022)
    try:
        with atomic_file(tmp_path / "replaced.bin") as tmp:
            tmp.unlink()
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT, 0o600)
            os.close(fd)
    finally:
        os.umask(old)
    assert (tmp_path / "replaced.bin").stat().st_mode & 0o777 == 0o644


def test_every_file_the_package_writes_is_readable_by_others(tmp_path, monkeypatch):
    """Checkpoints, training state and reports, ONNX exports (also the engine's cache), evaluation
    reports and bags: all 0644 (folders 0755) under umask 022, as a user's other files are."""
    from fer_ros.cli import main
    from fer_ros.inference.engine import Engine
    from fer_ros.training.config import load_config
    from fer_ros.training.train import train

    monkeypatch.setenv("FER_ROS_CACHE", str(tmp_path / "cache"))
    old = os.umask(0o022)
    try:
        cfg = load_config(
            "synthetic",
            {
                "data.input_size": 32,
                "data.synthetic_train": 14,
                "data.synthetic_val": 7,
                "data.synthetic_test": 7,
                "train.batch_size": 7,
                "train.epochs": 1,
                "train.threads": 1,
                "train.out_dir": str(tmp_path / "run"),
            },
        )
        train(cfg, progress=False)
        best = tmp_path / "run" / "best.safetensors"
        assert main(["export", str(best), "-o", str(tmp_path / "best.onnx")]) == 0
        Engine.from_checkpoint(best, device="cpu", backend="onnxruntime").close()
        assert (
            main(
                [
                    "evaluate",
                    str(best),
                    "--format",
                    "synthetic",
                    "--synthetic-n",
                    "7",
                    "--out",
                    str(tmp_path / "eval"),
                ]
            )
            == 0
        )
        assert main(["synth-bag", str(tmp_path / "bag"), "--frames", "3"]) == 0
        assert (
            main(
                [
                    "bag-eval",
                    str(tmp_path / "bag"),
                    "--checkpoint",
                    str(best),
                    "-p",
                    "detector:=none",
                    "--out",
                    str(tmp_path / "bag_eval"),
                ]
            )
            == 0
        )
    finally:
        os.umask(old)
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    kinds = {p.suffix for p in files}
    assert {".safetensors", ".pt", ".yaml", ".json", ".png", ".onnx", ".db3", ".csv"} <= kinds, (
        kinds
    )
    wrong = {
        str(p.relative_to(tmp_path)): oct(p.stat().st_mode & 0o777)
        for p in files
        if p.stat().st_mode & 0o777 != 0o644
    }
    assert not wrong
    wrong = {
        str(p.relative_to(tmp_path)): oct(p.stat().st_mode & 0o777)
        for p in tmp_path.rglob("*")
        if p.is_dir() and p.stat().st_mode & 0o777 != 0o755
    }
    assert not wrong


def test_a_temporary_left_by_a_killed_writer_is_removed_by_the_next_write(tmp_path):
    """SIGKILL mid-save leaves `.best.safetensors.<pid>-<random>.tmp` (no `except` runs); the next
    save of that file deletes it, and keeps a temporary whose writer still runs."""
    import signal
    import subprocess
    import sys
    import time

    path = tmp_path / "best.safetensors"
    writer = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                "import sys, time; from fer_ros.atomic import atomic_file\n"
                f"with atomic_file({str(path)!r}) as tmp:\n"
                "    tmp.write_bytes(b'half' * 1000); print('writing', flush=True); "
                "time.sleep(600)"
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert writer.stdout.readline().strip() == "writing"
    live = [p.name for p in tmp_path.iterdir()]
    assert len(live) == 1 and live[0].startswith(f".best.safetensors.{writer.pid}-"), live
    atomic_write_text("other", tmp_path / "other.txt")
    atomic_write_text("new", path)  # the writer is alive: its temporary stays
    assert (tmp_path / live[0]).exists()
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    assert (tmp_path / live[0]).exists()  # nothing cleaned up after a SIGKILL
    old_style = tmp_path / ".best.safetensors.k3j_x9q2.tmp"  # as fer_ros named them before: no pid
    young = tmp_path / ".best.safetensors.a1b2c3d4.tmp"
    old_style.write_bytes(b"x")
    young.write_bytes(b"x")
    os.utime(old_style, (time.time() - 7200, time.time() - 7200))
    unrelated = tmp_path / ".other.txt.12345-abc.tmp"
    unrelated.write_bytes(b"x")
    atomic_write_text("newer", path)
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted(["best.safetensors", "other.txt", young.name, unrelated.name]), left
    assert path.read_text() == "newer"


def test_bag_tools_force_replaces_an_earlier_bag_but_not_a_users_folder(
    tmp_path, monkeypatch, capsys
):
    from fer_ros.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["synth-bag", "bag", "--frames", "2"]) == 0
    assert main(["synth-bag", "bag", "--frames", "3", "--force"]) == 0  # an earlier bag: replaced
    capsys.readouterr()
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "holiday.jpg").write_bytes(b"a user's photo")
    for out in ("photos", ".", str(tmp_path.parent)):
        assert main(["synth-bag", out, "--frames", "2", "--force"]) == 2
        assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert (photos / "holiday.jpg").read_bytes() == b"a user's photo"
    assert (
        main(["bag-eval", "bag", "--out", "bag", "--force", "-p", "detector:=none"]) == 2
    )  # its input
    assert "is the input" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bag", "photos"]
