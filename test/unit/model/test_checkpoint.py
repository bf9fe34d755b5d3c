"""The safetensors checkpoint: round trips, and one clear error for each way a file can be
unusable."""

import pytest
import torch
from bounded import run_bounded

from fer_ros.labels import FER7
from fer_ros.model.checkpoint import (
    CheckpointError,
    ModelMeta,
    checkpoint_id,
    load_checkpoint,
    read_meta,
    save_checkpoint,
)
from fer_ros.model.mit import build_model
from fer_ros.model.preprocess import Preprocess


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model("mit_b0", num_classes=7).eval()


def make_meta(**kw):
    base = dict(
        labels=list(FER7),
        preprocess=Preprocess(64, "gray", (0.5,) * 3, (0.25,) * 3),
        dataset="fer2013",
        train_config={"lr": 2e-4},
        metrics={"val_acc": 0.5},
    )
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
    meta = make_meta(
        labels=list(FER7) + ["contempt"], arch={"variant": "mit_b0", "drop_rate": 0.1}
    )
    loaded, meta = load_checkpoint(save_checkpoint(tmp_path / "m8.safetensors", model, meta))
    assert loaded.num_classes == 8 and loaded.head_drop.p == 0.1


def test_checkpoint_id_is_the_file_name_and_its_sha256_prefix(model, tmp_path):
    import hashlib

    a = save_checkpoint(tmp_path / "a.safetensors", model, make_meta(created="x"))
    b = save_checkpoint(tmp_path / "b.safetensors", model, make_meta(created="x"))
    assert checkpoint_id(a) == "a@" + hashlib.sha256(a.read_bytes()).hexdigest()[:12]
    assert (
        checkpoint_id(a).split("@")[1] == checkpoint_id(b).split("@")[1]
    )  # same content, same id
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
    (tmp_path / "junk.safetensors").write_bytes(
        b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all"
    )
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
        save_checkpoint(
            tmp_path / "x.safetensors", model, make_meta(labels=list(FER7) + ["contempt"])
        )
    # A file whose metadata was edited to 8 labels while the weights have 7 outputs.
    from safetensors.torch import save_file

    bad = make_meta(labels=list(FER7) + ["contempt"])
    save_file(
        model.state_dict(),
        str(tmp_path / "edited.safetensors"),
        metadata={"fer_ros": bad.to_json()},
    )
    with pytest.raises(CheckpointError, match="wrong class count"):
        load_checkpoint(tmp_path / "edited.safetensors")


def test_arch_mismatch(model, tmp_path):
    from safetensors.torch import save_file

    meta = make_meta(arch={"variant": "mit_b1"})
    with pytest.raises(CheckpointError, match="do not match the architecture"):
        save_checkpoint(tmp_path / "x.safetensors", model, meta)
    save_file(
        model.state_dict(), str(tmp_path / "b1.safetensors"), metadata={"fer_ros": meta.to_json()}
    )
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

            path.write_bytes(
                pickle.dumps(Evil(), protocol=protocol)
            )  # raw pickle, misleading name
        with pytest.raises(CheckpointError, match="pickled torch file"):
            load_checkpoint(path)
        with pytest.raises(CheckpointError):
            read_meta(path)
    assert not marker.exists()


def edited(model, path, **changes):
    """A checkpoint of `model`'s weights whose metadata claims `changes` (JSON edited by hand, as
    an attacker would: nothing checks it on the way in)."""
    import json

    from safetensors.torch import save_file

    meta = json.loads(make_meta().to_json())
    meta.update(changes)
    save_file(model.state_dict(), str(path), metadata={"fer_ros": json.dumps(meta)})
    return path


@pytest.mark.parametrize(
    "arch, why",
    [
        ({"depths": [3000, 2, 2, 2]}, "depths must be 4 whole numbers within 1..64"),
        ({"depths": [2, 2, 2]}, "depths must be 4 whole numbers"),
        ({"embed_dims": ["32", 64, 160, 256]}, "embed_dims must be 4 whole numbers"),
        ({"num_heads": [3, 2, 5, 8]}, "not divisible by num_heads"),
        ({"mlp_ratio": float("nan")}, "mlp_ratio must be within"),
        ({"in_chans": 1}, "in_chans must be within 3..3"),
        ({"drop_rate": True}, "drop_rate must be within"),
        ({"variant": "mit_b9"}, "unknown model variant 'mit_b9'"),
        ({"depth": 3}, r"unknown entries \['depth'\]"),
        (None, "input_size 4096 is above 512"),
    ],
)
def test_metadata_beyond_any_real_model_is_refused_from_the_header(model, tmp_path, arch, why):
    """The metadata is bounded before anything is built: 3 KB claiming 3000 blocks once reached
    5 GB, an input of 4096 ran for minutes."""
    changes = {"arch": {"variant": "mit_b0"} | arch} if arch else {"input_size": 4096}
    path = edited(model, tmp_path / "edited.safetensors", **changes)
    for load in (read_meta, load_checkpoint):
        with pytest.raises(CheckpointError, match=why) as err:
            load(path)
        assert str(err.value).startswith(str(path)) and "\n" not in str(err.value)


def test_weights_are_matched_to_the_architecture_before_it_is_built(model, tmp_path, monkeypatch):
    """A file claiming MiT-b5 with b0's weights is refused by names and shapes from its header: the
    b5 model (82 M parameters) is never materialised."""
    built = []
    build = ModelMeta.build_model

    def recording_build(self):
        built.append(build(self))
        return built[-1]

    monkeypatch.setattr(ModelMeta, "build_model", recording_build)
    path = edited(model, tmp_path / "b5.safetensors", arch={"variant": "mit_b5", "num_classes": 7})
    with pytest.raises(CheckpointError, match="do not match the architecture"):
        load_checkpoint(path)
    assert built and all(p.is_meta for m in built for p in m.parameters())  # shapes, no memory


def test_hostile_checkpoints_cost_neither_memory_nor_time(model, tmp_path, small_checkpoint):
    """The attacks end to end, in a child that may use 1.5 GB and a minute: a 3000-block MiT-b1
    (5 GB before), stages within their bounds but 3 G parameters together (12 GB), and a real
    model claiming a 4096x4096 input (minutes and gigabytes before)."""
    import json

    from safetensors import safe_open
    from safetensors.torch import save_file

    deep = edited(
        model,
        tmp_path / "deep.safetensors",
        arch={"variant": "mit_b1", "depths": [3000, 2, 2, 2], "num_classes": 7},
    )
    wide = edited(
        model,
        tmp_path / "wide.safetensors",
        arch={
            "variant": "mit_b1",
            "embed_dims": [1024] * 4,
            "depths": [64] * 4,
            "num_heads": [16] * 4,
        },
    )
    with safe_open(str(small_checkpoint), "pt") as f:
        state, meta = {k: f.get_tensor(k) for k in f.keys()}, json.loads(f.metadata()["fer_ros"])
    huge_input = tmp_path / "huge_input.safetensors"
    meta["input_size"] = 4096
    save_file(state, str(huge_input), metadata={"fer_ros": json.dumps(meta)})
    done = run_bounded(f"""
        from fer_ros.api import Recognizer
        from fer_ros.model.checkpoint import load_checkpoint
        for attempt in (lambda: load_checkpoint({str(deep)!r}),
                        lambda: load_checkpoint({str(wide)!r}),
                        lambda: Recognizer({str(huge_input)!r}, device="cpu")):
            try:
                attempt()
            except ValueError as err:
                print(type(err).__name__, err)
    """)
    lines = done.stdout.splitlines()
    assert done.returncode == 0 and len(lines) == 3, done
    assert all(line.startswith("CheckpointError") for line in lines), lines
    assert "depths must be" in lines[0]
    assert "parameters, more than a fer_ros model may (200,000,000)" in lines[1]
    assert "input_size 4096 is above 512" in lines[2]
