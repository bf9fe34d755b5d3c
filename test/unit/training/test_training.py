"""The training loop: config handling, schedules, overfitting, learnability, resume, evaluation."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from fer_ros.errors import ConfigError
from fer_ros.model.checkpoint import load_checkpoint
from fer_ros.training.augment import prepare_batch
from fer_ros.training.config import AugmentConfig, OptimConfig, load_config
from fer_ros.training.evaluate import checkpoint_metrics
from fer_ros.training.runstate import STATE_FILE, atomic_save
from fer_ros.training.schedule import Plateau, lr_at
from fer_ros.training.train import train


def tiny(tmp_path, *overrides, **kw):
    """A quick synthetic run at 32x32; every value can be overridden."""
    base = {
        "data.input_size": 32,
        "data.synthetic_train": 56,
        "data.synthetic_val": 14,
        "data.synthetic_test": 14,
        "train.batch_size": 14,
        "train.epochs": 2,
        "train.out_dir": str(tmp_path / "run"),
        "train.threads": 1,
        "model.drop_rate": 0.0,
        "model.drop_path_rate": 0.0,
        "optim.warmup_steps": 0,
    }
    return load_config("synthetic", base | kw | dict(o.split("=", 1) for o in overrides))


def test_paper_protocol_is_the_default_and_overridable():
    cfg = load_config("fer2013")
    assert (cfg.data.input_size, cfg.data.color, cfg.train.batch_size) == (224, "gray", 48)
    assert (cfg.optim.name, cfg.optim.lr, cfg.optim.betas[0], cfg.optim.weight_decay) == (
        "radam",
        1e-4,
        0.9,
        1e-3,
    )
    assert (
        cfg.optim.decay_norm_bias and cfg.train.amp == "off" and cfg.model.pretrained == "required"
    )
    assert (cfg.optim.plateau_factor, cfg.optim.plateau_patience, cfg.optim.min_lr) == (
        0.1,
        2,
        1e-6,
    )
    assert cfg.train.early_stop == 8
    assert (
        load_config("fer2013", ["optim.name=sgd"]).optim.name == "sgd"
    )  # the other reading, one --set away
    assert (cfg.train.epochs, cfg.augment.flip, cfg.augment.rotate) == (50, True, 30.0)
    assert (
        load_config("affectnet8").data.labels == "affectnet8"
        and load_config("affectnet7").data.labels == "fer7"
    )
    cfg = load_config(
        "fer2013", ["optim.lr=3e-4", "augment.flip=false", "data.mean=[0.5, 0.5, 0.5]"]
    )
    assert cfg.optim.lr == 3e-4 and cfg.augment.flip is False and cfg.data.mean == (0.5, 0.5, 0.5)
    with pytest.raises(ConfigError, match="unknown setting 'optim.lrr'"):
        load_config("fer2013", ["optim.lrr=1"])
    with pytest.raises(ConfigError, match="no config"):
        load_config("imagenet")


@pytest.mark.parametrize(
    "setting, field",
    [
        ("train.save_dtype=float8", "train.save_dtype"),
        ("train.balance=oversample", "train.balance"),
        ("optim.schedule=linear", "optim.schedule"),
        ("data.input_size=16", "data.input_size"),
        ("optim.name=lamb", "optim.name"),
        ("train.ema=1.5", "train.ema"),
        ("data.format=parquet", "data.format"),
        ("train.device=gpu", "train.device"),
        ("model.pretrained=/no/such/mit_b0.pth", "model.pretrained"),
    ],
)
def test_a_bad_setting_is_refused_before_any_data_is_read(tmp_path, setting, field):
    cfg = load_config(
        "fer2013",
        {
            "data.root": str(tmp_path / "not-read"),
            "train.out_dir": str(tmp_path / "run"),
            "model.pretrained": "none",
        }
        | dict([setting.split("=", 1)]),
    )
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        train(
            cfg, progress=False
        )  # the data path does not exist: reaching it would raise another error
    assert not (tmp_path / "run").exists()


def test_every_training_setting_is_a_described_option():
    """One rulebook: each field of the training config is an option() with its description, range
    or choices, as the node's parameters are, and `check` holds the values to them."""
    import dataclasses

    from fer_ros.options import specs
    from fer_ros.training.config import Config, check

    for section in dataclasses.fields(Config):
        cls = type(getattr(Config(), section.name))
        assert [s.name for s in specs(cls)] == [f.name for f in dataclasses.fields(cls)], (
            section.name
        )
        assert all(s.doc for s in specs(cls)), section.name
    assert (
        load_config(None, {"data.in_memory": True}).data.in_memory == "true"
    )  # YAML's true, as a choice
    cfg = load_config("synthetic", ["train.device=cuda:x"])
    with pytest.raises(
        ConfigError, match=r"^train\.device must be auto, cpu, cuda or cuda:N, not 'cuda:x'$"
    ):
        check(cfg)


def test_plateau_follows_torchs_reduce_lr_on_plateau():
    """The lr sequence of a scripted accuracy history equals torch's own scheduler's, floor
    included."""
    history = [
        0.50,
        0.60,
        0.60,
        0.55,
        0.58,
        0.60005,
        0.59,
        0.70,
        0.69,
        0.68,
        0.67,
        0.66,
        0.65,
        0.64,
        0.63,
        0.62,
        0.61,
        0.60,
        0.59,
        0.58,
    ]
    base, floor = 1e-4, 1e-6
    mine = Plateau(factor=0.1, patience=2, floor=floor / base)
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=base)
    theirs = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode="max", factor=0.1, patience=2, min_lr=floor
    )
    ours, torchs = [], []
    for epoch, acc in enumerate(history):
        mine.step(acc, epoch)
        theirs.step(acc)
        ours.append(base * mine.scale)
        torchs.append(optimizer.param_groups[0]["lr"])
    assert ours == pytest.approx(torchs, rel=1e-9)
    assert torchs[3] == pytest.approx(base) and torchs[4] == pytest.approx(
        base / 10
    )  # the 3rd flat epoch cuts
    assert min(torchs) == pytest.approx(floor)  # and the floor holds
    assert (
        mine.best_epoch == 7 and mine.since_best(7) == 0
    )  # 0.60005 beat 0.60 for the checkpoint too
    cfg = OptimConfig(schedule="cosine", warmup_steps=10, lr=1.0, min_lr=0.1)
    assert lr_at(0, cfg, 1.0, 110) == pytest.approx(0.1)  # warm-up
    assert lr_at(10, cfg, 1.0, 110) == pytest.approx(1.0)
    assert lr_at(110, cfg, 1.0, 110) == pytest.approx(0.1)


def test_early_stop_comes_after_more_than_early_stop_flat_epochs(tmp_path):
    # A constant lr of 0 freezes the model: epoch 1 is the best, every later one is flat. With
    # early_stop 2, epochs 2, 3 and 4 are flat; "more than 2" is reached after epoch 4.
    cfg = tiny(
        tmp_path,
        **{
            "train.epochs": 10,
            "train.early_stop": 2,
            "optim.lr": 1e-12,
            "optim.min_lr": 0.0,
            "optim.schedule": "constant",
            "model.drop_rate": 0.0,
        },
    )
    summary = train(cfg, progress=False)
    assert summary["epochs_run"] == 4 and summary["best_epoch"] == 1, summary
    assert summary["stopped"] == "early stop: no better val acc for more than 2 epochs"


def test_paper_config_wants_encoder_weights_or_an_explicit_none(tmp_path):
    base = {
        "train.out_dir": str(tmp_path / "run"),
        "data.format": "synthetic",
        "data.input_size": 32,
        "data.synthetic_train": 14,
        "data.synthetic_val": 7,
        "data.synthetic_test": 7,
        "train.batch_size": 7,
        "train.epochs": 1,
        "train.threads": 1,
    }
    with pytest.raises(ConfigError, match="--pretrained .* or --set model.pretrained=none"):
        train(load_config("fer2013", base), progress=False)
    summary = train(load_config("fer2013", base | {"model.pretrained": "none"}), progress=False)
    assert summary["epochs_run"] == 1
    _, meta = load_checkpoint(tmp_path / "run" / "best.safetensors")
    assert meta.provenance["init"] == "none"
    assert meta.provenance["data"]["splits"]["train"] == {"split": "train", "images": 14}


def test_optimizers_and_weight_decay_groups():
    from fer_ros.model.mit import build_model
    from fer_ros.training.build import make_optimizer

    model = build_model("mit_b0")
    for name, kind in (
        ("sgd", torch.optim.SGD),
        ("adamw", torch.optim.AdamW),
        ("radam", torch.optim.RAdam),
    ):
        plain = make_optimizer(load_config("fer2013", [f"optim.name={name}"]), model)
        assert type(plain) is kind and [g["weight_decay"] for g in plain.param_groups] == [1e-3]
    rule = make_optimizer(load_config("fer2013", ["optim.decay_norm_bias=false"]), model)
    assert [g["weight_decay"] for g in rule.param_groups] == [1e-3, 0.0]
    assert all(p.ndim <= 1 for p in rule.param_groups[1]["params"])


def test_augmentation_shapes_and_identity():
    imgs = torch.randint(0, 256, (4, 48, 48, 1), dtype=torch.uint8)
    x = prepare_batch(
        imgs,
        size=64,
        color="gray",
        mean=(0.5,) * 3,
        std=(0.5,) * 3,
        augment=AugmentConfig(rotate=30, scale=0.1, translate=0.1, color_jitter=0.2, erase=0.5),
    )
    assert x.shape == (4, 3, 64, 64) and torch.isfinite(x).all()
    assert torch.equal(x[:, 0], x[:, 1])  # grey replicated
    # Without rotation or flip the warp is the plain resize.
    plain = prepare_batch(imgs, size=64, color="gray", mean=(0.5,) * 3, std=(0.5,) * 3)
    still = prepare_batch(
        imgs,
        size=64,
        color="gray",
        mean=(0.5,) * 3,
        std=(0.5,) * 3,
        augment=AugmentConfig(flip=False, rotate=0),
    )
    assert torch.allclose(plain, still, atol=1e-5)


def test_overfits_a_small_fixed_batch(tmp_path):
    # 28 faces, one batch, no augmentation or dropout: a wired-up loop memorises them.
    cfg = tiny(
        tmp_path,
        **{
            "data.synthetic_train": 28,
            "train.batch_size": 28,
            "train.epochs": 60,
            "optim.lr": 1e-3,
            "optim.schedule": "constant",
            "augment.flip": False,
            "augment.rotate": 0,
            "augment.scale": 0,
            "augment.translate": 0,
        },
    )
    train(cfg, progress=False)
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert max(h["train_acc"] for h in history[-5:]) >= 0.95, history[-5:]


def test_resume_continues_from_the_saved_epoch_with_the_same_state(tmp_path):
    straight = tiny(tmp_path, **{"train.epochs": 4, "train.out_dir": str(tmp_path / "a")})
    train(straight, progress=False)
    paused = tiny(
        tmp_path,
        **{"train.epochs": 4, "train.out_dir": str(tmp_path / "b"), "train.max_epochs_per_run": 2},
    )
    train(paused, progress=False)  # "crashes" after epoch 2
    half = torch.load(tmp_path / "b" / STATE_FILE, weights_only=True)
    assert half["epoch"] == 2
    train(paused, progress=False)  # resumes at epoch 3
    a = torch.load(tmp_path / "a" / STATE_FILE, weights_only=True)
    b = torch.load(tmp_path / "b" / STATE_FILE, weights_only=True)
    assert a["epoch"] == b["epoch"] == 4 and a["step"] == b["step"]
    assert [h["epoch"] for h in b["history"]] == [1, 2, 3, 4]
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    assert list(a["model"]) == list(b["model"]) and list(a["optimizer"]["state"]) == list(
        b["optimizer"]["state"]
    )
    for pa, pb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        assert list(pa) == list(pb)
        assert all(torch.equal(pa[k], pb[k]) for k in pa)


def test_ema_weights_are_validated_saved_and_resumed(tmp_path):
    cfg = tiny(tmp_path, **{"train.ema": 0.9, "train.epochs": 2, "train.max_epochs_per_run": 1})
    train(cfg, progress=False)
    state = torch.load(tmp_path / "run" / STATE_FILE, weights_only=True)
    ema = {
        k.removeprefix("module."): v for k, v in state["ema"].items() if k.startswith("module.")
    }
    assert ema.keys() == state["model"].keys()
    assert any(not torch.equal(ema[k], state["model"][k]) for k in ema)  # an average, not a copy
    best, _ = load_checkpoint(tmp_path / "run" / "best.safetensors")
    # The average is what is shipped (the synthetic config saves float16).
    assert all(torch.equal(v, ema[k].half().float()) for k, v in best.state_dict().items())
    train(cfg, progress=False)  # resumes with the average it had
    assert torch.load(tmp_path / "run" / STATE_FILE, weights_only=True)["epoch"] == 2
    with pytest.raises(ValueError, match="train.ema"):
        train(
            tiny(tmp_path, **{"train.ema": 1.0, "train.out_dir": str(tmp_path / "bad")}),
            progress=False,
        )


def test_class_weights_power():
    from fer_ros.training.sampling import class_weights

    counts = torch.tensor([100, 400, 0, 25])
    full, half = class_weights(counts), class_weights(counts, 0.5)
    assert full[2] == 0 and half[2] == 0
    assert full[[0, 1, 3]].mean() == pytest.approx(1) and half[[0, 1, 3]].mean() == pytest.approx(
        1
    )
    assert full[3] / full[1] == pytest.approx(16) and half[3] / half[1] == pytest.approx(4)


def test_state_write_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / STATE_FILE
    atomic_save({"epoch": 1}, path)

    def dies_mid_write(obj, f):
        Path(f).write_bytes(b"half a file")
        raise KeyboardInterrupt  # a kill arriving while the file is being written

    monkeypatch.setattr(torch, "save", dies_mid_write)
    with pytest.raises(KeyboardInterrupt):
        atomic_save({"epoch": 2}, path)
    monkeypatch.undo()
    assert torch.load(path, weights_only=True) == {"epoch": 1}
    assert os.listdir(tmp_path) == [STATE_FILE]  # no temporary file left behind


def test_best_checkpoint_and_evaluate_agree(tmp_path):
    cfg = tiny(tmp_path, **{"train.epochs": 1})
    summary = train(cfg, progress=False)
    best = tmp_path / "run" / "best.safetensors"
    model, meta = load_checkpoint(best)
    assert (
        meta.labels == list(cfg_labels())
        and meta.preprocess.input_size == 32
        and meta.preprocess.color == "rgb"
    )
    assert meta.train_config["optim"]["name"] == "adamw" and "val" in meta.metrics
    # The evaluator goes through the inference preprocessing; on same-size images it must
    # reproduce the loop's own test score.
    m = checkpoint_metrics(
        best,
        "synthetic",
        "",
        "test",
        out_dir=tmp_path / "eval",
        n_train=0,
        n_val=14,
        n_test=14,
        seed=cfg.train.seed,
    )
    assert m["accuracy"] == pytest.approx(summary["test"]["accuracy"])
    assert {"macro_f1", "per_class", "samples"} <= set(m) and m["samples"] == 14
    assert {p.name for p in (tmp_path / "eval").iterdir()} == {
        "metrics.json",
        "confusion.json",
        "confusion.png",
    }
    flipped = checkpoint_metrics(
        best, "synthetic", "", "test", tta="flip", n_train=0, n_val=14, n_test=14
    )
    assert flipped["tta"] == "flip"


def cfg_labels():
    from fer_ros.labels import FER7

    return FER7


# Learnability. MiT-b0 from scratch on synthetic faces at 32x32: 1,400 training faces, batch 32,
# AdamW 5e-4 with a 30-step warm-up, cosine, 6 epochs (264 steps). Measured on this project's
# 2-core CI machine (shared, 90-140 s per run): best validation accuracy 0.593, 0.618, 0.550 for
# seeds 0, 1, 2 (chance 0.143). The threshold sits 0.15 under the lowest: far above chance, yet not
# flaky.
LEARN_THRESHOLD = 0.40


def test_learns_synthetic_faces_from_scratch(tmp_path):
    cfg = tiny(
        tmp_path,
        **{
            "data.synthetic_train": 1400,
            "data.synthetic_val": 280,
            "data.synthetic_test": 0,
            "train.batch_size": 32,
            "train.epochs": 6,
            "optim.lr": 5e-4,
            "optim.warmup_steps": 30,
        },
    )
    summary = train(cfg, progress=False)
    assert summary["best_val_acc"] >= LEARN_THRESHOLD, summary


def test_fer2013_csv_run_reports_bad_rows(tmp_path):
    # The grey FER2013 path end to end: CSV written by `fer-ros synth`, one broken row appended.
    import argparse

    from fer_ros import synthetic as synth

    csv_path = tmp_path / "fer2013.csv"
    synth.run(
        argparse.Namespace(
            out=csv_path, format=None, num=28, val=14, test=14, labels="fer7", size=48, seed=0
        )
    )
    with open(csv_path, "a") as f:
        f.write("3,1 2 3,Training\n")
    cfg = load_config(
        "fer2013",
        {
            "data.root": str(csv_path),
            "model.pretrained": "none",
            "data.input_size": 32,
            "train.batch_size": 14,
            "train.epochs": 1,
            "train.steps_per_epoch": 1,
            "train.threads": 1,
            "train.out_dir": str(tmp_path / "run"),
        },
    )
    summary = train(cfg, progress=False)
    assert summary["data_report"] == [
        "bad rows: 1 wrong pixel count or value (e.g. fer2013.csv:58)"
    ]
    _, meta = load_checkpoint(tmp_path / "run" / "best.safetensors")
    assert (
        meta.preprocess.color == "gray"
        and meta.preprocess.input_size == 32
        and meta.dataset == "fer2013:fer2013.csv"
    )
    assert meta.provenance["data"]["splits"]["test"] == {"split": "test", "images": 14}


def test_encoder_starts_from_a_local_imagenet_file(tmp_path):
    # An official-layout mit_b0.pth (written as test_weights writes one) given as model.pretrained.
    from mit_layouts import OFFICIAL_FROM_OURS, rename

    from fer_ros.model.mit import build_model
    from fer_ros.training.build import build

    source = build_model("mit_b0")
    torch.save(rename(source.encoder.state_dict(), OFFICIAL_FROM_OURS), tmp_path / "mit_b0.pth")
    cfg = load_config("fer2013", {"model.pretrained": str(tmp_path / "mit_b0.pth")})
    model = build(cfg, 7)
    import hashlib

    from fer_ros.training.build import initialisation

    digest = hashlib.sha256((tmp_path / "mit_b0.pth").read_bytes()).hexdigest()
    assert initialisation(cfg.model.pretrained) == {"file": "mit_b0.pth", "sha256": digest}
    assert list(model.encoder.state_dict()) == list(source.encoder.state_dict())
    for (k, a), b in zip(model.encoder.state_dict().items(), source.encoder.state_dict().values()):
        assert torch.equal(a, b), k


def test_tta_flip_is_the_mean_with_the_mirror_and_random_is_deterministic(small_checkpoint):
    import numpy as np

    from fer_ros.inference.engine import Engine
    from fer_ros.labels import FER7
    from fer_ros.training.datasets import ArrayDataset
    from fer_ros.training.evaluate import predict

    g = torch.Generator().manual_seed(3)
    faces = ArrayDataset(
        torch.randint(0, 256, (5, 48, 40, 3), dtype=torch.uint8, generator=g),
        torch.arange(5),
        FER7,
        "rgb",
    )
    with Engine.from_checkpoint(small_checkpoint, device="cpu", backend="torch") as engine:
        plain, true = predict(engine, faces)
        flip, _ = predict(engine, faces, tta="flip")
        mirror = engine.predict(
            [np.ascontiguousarray(faces[i][0].numpy()[:, ::-1]) for i in range(5)]
        )
        np.testing.assert_allclose(flip, (plain + mirror) / 2, rtol=0, atol=1e-6)
        first, _ = predict(engine, faces, tta="random:4", batch_size=2)
        again, _ = predict(engine, faces, tta="random:4", batch_size=2)
        assert np.array_equal(first, again) and not np.allclose(first, plain, atol=1e-3)
        np.testing.assert_allclose(first.sum(1), 1, atol=1e-5)
    assert true.tolist() == [0, 1, 2, 3, 4]
    with pytest.raises(ConfigError, match="random:N"):
        predict(engine, faces, tta="random:0")


def test_class_balanced_sampler_draws_every_class_evenly_and_repeatably():
    from fer_ros.training.sampling import EpochSampler, class_weights

    targets = torch.tensor([0] * 900 + [1] * 90 + [2] * 10)
    weights = class_weights(torch.bincount(targets))[targets].double()
    sampler = EpochSampler(len(targets), seed=0, weights=weights)
    first = list(sampler)
    drawn = torch.bincount(targets[first], minlength=3)
    assert drawn.sum() == 1000 and (drawn > 250).all(), drawn  # a third each, not 90 / 9 / 1 %
    assert (
        list(EpochSampler(len(targets), seed=0, weights=weights)) == first
    )  # the epoch number is the state
    sampler.set_epoch(1)
    assert list(sampler) != first


def test_no_resume_starts_over(tmp_path):
    from fer_ros.cli import main

    args = [
        "train",
        "--config",
        "synthetic",
        "--out",
        str(tmp_path / "run"),
        "--no-progress",
        "--set",
        "data.input_size=32",
        "--set",
        "data.synthetic_train=14",
        "--set",
        "data.synthetic_val=7",
        "--set",
        "data.synthetic_test=7",
        "--set",
        "train.batch_size=7",
        "--set",
        "train.threads=1",
    ]
    assert main([*args, "--epochs", "2"]) == 0
    assert main([*args, "--epochs", "3"]) == 0  # resumes: one more epoch
    assert [h["epoch"] for h in json.loads((tmp_path / "run" / "history.json").read_text())] == [
        1,
        2,
        3,
    ]
    assert main([*args, "--epochs", "1", "--no-resume"]) == 0  # starts over
    assert [h["epoch"] for h in json.loads((tmp_path / "run" / "history.json").read_text())] == [1]


def write_faces_folder(root: Path, per_class: dict, side: int = 40, seed: int = 0) -> Path:
    """An image-folder set <root>/train|val/<class>/*.jpg of random grey faces."""
    import cv2
    import numpy as np

    rng = np.random.default_rng(seed)
    for split in ("train", "val"):
        for name, n in per_class.items():
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                cv2.imwrite(
                    str(folder / f"{i}.jpg"), rng.integers(0, 256, (side, side), dtype=np.uint8)
                )
    return root


def test_extra_training_faces_join_the_training_set_balanced_by_class(tmp_path):
    """data.extra_train: a second set's training faces join (validation stays the main set's), and
    the class-balanced sampler balances by class across both sets."""
    from fer_ros.labels import FER7
    from fer_ros.training.train import start

    main = write_faces_folder(tmp_path / "main", {c: 3 for c in FER7}, side=48)
    extra = write_faces_folder(
        tmp_path / "extra", {"happy": 30, "neutral": 30, "fear": 1}, side=128, seed=1
    )
    cfg = load_config(
        None,
        {
            "data.format": "fer2013_folder",
            "data.root": str(main),
            "data.input_size": 32,
            "data.extra_train": str(extra),
            "train.balance": "sampler",
            "train.batch_size": 8,
            "train.out_dir": str(tmp_path / "run"),
            "train.threads": 1,
            "model.drop_rate": 0.0,
        },
    )
    run = start(cfg)
    assert len(run.train_set) == 7 * 3 + 61 and len(run.val_set) == 7 * 3
    counts = run.train_set.class_counts()
    assert counts[FER7.index("happy")] == 33 and counts[FER7.index("fear")] == 4
    drawn = torch.bincount(
        run.train_set.hard_targets()[torch.tensor(list(iter(run.sampler)))], minlength=7
    )
    assert drawn.min() > 0 and drawn.max() / drawn.min() < 3  # balanced, not 33:3
    with pytest.raises(ConfigError, match="data.extra_train: no such folder"):
        train(
            load_config(
                None,
                {
                    "data.format": "fer2013_folder",
                    "data.root": str(main),
                    "data.extra_train": str(tmp_path / "nope"),
                },
            ),
            progress=False,
        )


def test_a_csv_set_and_a_folder_set_train_together(tmp_path):
    """FER2013's 48x48 CSV faces (FER+ vote targets) with 128x128 folder faces (class indices): the
    folder faces join at 48x48 as one-hot targets, and a run trains on both."""
    import csv

    from fer_ros.labels import FER7
    from fer_ros.training.datasets import FERPLUS_VOTES

    header = ["Usage", "Image name", *FERPLUS_VOTES, "unknown", "NF"]
    rows = [("Training" if i < 14 else "PublicTest", i % 7) for i in range(21)]
    with open(tmp_path / "fer2013.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["emotion", "pixels", "Usage"])
        w.writerows([e, " ".join([str(9 * i)] * 48 * 48), u] for i, (u, e) in enumerate(rows))
    with open(tmp_path / "fer2013new.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(
            [u, f"fer{i}.png", 4, 6, 0, 0, 0, 0, 0, 0, 0, 0] for i, (u, _) in enumerate(rows)
        )
    extra = write_faces_folder(tmp_path / "extra", {"happy": 3, "sad": 2}, side=128)
    cfg = load_config(
        None,
        {
            "data.format": "ferplus",
            "data.root": str(tmp_path),
            "data.target": "mixed",
            "data.input_size": 32,
            "data.extra_train": str(extra),
            "train.batch_size": 8,
            "train.epochs": 1,
            "train.threads": 1,
            "train.out_dir": str(tmp_path / "run"),
            "model.drop_rate": 0.0,
        },
    )
    from fer_ros.training.splits import training_splits

    _, used, weight = training_splits(cfg)
    joined = used["train"][1]
    assert joined.images.shape == (14 + 5, 48, 48, 1) and joined.targets.shape == (19, 7)
    assert (
        joined.targets[14:].tolist()
        == [[float(c == FER7.index("happy")) for c in range(7)]] * 3
        + [[float(c == FER7.index("sad")) for c in range(7)]] * 2
    )
    assert weight.tolist() == [1.0] * 14 + [cfg.data.extra_weight] * 5
    summary = train(cfg, progress=False)
    assert summary["epochs_run"] == 1


def test_fine_tuning_starts_from_a_checkpoints_weights(tmp_path, small_checkpoint):
    from fer_ros.training.build import build

    model, meta = load_checkpoint(small_checkpoint)
    cfg = load_config(None, {"model.init": str(small_checkpoint), "model.drop_rate": 0.0})
    cfg.data.input_size = meta.preprocess.input_size
    started = build(cfg, len(meta.labels))
    for (name, a), b in zip(model.state_dict().items(), started.state_dict().values()):
        assert torch.equal(a.float(), b), name
    with pytest.raises(ConfigError, match="model.init: no such checkpoint"):
        train(
            load_config("synthetic", {"model.init": str(tmp_path / "none.safetensors")}),
            progress=False,
        )


def test_camera_augmentations_change_the_batch_and_stay_in_range():
    imgs = torch.randint(0, 256, (16, 48, 48, 1), dtype=torch.uint8)
    kw = dict(size=48, color="gray", mean=(0.0,) * 3, std=(1.0,) * 3)
    still = AugmentConfig(flip=False, rotate=0)
    plain = prepare_batch(imgs, augment=still, **kw)
    for change in ({"aspect": 0.2}, {"blur": 1.0}, {"noise": 0.1}, {"gamma": 0.5}):
        g = torch.Generator().manual_seed(0)
        x = prepare_batch(
            imgs, augment=AugmentConfig(flip=False, rotate=0, **change), generator=g, **kw
        )
        assert x.shape == plain.shape and torch.isfinite(x).all(), change
        assert x.min() >= 0 and x.max() <= 1, change
        assert not torch.allclose(x, plain, atol=1e-3), change


def test_mixup_blends_faces_and_targets_alike():
    from fer_ros.training.train import mixup

    # Face i is the constant i and its class is i, so a blend of faces shows in its value and
    # must match the blend of targets: value == sum over classes of class * target share.
    x = torch.arange(7, dtype=torch.float32).view(7, 1, 1, 1).expand(7, 3, 2, 2).contiguous()
    mixed, soft = mixup(x, torch.arange(7), 7, 0.4, torch.Generator().manual_seed(3))
    assert soft.shape == (7, 7) and torch.allclose(soft.sum(1), torch.ones(7))
    assert torch.allclose(mixed[:, 0, 0, 0], soft @ torch.arange(7.0), atol=1e-5)
    assert not torch.equal(mixed, x)
    # The same generator state gives the same mix (a resumed run mixes as the uninterrupted one).
    again, soft2 = mixup(x, torch.arange(7), 7, 0.4, torch.Generator().manual_seed(3))
    assert torch.equal(mixed, again) and torch.equal(soft, soft2)
    # An unusable face (-1) brings no target mass; vote distributions are blended as they are.
    _, partial = mixup(x, torch.tensor([0, 1, 2, 3, 4, 5, -1]), 7, 0.4, torch.Generator())
    assert partial[:, 6].sum() == 0 and partial.sum() < 7
    votes = torch.softmax(torch.randn(7, 7), 1)
    _, blended = mixup(x, votes, 7, 0.4, torch.Generator().manual_seed(3))
    assert torch.allclose(blended.sum(1), torch.ones(7))


def test_a_run_with_mixup_and_face_norm_records_its_preprocessing(tmp_path):
    cfg = tiny(tmp_path, "train.mixup=0.4", "data.face_norm=standardize", "train.epochs=1")
    train(cfg, progress=False)
    _, meta = load_checkpoint(Path(cfg.train.out_dir) / "best.safetensors")
    assert meta.preprocess.face_norm == "standardize"
    assert meta.train_config["train"]["mixup"] == 0.4


def test_distillation_blends_each_target_with_the_teachers_answer(small_checkpoint):
    from fer_ros.labels import FER7
    from fer_ros.training.datasets import ArrayDataset
    from fer_ros.training.teacher import ensemble_probabilities, with_teacher

    images = torch.randint(0, 256, (6, 48, 48, 1), dtype=torch.uint8)
    faces = ArrayDataset(images, torch.tensor([0, 1, 2, 3, -1, 6]), FER7, "gray")
    teacher = ensemble_probabilities([str(small_checkpoint)], faces, FER7)
    assert teacher.shape == (6, 7) and np.allclose(teacher.sum(1), 1, atol=1e-5)
    # Two copies of one teacher are that teacher; the label keeps 0.7 of each target.
    taught = with_teacher(faces, [str(small_checkpoint)] * 2, 0.3).targets
    own = torch.zeros(6, 7)
    own[[0, 1, 2, 3, 5], [0, 1, 2, 3, 6]] = 1
    expected = 0.7 * own + 0.3 * torch.from_numpy(teacher).float()
    expected[4] = 0  # an unusable face stays unusable
    assert torch.allclose(taught, expected, atol=1e-5)
    assert torch.equal(with_teacher(faces, [str(small_checkpoint)], 0.3).images, images)


def test_a_teacher_of_other_classes_is_refused(tmp_path, small_checkpoint):
    cfg = tiny(tmp_path, f"data.teacher={small_checkpoint}", "data.labels=affectnet8")
    with pytest.raises(ConfigError, match="data.teacher"):
        train(cfg, progress=False)
    summary = train(tiny(tmp_path / "ok", f"data.teacher={small_checkpoint}", "train.epochs=1"))
    assert summary["epochs_run"] == 1
