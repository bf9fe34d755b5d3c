"""Multi-process training with torchrun: two CPU processes over the gloo backend."""

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from fer_ros.training.runstate import STATE_FILE


def test_torchrun_two_processes_train_and_export(tmp_path):
    out = tmp_path / "ddp"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join(sys.path))
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
        "-m",
        "fer_ros.training.train",
        "--config",
        "synthetic",
        "--out",
        str(out),
        "--no-progress",
        "--epochs",
        "2",
        "--batch-size",
        "8",
        "--set",
        "data.input_size=32",
        "--set",
        "data.synthetic_train=60",
        "--set",
        "data.synthetic_val=15",
        "--set",
        "data.synthetic_test=15",
        "--set",
        "optim.warmup_steps=0",
        "--set",
        "train.threads=1",
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "on cpu x2" in proc.stdout and "batch 16" in proc.stdout  # 2 processes x 8
    summary = json.loads((out / "summary.json").read_text())
    assert (
        summary["epochs_run"] == 2 and summary["test"]["samples"] == 15
    )  # each test image scored once
    state = torch.load(out / STATE_FILE, weights_only=True)
    # 60 images / 2 processes / batch 8 -> 4 steps per epoch on each process.
    assert state["step"] == 8 and Path(out / "best.safetensors").exists()
