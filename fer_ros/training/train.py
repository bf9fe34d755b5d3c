"""`fer-ros train`: train a MiT-fusion expression classifier, on one device or many (torchrun).

    fer-ros train --config fer2013 --data /data/fer2013.csv --pretrained mit_b0.pth --out runs/fer2013
    torchrun --nproc-per-node 4 -m fer_ros.training.train --config affectnet8 --data /data/affectnet ...
    fer-ros train --config fer2013 --set optim.lr=3e-4 --set train.batch_size=64

What a run leaves in its output folder:
  best.safetensors   the best epoch's model (validation accuracy) in the fer_ros checkpoint format,
                     with labels, preprocessing, the resolved config and its metrics
  last_state.pt      everything needed to resume (model, optimizer, schedule, epoch, RNG states);
                     written atomically after every epoch, so a crash loses at most the epoch in flight
  config.yaml        the resolved configuration
  history.json       per-epoch loss, accuracy, macro-F1, learning rate; curves.png the same as a plot
  summary.json       best epoch, its validation metrics, test metrics, data set report

Running the same command again resumes from last_state.pt (set train.resume=false to start over).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
import yaml
from torch.utils.data import DataLoader, Sampler

from fer_ros.atomic import atomic_file, atomic_write_text
from fer_ros.errors import ConfigError
from fer_ros.metrics import plot_confusion, plot_curves, summarize
from fer_ros.model.checkpoint import ModelMeta, save_checkpoint
from fer_ros.model.preprocess import Preprocess
from fer_ros.training.augment import prepare_batch
from fer_ros.training.config import Config, check, load_config
from fer_ros.training.datasets import (
    ArrayDataset,
    ImageFileDataset,
    all_reports,
    cpu_count,
    describe,
    hold_out,
    load_splits,
    pick_split,
)

STATE_FILE = "last_state.pt"
IN_MEMORY_LIMIT = 2 << 30  # data.in_memory auto: decode a file data set once when it fits in this
BEST_FILE = "best.safetensors"


# ---------------------------------------------------------------------------------------------
# Small pure helpers.


def lr_at(step: int, cfg, base_lr: float, total_steps: int, plateau_scale: float = 1.0) -> float:
    """Learning rate at optimizer step `step`: linear warm-up, then the schedule.

    plateau: base_lr times the factor the plateau rule has accumulated; cosine: from base_lr down to
    min_lr over total_steps; constant: base_lr.
    """
    warm = min(1.0, (step + 1) / cfg.warmup_steps) if cfg.warmup_steps > 0 else 1.0
    if cfg.schedule == "cosine":
        t = min(1.0, max(0.0, (step - cfg.warmup_steps) / max(1, total_steps - cfg.warmup_steps)))
        return warm * (cfg.min_lr + (base_lr - cfg.min_lr) * 0.5 * (1 + math.cos(math.pi * t)))
    if cfg.schedule == "plateau":
        return warm * base_lr * plateau_scale
    if cfg.schedule == "constant":
        return warm * base_lr
    raise ConfigError(f"unknown schedule {cfg.schedule!r}; choose plateau, cosine or constant")


class Plateau:
    """Validation accuracy over the epochs: the best epoch, and torch's ReduceLROnPlateau rule.

    The best epoch is any improvement: it selects the checkpoint and starts the early-stop count.
    The lr follows ReduceLROnPlateau(mode="max", threshold=1e-4 relative, cooldown 0): when `patience`
    + 1 epochs in a row fail to beat its own best by the threshold, the lr scale is multiplied by
    `factor` (never below `floor`) and the count starts again.
    """

    THRESHOLD = 1e-4  # torch's default: an improvement must exceed best * (1 + 1e-4)

    def __init__(self, factor: float, patience: int, floor: float = 0.0):
        self.factor, self.patience, self.floor = factor, patience, floor
        self.best, self.best_epoch = -1.0, -1
        self.lr_best, self.bad_epochs, self.scale = -math.inf, 0, 1.0

    def step(self, value: float, epoch: int) -> bool:
        """Records an epoch's validation accuracy; True when it is the best so far."""
        if value > self.lr_best * (1 + self.THRESHOLD):
            self.lr_best, self.bad_epochs = value, 0
        else:
            self.bad_epochs += 1
        if self.bad_epochs > self.patience:
            self.scale, self.bad_epochs = max(self.scale * self.factor, self.floor), 0
        improved = value > self.best
        if improved:
            self.best, self.best_epoch = value, epoch
        return improved

    def since_best(self, epoch: int) -> int:
        return epoch - self.best_epoch

    def state_dict(self) -> dict:
        return {"best": self.best, "best_epoch": self.best_epoch, "lr_best": self.lr_best,
                "bad_epochs": self.bad_epochs, "scale": self.scale}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.best_epoch = float(state["best"]), int(state["best_epoch"])
        self.lr_best = float(state.get("lr_best", self.best))
        self.bad_epochs, self.scale = int(state["bad_epochs"]), float(state["scale"])


class EpochSampler(Sampler):
    """Shuffled (or class-balanced, with replacement) indices, the same permutation on every
    process for a given seed and epoch, each process taking every world-th: DDP-ready, resumable
    without state (the epoch number is the state)."""

    def __init__(self, n: int, seed: int, rank: int = 0, world: int = 1, weights: torch.Tensor | None = None):
        self.n, self.seed, self.rank, self.world, self.weights = n, seed, rank, world, weights
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return math.ceil(self.n / self.world)

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        if self.weights is not None:
            idx = torch.multinomial(self.weights, self.n, replacement=True, generator=g)
        else:
            idx = torch.randperm(self.n, generator=g)
        pad = len(self) * self.world - self.n
        if pad:
            idx = torch.cat([idx, idx[:pad]])
        return iter(idx[self.rank :: self.world].tolist())


def class_weights(counts: torch.Tensor, power: float = 1.0) -> torch.Tensor:
    """Inverse-frequency weights to the `power` (1: balanced, 0.5: square root), mean 1 over the
    classes present."""
    w = torch.where(counts > 0, counts.clamp(min=1).double() ** -power, torch.zeros_like(counts, dtype=torch.float64))
    return (w * (counts > 0).sum() / w.sum()).float()


def atomic_save(obj, path: Path) -> None:
    """torch.save through fer_ros.atomic: a kill at any moment leaves the old file or the new one."""
    with atomic_file(path) as tmp:
        torch.save(obj, tmp)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state(aug_gen: torch.Generator) -> dict:
    state = {"torch": torch.get_rng_state(), "augment": aug_gen.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict, aug_gen: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    aug_gen.set_state(state["augment"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ---------------------------------------------------------------------------------------------
# Set-up: processes, device, data, model.


class Dist:
    """This process's place in a torchrun job (rank 0 of 1 without torchrun)."""

    def __init__(self):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))

    @property
    def main(self) -> bool:
        return self.rank == 0

    def init(self, device: torch.device) -> None:
        if self.world > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")

    def sum(self, t: torch.Tensor) -> torch.Tensor:
        if self.world > 1:
            dist.all_reduce(t)
        return t

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def close(self) -> None:
        if self.world > 1 and dist.is_initialized():
            dist.destroy_process_group()


def pick_device(name: str, ddp: Dist) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", ddp.local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    return device


def amp_dtype(mode: str, device: torch.device) -> torch.dtype | None:
    if device.type != "cuda" or mode == "off":
        return None
    if mode == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return {"bf16": torch.bfloat16, "fp16": torch.float16}[mode]


def _batched(batch):
    return batch  # ArrayDataset.__getitems__ already returns (images, targets)


def make_loader(dataset, batch_size: int, sampler, workers: int, device: torch.device) -> DataLoader:
    in_memory = isinstance(dataset, ArrayDataset)
    workers = 0 if in_memory else min(workers, cpu_count())
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers,
                      collate_fn=_batched if in_memory else None, pin_memory=device.type == "cuda",
                      persistent_workers=workers > 0, prefetch_factor=4 if workers > 0 else None, drop_last=False)


def load_data(cfg: Config) -> dict:
    d = cfg.data
    if d.format == "synthetic":
        return load_splits("synthetic", "", d.labels, color=d.color, size=d.input_size, n_train=d.synthetic_train,
                           n_val=d.synthetic_val, n_test=d.synthetic_test, seed=cfg.train.seed)
    # File formats resize in the workers straight to the input size; in-memory ones keep their own.
    splits = load_splits(d.format, d.root, d.labels, color=d.color, size=d.input_size, target=d.target)
    choice = str(d.in_memory).lower()
    for name, ds in splits.items():
        if isinstance(ds, ImageFileDataset) and (choice == "true" or (choice == "auto" and ds.nbytes() <= IN_MEMORY_LIMIT)):
            splits[name] = ds.to_memory(progress=sys.stderr.isatty())
    return splits


def extra_training_faces(cfg: Config, classes) -> list:
    """The training splits of data.extra_train's folders, in memory at the input size, same classes."""
    d = cfg.data
    out = []
    for root in filter(None, (r.strip() for r in d.extra_train.split(","))):
        split = pick_split(load_splits("fer2013_folder", root, classes, color=d.color, size=d.input_size),
                           d.train_split)
        out.append(split.to_memory(progress=sys.stderr.isatty()) if isinstance(split, ImageFileDataset) else split)
    return out


def join_training_sets(main, extras: list, extra_weight: float):
    """One in-memory set of `main` and `extras`, and each face's set weight (main 1, extras extra_weight)."""
    if not extras:
        return main, None
    sets = [main, *extras]
    if not all(isinstance(s, ArrayDataset) and s.images.shape[1:] == main.images.shape[1:] for s in sets):
        raise ConfigError("data.extra_train needs every training set in memory at the same size (data.in_memory)")
    joined = ArrayDataset(torch.cat([s.images for s in sets]), torch.cat([s.targets for s in sets]), main.classes,
                          main.color, main.report, " + ".join(s.name or "?" for s in sets))
    weight = torch.cat([torch.ones(len(main), dtype=torch.float64)] +
                       [torch.full((len(s),), float(extra_weight), dtype=torch.float64) for s in extras])
    return joined, weight


def build(cfg: Config, num_classes: int):
    from fer_ros.model.mit import build_model

    model = build_model(cfg.model.variant, num_classes, drop_rate=cfg.model.drop_rate,
                        drop_path_rate=cfg.model.drop_path_rate)
    if cfg.model.pretrained not in ("", "none"):
        from fer_ros.model.weights import load_mit_weights

        report = load_mit_weights(model, cfg.model.pretrained)
        print(f"encoder weights: {cfg.model.pretrained}: {report}")
    if cfg.model.init:
        from fer_ros.model.checkpoint import load_checkpoint

        start_from, meta = load_checkpoint(cfg.model.init)
        if len(meta.labels) != num_classes:
            raise ConfigError(f"model.init: {cfg.model.init} has {len(meta.labels)} classes, this run {num_classes}")
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
        groups = [{"params": [p for p in params if p.ndim > 1], "weight_decay": o.weight_decay},
                  {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0}]
    if o.name == "sgd":
        return torch.optim.SGD(groups, lr=o.lr, momentum=o.momentum)
    if o.name == "adamw":
        return torch.optim.AdamW(groups, lr=o.lr, betas=tuple(o.betas))
    if o.name == "radam":
        return torch.optim.RAdam(groups, lr=o.lr, betas=tuple(o.betas))
    raise ConfigError(f"unknown optimizer {o.name!r}; choose sgd, adamw or radam")


def train_step(net, model, optimizer, scaler, images, targets, cfg: Config, aug_gen, amp, loss_weight=None):
    """One optimizer step on a uint8 batch: to the device, augment, forward, loss, backward, clip, step.

    Returns (loss, logits, true class per sample (-1: unusable image, ignored by the loss)).
    """
    device = next(model.parameters()).device
    images = images.to(device, non_blocking=True)
    targets = targets.to(device, non_blocking=True)
    x = prepare_batch(images, size=cfg.data.input_size, color=cfg.data.color, mean=cfg.data.mean, std=cfg.data.std,
                      augment=cfg.augment, generator=aug_gen, channels_last=cfg.train.channels_last)
    with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
        logits = net(x)
    logits = logits.float()
    if targets.dim() == 2:  # vote distributions (FER+ probability targets)
        loss = F.cross_entropy(logits, targets, weight=loss_weight, label_smoothing=cfg.train.label_smoothing)
        true = targets.argmax(1)
    else:
        loss = F.cross_entropy(logits, targets, weight=loss_weight, ignore_index=-1,
                               label_smoothing=cfg.train.label_smoothing)
        true = targets
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    if cfg.optim.grad_clip > 0:
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)
    scaler.step(optimizer)
    scaler.update()
    return loss.detach(), logits.detach(), true


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
        preprocess=Preprocess(d.input_size, d.color, tuple(d.mean), tuple(d.std)),
        dataset=f"{d.format}:{root}",
        provenance={"data": {"format": d.format, "root": root, "labels": d.labels,
                             "splits": {name: {"split": split, "images": len(ds)} for name, (split, ds) in
                                        splits.items()}},
                    "init": initialisation(cfg.model.pretrained)},
        train_config=cfg.to_dict(),
    )


SAVE_DTYPES = {"float32": None, "float16": torch.float16, "bfloat16": torch.bfloat16}


# ---------------------------------------------------------------------------------------------
# The run: everything one training run holds, set up once, advanced by the loop.


@dataclass
class Run:
    cfg: Config
    ddp: Dist
    device: torch.device
    out: Path
    train_set: object
    val_set: object
    test_set: object | None
    meta: ModelMeta
    model: torch.nn.Module
    net: torch.nn.Module  # what the forward pass calls: the model, DDP-wrapped and/or compiled
    ema: torch.nn.Module | None
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    amp: torch.dtype | None
    plateau: Plateau
    aug_gen: torch.Generator
    sampler: EpochSampler
    loader: DataLoader
    loss_weight: torch.Tensor | None
    steps_per_epoch: int
    data_report: list[str]
    started: float = 0.0  # time.time() when the run began
    epoch: int = 0  # epochs completed
    started_epoch: int = 0  # epochs completed when this process started (resume)
    step: int = 0  # optimizer steps taken
    history: list = field(default_factory=list)
    skipped: int = 0  # unreadable images met in training

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(self.meta.labels)

    @property
    def scored(self) -> torch.nn.Module:
        """The weights that are validated and shipped: the moving average when there is one."""
        return self.model if self.ema is None else self.ema.module

    def say(self, *args, **kwargs) -> None:
        if self.ddp.main:
            print(*args, **kwargs)

    def state(self) -> dict:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                **({"ema": self.ema.state_dict()} if self.ema is not None else {}),
                "plateau": self.plateau.state_dict(), "rng": rng_state(self.aug_gen), "epoch": self.epoch,
                "step": self.step, "history": self.history, "config": self.cfg.to_dict()}

    def resume(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.ema is not None and "ema" in state:
            self.ema.load_state_dict(state["ema"])
        self.plateau.load_state_dict(state["plateau"])
        self.epoch, self.step, self.history = int(state["epoch"]), int(state["step"]), list(state["history"])
        seed, rank = self.cfg.train.seed, self.ddp.rank
        if self.ddp.main:
            set_rng_state(state["rng"], self.aug_gen)
        else:  # only rank 0's generators are saved; the others restart their own streams
            torch.manual_seed(seed + rank + 1000 * self.epoch)
            self.aug_gen.manual_seed(seed * 7919 + rank + 1000 * self.epoch)


def start(cfg: Config) -> Run:
    """Processes, device, data, model, optimizer and loader; resumed from the run folder's state."""
    started = time.time()
    ddp = Dist()
    device = pick_device(cfg.train.device, ddp)
    ddp.init(device)
    t = cfg.train
    if t.threads > 0:
        torch.set_num_threads(t.threads)
    seed_everything(t.seed + ddp.rank)
    if t.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = not t.deterministic

    splits = load_data(cfg)
    train_set = pick_split(splits, cfg.data.train_split)
    if cfg.data.val_fraction > 0:
        train_set, val_set = hold_out(train_set, cfg.data.val_fraction, t.seed)
    else:
        val_set = pick_split(splits, cfg.data.val_split)
    classes = train_set.classes
    train_set, set_weight = join_training_sets(train_set, extra_training_faces(cfg, classes), cfg.data.extra_weight)
    test_set = splits.get(cfg.data.test_split)
    val_name = f"{cfg.data.train_split} (held out {cfg.data.val_fraction:g})" if cfg.data.val_fraction > 0 \
        else cfg.data.val_split
    used = {"train": (cfg.data.train_split, train_set), "val": (val_name, val_set)}
    if test_set is not None:
        used["test"] = (cfg.data.test_split, test_set)

    model = build(cfg, len(classes)).to(device)
    if t.channels_last:
        model = model.to(memory_format=torch.channels_last)
    counts = train_set.class_counts()
    weights = class_weights(counts, t.balance_power)
    # Balanced by class across every set (not by set); extra sets drawn extra_weight as often per face.
    draw = weights[train_set.hard_targets().clamp(min=0)].double() if t.balance == "sampler" else None
    if set_weight is not None:
        draw = set_weight if draw is None else draw * set_weight
    sampler = EpochSampler(len(train_set), t.seed, ddp.rank, ddp.world, draw)
    loader = make_loader(train_set, t.batch_size, sampler, cfg.data.workers, device)
    amp = amp_dtype(t.amp, device)
    net = model
    if ddp.world > 1:
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    if t.compile:
        net = torch.compile(net)
    aug_gen = torch.Generator(device=device)
    aug_gen.manual_seed(t.seed * 7919 + ddp.rank)
    run = Run(
        cfg=cfg, ddp=ddp, device=device, out=Path(t.out_dir), train_set=train_set, val_set=val_set,
        test_set=test_set, meta=model_meta(cfg, classes, used), model=model, net=net,
        ema=make_ema(model, t.ema), optimizer=make_optimizer(cfg, model),
        scaler=torch.amp.GradScaler("cuda", enabled=amp == torch.float16), amp=amp,
        plateau=Plateau(cfg.optim.plateau_factor, cfg.optim.plateau_patience, cfg.optim.min_lr / cfg.optim.lr),
        aug_gen=aug_gen, sampler=sampler,
        loader=loader, loss_weight=weights.to(device) if t.balance == "loss" else None,
        steps_per_epoch=len(loader) if t.steps_per_epoch <= 0 else min(len(loader), t.steps_per_epoch),
        data_report=all_reports(splits).lines(), started=started,
    )  # fmt: skip
    for name, ds in (("train", train_set), ("val", val_set)):
        run.say(f"{name}: {describe(ds)}")
    for line in run.data_report:
        run.say(line)
    state_path = run.out / STATE_FILE
    if t.resume and state_path.exists():
        run.resume(torch.load(state_path, map_location="cpu", weights_only=True))
        run.say(f"resuming from {state_path}: epoch {run.epoch} done, best val acc {run.plateau.best:.4f}")
    run.started_epoch = run.epoch
    if ddp.main:
        run.out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False), run.out / "config.yaml")
    run.say(f"training {cfg.model.variant} on {device} x{ddp.world}, {len(classes)} classes, "
            f"{run.steps_per_epoch} steps/epoch, batch {t.batch_size * ddp.world}, amp {amp}")
    return run


def stop_reason(run: Run, epoch: int) -> str | None:
    t, plateau = run.cfg.train, run.plateau
    if t.early_stop > 0 and plateau.best_epoch >= 0 and plateau.since_best(epoch - 1) > t.early_stop:
        return f"early stop: no better val acc for more than {t.early_stop} epochs"
    if t.max_epochs_per_run > 0 and epoch - run.started_epoch >= t.max_epochs_per_run:
        return f"paused after {t.max_epochs_per_run} epochs (run again to resume)"
    return None


def train_epoch(run: Run, epoch: int, progress: bool) -> dict:
    """One pass over the training split: lr schedule, augmentation, forward, backward, step, EMA."""
    cfg = run.cfg
    run.sampler.set_epoch(epoch)
    run.model.train()
    loss_sum, correct, seen = (torch.zeros((), device=run.device) for _ in range(3))
    skipped = torch.zeros((), dtype=torch.long, device=run.device)
    total_steps = run.steps_per_epoch * cfg.train.epochs
    bar = _bar(run.loader, total=run.steps_per_epoch, desc=f"epoch {epoch + 1}/{cfg.train.epochs}") \
        if progress and run.ddp.main else run.loader
    t0, lr = time.time(), cfg.optim.lr
    for i, (images, targets) in enumerate(bar):
        if i >= run.steps_per_epoch:
            break
        lr = lr_at(run.step, cfg.optim, cfg.optim.lr, total_steps, run.plateau.scale)
        for g in run.optimizer.param_groups:
            g["lr"] = lr
        loss, logits, true = train_step(run.net, run.model, run.optimizer, run.scaler, images, targets, cfg,
                                        run.aug_gen, run.amp, run.loss_weight)
        if run.ema is not None:
            run.ema.update_parameters(run.model)
        run.step += 1
        valid = true >= 0
        skipped += (~valid).sum()
        loss_sum += loss * valid.sum()
        correct += (logits.argmax(1) == true)[valid].sum()
        seen += valid.sum()
        if bar is not run.loader and i % 10 == 0:
            bar.set_postfix(loss=f"{loss.item():.3f}", lr=f"{lr:.2e}")
    loss_sum, correct, seen, skipped = run.ddp.sum(torch.stack([loss_sum, correct, seen, skipped.float()]))
    run.skipped += int(skipped.item())
    seconds = time.time() - t0
    return {"train_loss": (loss_sum / seen.clamp(min=1)).item(), "train_acc": (correct / seen.clamp(min=1)).item(),
            "lr": lr, "epoch_s": round(seconds, 1), "img_per_s": round(seen.item() / max(seconds, 1e-9), 1)}


def validate(run: Run, dataset, engine=None, tta: str = "none") -> tuple[dict, torch.Tensor]:
    """Metrics and confusion matrix on `dataset`, each process scoring a shard, through the
    inference engine (by default over the weights being trained, in float32 PyTorch)."""
    from fer_ros.inference.engine import Engine
    from fer_ros.training.evaluate import score

    own = engine is None
    if own:
        engine = Engine(run.scored, run.meta, device=str(run.device), precision="fp32", backend="torch",
                        compile=False, batch_sizes=())
    try:
        shard = range(run.ddp.rank, len(dataset), run.ddp.world)
        cm = score(engine, dataset, run.cfg.train.batch_size * 2, tta, shard).to(run.device)
    finally:
        if own:
            engine.close()
        run.model.train()
    run.ddp.sum(cm)
    return summarize(cm.cpu(), run.classes), cm.cpu()


def end_epoch(run: Run, epoch: int, stats: dict, val: dict) -> None:
    """Record the epoch; on the main process keep the best checkpoint and write the resumable state."""
    improved = run.plateau.step(val["accuracy"], epoch)
    run.epoch = epoch + 1
    row = {"epoch": epoch + 1, "train_loss": stats["train_loss"], "train_acc": stats["train_acc"],
           "val_acc": val["accuracy"], "val_macro_f1": val["macro_f1"], "lr": stats["lr"],
           "epoch_s": stats["epoch_s"], "img_per_s": stats["img_per_s"]}
    run.history.append(row)
    run.say(f"epoch {epoch + 1}: loss {row['train_loss']:.4f} train acc {row['train_acc']:.4f} "
            f"val acc {row['val_acc']:.4f} macro-F1 {row['val_macro_f1']:.4f} lr {row['lr']:.2e} "
            f"{row['img_per_s']:.0f} img/s{'  *best*' if improved else ''}")
    if run.ddp.main:
        if improved:
            run.meta.metrics = {"epoch": epoch + 1, "val": _brief(val)}
            save_checkpoint(run.out / BEST_FILE, run.scored, run.meta, dtype=SAVE_DTYPES[run.cfg.train.save_dtype])
        atomic_save(run.state(), run.out / STATE_FILE)
        atomic_write_text(json.dumps(run.history, indent=1), run.out / "history.json")
    run.ddp.barrier()


def train(cfg: Config, progress: bool = True) -> dict:
    """Runs (or resumes) a training run; returns the summary (also written to summary.json)."""
    check(cfg)  # every setting, before any data is read
    run = start(cfg)
    reason = f"{cfg.train.epochs} epochs"
    for epoch in range(run.epoch, cfg.train.epochs):
        # Stop early (no better validation accuracy for a while), or pause a time-sliced run.
        if why := stop_reason(run, epoch):
            reason = why
            break
        # One pass over the (shuffled or class-balanced) training split.
        stats = train_epoch(run, epoch, progress)
        # Score the weights we would ship, through the inference engine, on the validation split.
        val, _ = validate(run, run.val_set)
        # Keep the best checkpoint, save the resumable state, log the epoch.
        end_epoch(run, epoch, stats, val)
    summary = finish(run, reason)
    run.ddp.close()
    return summary


def _brief(metrics: dict) -> dict:
    return {k: metrics[k] for k in ("samples", "accuracy", "macro_f1", "mean_recall")} | {
        "per_class_recall": {c: v["recall"] for c, v in metrics["per_class"].items()}}


def finish(run: Run, reason: str) -> dict:
    """Scores the best checkpoint on the test split with the node's back-end, writes summary.json and
    the plots, prints a summary."""
    cfg, out = run.cfg, run.out
    best_path = out / BEST_FILE
    summary = {"stopped": reason, "epochs_run": len(run.history), "best_epoch": run.plateau.best_epoch + 1,
               "best_val_acc": run.plateau.best, "unreadable_images_skipped": run.skipped,
               "seconds": round(time.time() - run.started, 1), "checkpoint": str(best_path),
               "data_report": run.data_report}
    if run.test_set is not None and best_path.exists() and len(run.test_set):
        from fer_ros.inference.engine import Engine

        # The deployed model as the node runs it (ONNX Runtime on a CPU, half precision on a GPU).
        with Engine.from_checkpoint(best_path, device=str(run.device)) as engine:
            test, cm = validate(run, run.test_set, engine, cfg.train.tta)
            summary["test"] = _brief(test) | {"backend": engine.backend, "tta": cfg.train.tta}
            if cfg.train.tta != "none":  # the plain figure beside the TTA one
                plain, _ = validate(run, run.test_set, engine)
                summary["test"]["no_tta"] = {k: plain[k] for k in ("accuracy", "macro_f1")}
        if run.ddp.main:
            atomic_write_text(json.dumps({"classes": list(run.classes), "matrix": cm.tolist()}),
                              out / "confusion_test.json")
            plot_confusion(cm, run.classes, out / "confusion_test.png", f"{cfg.data.format} {cfg.data.test_split}")
    if run.ddp.main:
        atomic_write_text(json.dumps(summary, indent=1), out / "summary.json")
        if run.history:
            plot_curves(run.history, out / "curves.png")
        print(f"\n{reason}; {len(run.history)} epochs in {summary['seconds'] / 60:.1f} min")
        print(f"best epoch {summary['best_epoch']}: val acc {run.plateau.best:.4f} -> {best_path}")
        if "test" in summary:
            t = summary["test"]
            print(f"test ({cfg.data.test_split}, {t['samples']} images, {t['backend']}): acc {t['accuracy']:.4f} "
                  f"macro-F1 {t['macro_f1']:.4f}" + (f" with TTA {t['tta']}; without: acc {t['no_tta']['accuracy']:.4f} "
                                                    f"macro-F1 {t['no_tta']['macro_f1']:.4f}" if "no_tta" in t else ""))
        if summary["unreadable_images_skipped"]:
            print(f"unreadable images skipped: {summary['unreadable_images_skipped']}")
        for line in run.data_report:  # repeated at the end, where a person looks
            print(line)
    return summary


def _bar(iterable, **kwargs):
    from tqdm import tqdm

    return tqdm(iterable, leave=False, dynamic_ncols=True, file=sys.stderr, **kwargs)


# ---------------------------------------------------------------------------------------------
# Command line.


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default="fer2013", help="bundled config name (fer2013, affectnet8, affectnet7, "
                        "ferplus, rafdb, synthetic) or a YAML file (default fer2013)")
    parser.add_argument("--data", help="data set file or folder (data.root)")
    parser.add_argument("--format", help="data set format (data.format), e.g. fer2013, affectnet, auto")
    parser.add_argument("--pretrained", help="local ImageNet MiT weights for the encoder (model.pretrained)")
    parser.add_argument("--out", help="output folder (train.out_dir)")
    parser.add_argument("--epochs", type=int, help="train.epochs")
    parser.add_argument("--batch-size", type=int, help="train.batch_size (per process)")
    parser.add_argument("--lr", type=float, help="optim.lr")
    parser.add_argument("--device", help="auto, cpu, cuda or cuda:N (train.device)")
    parser.add_argument("--workers", type=int, help="DataLoader workers (data.workers)")
    parser.add_argument("--seed", type=int, help="train.seed")
    parser.add_argument("--no-resume", action="store_true", help="start over even if the output folder has a state")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override any config value, e.g. --set optim.name=adamw --set optim.schedule=cosine")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


_FLAGS = {"data": "data.root", "format": "data.format", "pretrained": "model.pretrained", "out": "train.out_dir",
          "epochs": "train.epochs", "batch_size": "train.batch_size", "lr": "optim.lr", "device": "train.device",
          "workers": "data.workers", "seed": "train.seed"}


def config_from_args(args: argparse.Namespace) -> Config:
    overrides = [f"{key}={getattr(args, flag)}" for flag, key in _FLAGS.items() if getattr(args, flag) is not None]
    if args.no_resume:
        overrides.append("train.resume=false")
    return load_config(args.config, overrides + list(args.set))


def run(args: argparse.Namespace) -> int:
    train(config_from_args(args), progress=not args.no_progress)
    return 0


def main(argv=None) -> int:
    """Entry point for `torchrun -m fer_ros.training.train ...` (same options and errors as `fer-ros train`)."""
    from fer_ros.cli import main as cli_main

    return cli_main(["train", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
