"""The inference engine on CPU (both back-ends): probabilities, preprocessing, batching, errors."""

import numpy as np
import pytest
import torch

from fer_ros.errors import ConfigError
from fer_ros.inference.engine import Engine
from fer_ros.labels import FER7
from fer_ros.model.checkpoint import ModelMeta, save_checkpoint
from fer_ros.model.mit import build_model
from fer_ros.model.preprocess import Preprocess, to_gray3

SIZE = 64


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("FER_ROS_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model(num_classes=7).eval()


def meta(color="rgb"):
    return ModelMeta(
        labels=list(FER7), preprocess=Preprocess(input_size=SIZE, color=color), dataset="test"
    )


@pytest.fixture(scope="module")
def crops():
    rng = np.random.default_rng(0)
    return [
        rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        for h, w in ((48, 48), (120, 90), (64, 64), (17, 203))
    ]


@pytest.fixture(scope="module", params=["torch", "onnxruntime"])
def engine(request, model, tmp_path_factory):
    if request.param == "onnxruntime":
        pytest.importorskip("onnxruntime")
    mp = pytest.MonkeyPatch()
    mp.setenv("FER_ROS_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
    eng = Engine(model, meta(), device="cpu", backend=request.param, threads=2)
    yield eng
    eng.close()
    mp.undo()


def test_probabilities_of_a_mixed_size_batch(engine, crops):
    probs = engine.predict(crops)
    assert probs.shape == (4, 7) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(1), 1, atol=1e-5)
    assert (probs >= 0).all()
    # Each crop's answer does not depend on its batch neighbours.
    np.testing.assert_allclose(engine.predict(crops[1:2])[0], probs[1], atol=1e-5)


def test_matches_the_model_on_preprocessed_input(engine, model, crops):
    x = Preprocess(SIZE, "rgb")(crops)
    with torch.no_grad():
        expected = model(x).softmax(1).numpy()
    np.testing.assert_allclose(engine.predict(crops), expected, atol=1e-5)
    np.testing.assert_allclose(engine.predict_tensor(x), expected, atol=1e-5)


def test_empty_batch(engine):
    assert engine.predict([]).shape == (0, 7)
    assert engine.predict_tensor(torch.zeros(0, 3, SIZE, SIZE)).shape == (0, 7)


def test_properties(engine, request):
    assert engine.labels == list(FER7)
    assert engine.device == "cpu"
    assert engine.backend == request.node.callspec.params["engine"]  # exactly the one asked for
    assert engine.model_id.startswith("unsaved@") and len(engine.model_id) == len("unsaved@") + 12
    assert engine.meta.preprocess.input_size == SIZE


def test_grey_model_sees_grey_faces(model, crops):
    """A "gray" checkpoint: a colour crop, its grey version (HxW) and the torch helper all
    agree."""
    eng = Engine(model, meta("gray"), device="cpu", backend="torch")
    grey = [np.asarray(Preprocess(SIZE, "gray").resize([c]))[0, :, :, 0] for c in crops[:2]]
    np.testing.assert_allclose(eng.predict(crops[:2]), eng.predict(grey), atol=1e-6)
    rgb = torch.from_numpy(Preprocess(SIZE, "rgb").resize(crops[:1])).permute(0, 3, 1, 2)
    from_torch = Preprocess(SIZE, "gray")  # normalise the torch-made grey exactly like crops
    x = to_gray3(rgb)
    from fer_ros.model.preprocess import normalize

    # The grey plane made on tensors (training's path) and on crops (the engine's) agree to the
    # rounding of one grey level, compared as the normalised inputs the model sees.
    np.testing.assert_allclose(
        normalize(x, from_torch.mean, from_torch.std).numpy(),
        Preprocess(SIZE, "gray")(crops[:1]).numpy(),
        rtol=0,
        atol=1.01 / 255 / min(from_torch.std),
    )
    # The same crop through an "rgb" model's preprocessing is a different input.
    assert not np.allclose(
        Engine(model, meta("rgb"), device="cpu", backend="torch").predict(crops[:1]),
        eng.predict(crops[:1]),
        atol=1e-4,
    )


def test_grey_crop_into_rgb_model_is_replicated():
    p = Preprocess(SIZE, "rgb")
    g = np.full((30, 40), 77, np.uint8)
    assert np.array_equal(p.resize([g]), p.resize([np.stack([g] * 3, -1)]))


def test_crops_may_be_views_of_a_frame(crops):
    p = Preprocess(SIZE, "rgb")
    frame = crops[1]
    view = frame[10:60, 5:70, ::-1]  # a region of a BGR frame, channel-reversed without a copy
    assert np.array_equal(p.resize([view]), p.resize([frame[10:60, 5:70, ::-1].copy()]))


def test_from_checkpoint_exports_once_per_checkpoint_into_the_cache(
    model, tmp_path, crops, monkeypatch
):
    import hashlib

    import fer_ros.model.export as export
    from fer_ros.model.checkpoint import file_sha256

    cache = tmp_path / "cache"
    monkeypatch.setenv("FER_ROS_CACHE", str(cache))
    path = save_checkpoint(tmp_path / "ckpt" / "fer.safetensors", model, meta())
    with Engine.from_checkpoint(path, device="auto", threads=1) as eng:
        assert (eng.model_id, eng.device, eng.backend) == (
            f"fer@{file_sha256(path)[:12]}",
            "cpu",
            "onnxruntime",
        )
        eng.warmup()
        probs = eng.predict(crops)
    np.testing.assert_allclose(probs.sum(1), 1, atol=1e-5)
    assert [p.name for p in path.parent.iterdir()] == [
        "fer.safetensors"
    ]  # nothing written beside it
    # One export, named by the checkpoint's sha256 (with the input size, opset, export and torch
    # versions).
    versions = f"{export.DEFAULT_OPSET}|{export.EXPORT_VERSION}|{torch.__version__}"
    key = f"{file_sha256(path)}|{SIZE}|{versions}"
    name = hashlib.sha256(key.encode()).hexdigest()[:24] + ".onnx"
    assert sorted(p.name for p in (cache / "onnx").iterdir()) == [
        name,
        name + ".json",
    ]  # + what it was built from
    # The second load reuses it: exporting again would fail here.
    monkeypatch.setattr(
        export, "export_onnx", lambda *a, **k: pytest.fail("exported a second time")
    )
    with Engine.from_checkpoint(path, device="cpu") as again:
        assert again.backend == "onnxruntime"
        np.testing.assert_allclose(again.predict(crops), probs, atol=1e-6)


@pytest.mark.parametrize(
    "damage", ["another model's export", "truncated to 1000 bytes", "no record"]
)
def test_a_damaged_onnx_cache_is_rebuilt_and_answers_as_the_model(
    model, tmp_path, crops, monkeypatch, caplog, damage
):
    """A cache file that is not the export it claims to be is rebuilt, with a warning, and the
    engine then answers exactly as the checkpoint's model does."""
    import logging

    from fer_ros.model.export import export_onnx

    cache = tmp_path / "cache"
    monkeypatch.setenv("FER_ROS_CACHE", str(cache))
    path = save_checkpoint(tmp_path / "ckpt" / "fer.safetensors", model, meta())
    with Engine.from_checkpoint(path, device="cpu", backend="onnxruntime", threads=1) as eng:
        eng.predict(crops)
    (onnx,) = (cache / "onnx").glob("*.onnx")
    if damage == "another model's export":
        torch.manual_seed(1)
        export_onnx(build_model(num_classes=7).eval(), onnx, SIZE)
    elif damage == "no record":  # a cache written by an older fer_ros, or a crash after the export
        onnx.with_name(onnx.name + ".json").unlink()
    else:
        onnx.write_bytes(onnx.read_bytes()[:1000])
    with caplog.at_level(logging.WARNING, logger="fer_ros.model.export"):
        with Engine.from_checkpoint(path, device="cpu", backend="onnxruntime", threads=1) as again:
            assert again.backend == "onnxruntime"
            probs = again.predict(crops)
    assert f"rebuilding the ONNX cache {onnx}" in caplog.text
    with Engine(model, meta(), device="cpu", backend="torch", threads=1) as reference:
        np.testing.assert_allclose(probs, reference.predict(crops), atol=1e-4)
    caplog.clear()
    with caplog.at_level(
        logging.WARNING, logger="fer_ros.model.export"
    ):  # rebuilt once: trusted from now on
        Engine.from_checkpoint(path, device="cpu", backend="onnxruntime", threads=1).close()
    assert "rebuilding" not in caplog.text


def test_onnx_runtime_computes_the_models_logits(model, tmp_path):
    from fer_ros.model.export import export_onnx, parity

    path = export_onnx(model, tmp_path / "m.onnx", SIZE)
    assert parity(model, path, SIZE, batch=3) < 1e-4  # logits, not probabilities squashed near 1/7


def test_bad_inputs_and_options(model):
    eng = Engine(model, meta(), device="cpu", backend="torch")
    with pytest.raises(ValueError, match="uint8"):
        eng.predict([np.zeros((10, 10, 3), np.float32)])
    with pytest.raises(ValueError, match="HxW"):
        eng.predict([np.zeros((10, 10, 4), np.uint8)])
    with pytest.raises(ValueError, match="precision"):
        Engine(model, meta(), device="cpu", precision="fp16")
    with pytest.raises(ValueError, match="device"):
        Engine(model, meta(), device="tpu")
    with pytest.raises(ValueError, match="labels"):
        Engine(build_model(num_classes=8), meta(), device="cpu")
    eng.close()
    with pytest.raises(RuntimeError, match="closed"):
        eng.predict([np.zeros((10, 10, 3), np.uint8)])


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised without a GPU")
def test_cuda_without_gpu_is_a_clear_error(model):
    with pytest.raises(ConfigError, match="CUDA is not available"):
        Engine(model, meta(), device="cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_cuda_matches_cpu(model, crops, precision):
    ref = Engine(model, meta(), device="cpu", backend="torch").predict(crops)
    with Engine(model, meta(), device="cuda", precision=precision, batch_sizes=(1, 4)) as eng:
        eng.warmup()
        for n in (1, 3, 4, 5, 8):  # padded, exact, and split across captured sizes
            np.testing.assert_allclose(
                eng.predict((crops * 2)[:n]), np.concatenate([ref, ref])[:n], atol=2e-2
            )


def test_bench_runs_and_writes_the_documented_json(tmp_path, capsys):
    import json

    from fer_ros.cli import main

    out = tmp_path / "bench.json"
    args = [
        "bench",
        "--device",
        "cpu",
        "--size",
        "64",
        "--batch",
        "2",
        "--sweep",
        "1,2",
        "--runs",
        "2",
        "--latency-runs",
        "2",
        "--sweep-runs",
        "2",
        "--warmup",
        "1",
        "--json",
        str(out),
    ]
    assert main(args) == 0
    report = json.loads(out.read_text())
    assert report["params"] == 3_452_519 and report["macs"] > 0
    names = {r["name"] for r in report["results"]}
    assert any("SegformerModel" in n for n in names) and any("fer_ros" in n for n in names)
    for row in report["results"]:
        assert {"name", "device", "batch", "mean_ms", "median_ms"} <= set(row) and row[
            "device"
        ] == "cpu"
    assert "median_ms" in capsys.readouterr().out


def test_cpu_falls_back_to_torch_without_onnxruntime(model, monkeypatch, crops):
    import fer_ros.inference.engine as engine_module

    monkeypatch.setattr(engine_module, "_has_onnxruntime", lambda: False)
    eng = Engine(model, meta(), device="cpu")
    assert eng.backend == "torch"
    assert eng.predict(crops[:1]).shape == (1, 7)
    with pytest.raises(ValueError, match="onnxruntime"):
        Engine(model, meta(), device="cpu", backend="onnxruntime")


def test_a_stored_temperature_changes_the_probabilities_not_the_answer(small_checkpoint, tmp_path):
    """Calibration lives in the checkpoint's metadata and is applied by the engine, on every
    backend."""
    import dataclasses

    from fer_ros.model.checkpoint import load_checkpoint, read_meta, save_checkpoint

    model, meta = load_checkpoint(small_checkpoint)
    hot = tmp_path / "hot.safetensors"
    save_checkpoint(hot, model, dataclasses.replace(meta, temperature=3.0))
    assert read_meta(hot).temperature == 3.0 and read_meta(small_checkpoint).temperature == 1.0
    crops = [
        np.random.default_rng(i).integers(0, 256, (64, 64, 3), dtype=np.uint8) for i in range(6)
    ]
    for backend in ("torch", "onnxruntime"):
        with (
            Engine.from_checkpoint(small_checkpoint, device="cpu", backend=backend) as plain,
            Engine.from_checkpoint(hot, device="cpu", backend=backend) as calibrated,
        ):
            p, q = plain.predict(crops), calibrated.predict(crops)
        assert np.array_equal(p.argmax(1), q.argmax(1)), backend
        assert np.allclose(q.sum(1), 1, atol=1e-5) and not np.allclose(p, q, atol=1e-4), backend
        assert (q.max(1) < p.max(1)).all(), backend  # T > 1 softens every answer
    with pytest.raises(ValueError, match="temperature"):
        dataclasses.replace(meta, temperature=0.0)
