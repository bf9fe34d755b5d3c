"""`fer-ros export`: the ONNX graph gives PyTorch's logits and carries the checkpoint's
metadata."""

import json

import numpy as np
import pytest
import torch

from fer_ros.cli import main
from fer_ros.labels import FER7
from fer_ros.model.checkpoint import ModelMeta, save_checkpoint
from fer_ros.model.export import export_onnx
from fer_ros.model.mit import build_model
from fer_ros.model.preprocess import Preprocess

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = build_model(num_classes=7).eval()
    meta = ModelMeta(
        labels=list(FER7), preprocess=Preprocess(input_size=64, color="gray"), dataset="test"
    )
    return model, save_checkpoint(tmp_path_factory.mktemp("ckpt") / "fer.safetensors", model, meta)


def test_cli_export_matches_pytorch_for_several_batch_sizes(checkpoint, capsys):
    model, path = checkpoint
    assert main(["export", str(path), "-o", str(path.with_name("out.onnx"))]) == 0
    assert "parity with PyTorch" in capsys.readouterr().out
    proto = onnx.load(str(path.with_name("out.onnx")))
    meta = json.loads({p.key: p.value for p in proto.metadata_props}["fer_ros"])
    assert meta["labels"] == list(FER7) and meta["color"] == "gray"
    session = ort.InferenceSession(
        str(path.with_name("out.onnx")), providers=["CPUExecutionProvider"]
    )
    for batch in (1, 3):
        x = torch.randn(batch, 3, 64, 64)
        with torch.no_grad():
            expected = model(x).numpy()
        got = session.run(None, {"input": x.numpy()})[0]
        np.testing.assert_allclose(got, expected, atol=1e-4, rtol=1e-4)


def test_static_batch_export(tmp_path):
    model = build_model(num_classes=8).eval()
    out = export_onnx(model, tmp_path / "s.onnx", 96, dynamic_batch=False)
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape == [1, 3, 96, 96]
    x = torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        np.testing.assert_allclose(
            session.run(None, {"input": x.numpy()})[0], model(x).numpy(), atol=1e-4, rtol=1e-4
        )


def test_export_fails_in_one_line_when_onnx_runtime_disagrees(checkpoint, monkeypatch, capsys):
    import fer_ros.model.export as export

    model, path = checkpoint
    monkeypatch.setattr(
        export, "parity", lambda *a, **k: 0.5
    )  # as if the runtime computed something else
    assert main(["export", str(path), "-o", str(path.with_name("bad.onnx"))]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert (
        len(err) == 1
        and "differ from PyTorch's by 5.00e-01" in err[0]
        and "not to be trusted" in err[0]
    )
