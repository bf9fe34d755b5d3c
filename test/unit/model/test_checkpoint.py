"""The safetensors checkpoint: round trips, and one clear error for each way a file can be unusable."""

import pytest
import torch

from fer_ros.model.checkpoint import (
    CheckpointError,
    ModelMeta,
    checkpoint_id,
    load_checkpoint,
    read_meta,
    save_checkpoint,
)
from fer_ros.labels import FER7
from fer_ros.model.mit import build_model
from fer_ros.model.preprocess import Preprocess


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model("mit_b0", num_classes=7).eval()


def make_meta(**kw):
    base = dict(labels=list(FER7), preprocess=Preprocess(64, "gray", (0.5,) * 3, (0.25,) * 3),
                dataset="fer2013", train_config={"lr": 2e-4}, metrics={"val_acc": 0.5})  # fmt: skip
    return ModelMeta(**(base | kw))


def test_round_trip_keeps_weights_and_metadata(model, tmp_path):
    path = save_checkpoint(tmp_path / "m.safetensors", model, make_meta())
    loaded, meta = load_checkpoint(path)
    assert not loaded.training
    assert list(model.state_dict()) == list(loaded.state_dict())
    for (k, a), b in zip(model.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(a, b), k
    assert meta == read_meta(path) == make_meta(created=meta.created)
    assert meta.arch == {"variant": "mit_b0", "num_classes": 7}
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
    assert not list(tmp_path.glob("*.tmp"))  # atomic write leaves no temp file


def test_fp16_is_half_the_size_and_close(model, tmp_path):
    full = save_checkpoint(tmp_path / "full.safetensors", model, make_meta())
    half = save_checkpoint(tmp_path / "half.safetensors", model, make_meta(), dtype=torch.float16)
    assert half.stat().st_size < 0.55 * full.stat().st_size
    loaded, _ = load_checkpoint(half)
    assert next(loaded.parameters()).dtype == torch.float32
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x).softmax(1), model(x).softmax(1), atol=2e-3, rtol=0)


def test_arch_overrides_are_rebuilt(tmp_path):
    model = build_model("mit_b0", num_classes=8, drop_rate=0.1)
    meta = make_meta(labels=list(FER7) + ["contempt"], arch={"variant": "mit_b0", "drop_rate": 0.1})
    loaded, meta = load_checkpoint(save_checkpoint(tmp_path / "m8.safetensors", model, meta))
    assert loaded.num_classes == 8 and loaded.head_drop.p == 0.1


def test_checkpoint_id_is_the_file_name_and_its_sha256_prefix(model, tmp_path):
    import hashlib

    a = save_checkpoint(tmp_path / "a.safetensors", model, make_meta(created="x"))
    b = save_checkpoint(tmp_path / "b.safetensors", model, make_meta(created="x"))
    assert checkpoint_id(a) == "a@" + hashlib.sha256(a.read_bytes()).hexdigest()[:12]
    assert checkpoint_id(a).split("@")[1] == checkpoint_id(b).split("@")[1]  # same content, same id
    other = build_model("mit_b0", num_classes=7)
    with torch.no_grad():
        other.load_state_dict(model.state_dict())
        other.head.bias[0] += 1e-3  # one weight differs
    c = save_checkpoint(tmp_path / "a2.safetensors", other, make_meta(created="x"))
    assert checkpoint_id(c).split("@")[1] != checkpoint_id(a).split("@")[1]


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "nope.safetensors")


def test_corrupt_and_truncated_files(model, tmp_path):
    (tmp_path / "junk.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(tmp_path / "junk.safetensors")
    good = save_checkpoint(tmp_path / "good.safetensors", model, make_meta()).read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(good[: len(good) // 2])
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(tmp_path / "cut.safetensors")


def test_plain_safetensors_is_not_a_checkpoint(tmp_path):
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(2)}, str(tmp_path / "plain.safetensors"))
    with pytest.raises(CheckpointError, match="not a fer_ros checkpoint"):
        load_checkpoint(tmp_path / "plain.safetensors")


def test_wrong_class_count(model, tmp_path):
    with pytest.raises(ValueError, match="wrong class count"):
        make_meta(labels=["a", "b"], arch={"variant": "mit_b0", "num_classes": 7})
    with pytest.raises(CheckpointError, match="wrong class count"):
        save_checkpoint(tmp_path / "x.safetensors", model, make_meta(labels=list(FER7) + ["contempt"]))
    # A file whose metadata was edited to 8 labels while the weights have 7 outputs.
    from safetensors.torch import save_file

    bad = make_meta(labels=list(FER7) + ["contempt"])
    save_file(model.state_dict(), str(tmp_path / "edited.safetensors"), metadata={"fer_ros": bad.to_json()})
    with pytest.raises(CheckpointError, match="wrong class count"):
        load_checkpoint(tmp_path / "edited.safetensors")


def test_arch_mismatch(model, tmp_path):
    from safetensors.torch import save_file

    meta = make_meta(arch={"variant": "mit_b1"})
    with pytest.raises(CheckpointError, match="do not match the architecture"):
        save_checkpoint(tmp_path / "x.safetensors", model, meta)
    save_file(model.state_dict(), str(tmp_path / "b1.safetensors"), metadata={"fer_ros": meta.to_json()})
    with pytest.raises(CheckpointError, match="do not match the architecture"):
        load_checkpoint(tmp_path / "b1.safetensors")


def test_pickle_bearing_file_is_never_executed(tmp_path):
    marker = tmp_path / "executed"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    for name, protocol in (("evil.pt", None), ("evil.safetensors", 2)):
        path = tmp_path / name
        if protocol is None:
            torch.save({"x": Evil()}, path)  # zip container
        else:
            import pickle

            path.write_bytes(pickle.dumps(Evil(), protocol=protocol))  # raw pickle, misleading name
        with pytest.raises(CheckpointError, match="pickled torch file"):
            load_checkpoint(path)
        with pytest.raises(CheckpointError):
            read_meta(path)
    assert not marker.exists()
