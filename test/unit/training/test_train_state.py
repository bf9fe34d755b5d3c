"""The resumable training state (last_state.pt): its format stays what older runs wrote, so they
resume.

test/data/train_state_schema.json is the structure of a state written by the training code before
`fer_ros.training` was split into modules (issue 19): a 2-step synthetic run (`tiny` below, one
step per epoch, weight averaging on), every key in saved order with each tensor's dtype and shape.
torch's own optimizer fields (param_groups) follow the torch pinned in requirements.txt.
"""

import json
from pathlib import Path

import torch
from test_training import tiny

from fer_ros.training.runstate import STATE_FILE
from fer_ros.training.train import train

SCHEMA = Path(__file__).resolve().parents[2] / "data" / "train_state_schema.json"


def state_schema(obj, path: str = "") -> dict[str, str]:
    """A saved training state's structure, flat and in saved order: each tensor's path -> dtype and
    shape, each other value's path -> its type; a list or tuple of plain scalars is one entry."""
    if isinstance(obj, torch.Tensor):
        return {path: f"{str(obj.dtype).removeprefix('torch.')}{list(obj.shape)}"}
    if isinstance(obj, dict):
        out = {path: "dict"} if not obj else {}
        for k, v in obj.items():
            out |= state_schema(
                v, f"{path}/{k if isinstance(k, str) else f'<{type(k).__name__}>{k}'}"
            )
        return out
    if isinstance(obj, (list, tuple)):
        kinds = {type(v).__name__ for v in obj}
        if obj and kinds <= {"int", "float", "str", "bool"} and len(kinds) == 1:
            return {path: f"{type(obj).__name__}[{len(obj)}] of {kinds.pop()}"}
        out = {path: f"{type(obj).__name__}[{len(obj)}]"}
        for i, v in enumerate(obj):
            out |= state_schema(v, f"{path}/{i}")
        return out
    return {path: type(obj).__name__}


def test_the_state_keeps_the_format_older_runs_wrote_and_resumes(tmp_path):
    settings = {"train.steps_per_epoch": 1, "train.ema": 0.9}
    train(tiny(tmp_path, **settings), progress=False)
    # weights_only: a state file holds tensors and plain values, and loading it runs no pickled
    # code.
    state = torch.load(tmp_path / "run" / STATE_FILE, map_location="cpu", weights_only=True)
    expected = json.loads(SCHEMA.read_text())
    got = state_schema(state)
    assert [k for k in got if k not in expected] == [] and [
        k for k in expected if k not in got
    ] == []
    assert list(got.items()) == list(expected.items())
    train(tiny(tmp_path, **settings, **{"train.epochs": 3}), progress=False)  # resumes for epoch 3
    resumed = torch.load(tmp_path / "run" / STATE_FILE, map_location="cpu", weights_only=True)
    assert (resumed["epoch"], resumed["step"]) == (3, 3)
    assert [h["epoch"] for h in resumed["history"]] == [1, 2, 3]
