"""The model a run trains, its optimizer and weight average, and what its checkpoints record."""

from __future__ import annotations

from pathlib import Path

import torch

from fer_ros.errors import ConfigError
from fer_ros.model.checkpoint import ModelMeta
from fer_ros.model.preprocess import Preprocess
from fer_ros.training.config import Config


def build(cfg: Config, num_classes: int):
    from fer_ros.model.mit import build_model

    model = build_model(
        cfg.model.variant,
        num_classes,
        drop_rate=cfg.model.drop_rate,
        drop_path_rate=cfg.model.drop_path_rate,
    )
    if cfg.model.pretrained not in ("", "none"):
        from fer_ros.model.weights import load_mit_weights

        report = load_mit_weights(model, cfg.model.pretrained)
        print(f"encoder weights: {cfg.model.pretrained}: {report}")
    if cfg.model.init:
        from fer_ros.model.checkpoint import load_checkpoint

        start_from, meta = load_checkpoint(cfg.model.init)
        if len(meta.labels) != num_classes:
            raise ConfigError(
                f"model.init: {cfg.model.init} has {len(meta.labels)} classes, this run "
                f"{num_classes}"
            )
        model.load_state_dict({k: v.float() for k, v in start_from.state_dict().items()})
        print(f"weights from {cfg.model.init}")
    return model


def make_ema(model: torch.nn.Module, decay: float):
    """A moving average of `model`'s weights (torch's AveragedModel), or None when decay is 0."""
    if decay <= 0:
        return None
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


def make_optimizer(cfg: Config, model: torch.nn.Module) -> torch.optim.Optimizer:
    o = cfg.optim
    params = [p for p in model.parameters() if p.requires_grad]
    if o.decay_norm_bias:  # plain weight decay on every parameter (the paper's wording)
        groups = [{"params": params, "weight_decay": o.weight_decay}]
    else:  # no decay on norms and biases (the usual rule for transformers)
        groups = [
            {"params": [p for p in params if p.ndim > 1], "weight_decay": o.weight_decay},
            {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0},
        ]
    if o.name == "sgd":
        return torch.optim.SGD(groups, lr=o.lr, momentum=o.momentum)
    if o.name == "radam":
        return torch.optim.RAdam(groups, lr=o.lr, betas=tuple(o.betas))
    # The fused kernel does the whole update in one pass instead of a loop over tensors: on a CPU
    # that loop was a fourteenth of a training step (docs/training.md, "Where an epoch goes").
    # Single-process runs only: a torchrun test aborted once at exit ("terminate called without an
    # active exception") with it, and nothing here has shown that to be unrelated.
    fused = (
        bool(params)
        and params[0].device.type in ("cpu", "cuda")
        and not torch.distributed.is_initialized()
    )
    return torch.optim.AdamW(groups, lr=o.lr, betas=tuple(o.betas), fused=fused or None)


def initialisation(pretrained: str) -> dict | str:
    """How the encoder started: "none" (from scratch), or the weights file's name and sha256."""
    if pretrained in ("", "none"):
        return "none"
    from fer_ros.model.checkpoint import file_sha256

    return {"file": Path(pretrained).name, "sha256": file_sha256(pretrained)}


def model_meta(cfg: Config, classes, splits: dict) -> ModelMeta:
    """What the checkpoints of this run record: labels, architecture, preprocessing, provenance."""
    d = cfg.data
    root = Path(d.root).name if d.root else ""
    return ModelMeta(
        labels=list(classes),
        arch={"variant": cfg.model.variant, "num_classes": len(classes)},
        preprocess=Preprocess(d.input_size, d.color, tuple(d.mean), tuple(d.std), d.face_norm),
        dataset=f"{d.format}:{root}",
        provenance={
            "data": {
                "format": d.format,
                "root": root,
                "labels": d.labels,
                "splits": {
                    name: {"split": split, "images": len(ds)}
                    for name, (split, ds) in splits.items()
                },
            },
            "init": initialisation(cfg.model.pretrained),
        },
        train_config=cfg.to_dict(),
    )


SAVE_DTYPES = {"float32": None, "float16": torch.float16, "bfloat16": torch.bfloat16}
