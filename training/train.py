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
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
import yaml
from torch.utils.data import DataLoader, Sampler

from fer_ros.atomic import atomic_file, atomic_write_text
from fer_ros.training.augment import prepare_batch
from fer_ros.training.config import Config, load_config
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
from fer_ros.training.metrics import confusion_matrix, plot_confusion, plot_curves, summarize

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
    raise ValueError(f"unknown schedule {cfg.schedule!r}; choose plateau, cosine or constant")


class Plateau:
    """The paper's rule: scale the lr by `factor` when validation accuracy has not improved for
    `patience` epochs; also counts epochs since the best one, for early stopping."""

    def __init__(self, factor: float, patience: int):
        self.factor, self.patience = factor, patience
        self.best, self.best_epoch, self.bad_epochs, self.scale = -1.0, -1, 0, 1.0

    def step(self, value: float, epoch: int) -> bool:
        """Records an epoch's validation accuracy; True when it is the best so far."""
        if value > self.best:
            self.best, self.best_epoch, self.bad_epochs = value, epoch, 0
            return True
        self.bad_epochs += 1
        if self.patience > 0 and self.bad_epochs % self.patience == 0:  # every `patience` bad epochs
            self.scale *= self.factor
        return False

    def since_best(self, epoch: int) -> int:
        return epoch - self.best_epoch

    def state_dict(self) -> dict:
        return {"best": self.best, "best_epoch": self.best_epoch, "bad_epochs": self.bad_epochs, "scale": self.scale}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.best_epoch = float(state["best"]), int(state["best_epoch"])
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
    if choice not in ("auto", "true", "false"):
        raise ValueError(f"data.in_memory must be auto, true or false, got {d.in_memory!r}")
    for name, ds in splits.items():
        if isinstance(ds, ImageFileDataset) and (choice == "true" or (choice == "auto" and ds.nbytes() <= IN_MEMORY_LIMIT)):
            splits[name] = ds.to_memory(progress=sys.stderr.isatty())
    return splits


def build(cfg: Config, num_classes: int):
    from fer_ros.model import build_model

    model = build_model(cfg.model.variant, num_classes, drop_rate=cfg.model.drop_rate,
                        drop_path_rate=cfg.model.drop_path_rate)
    if cfg.model.pretrained:
        from fer_ros.weights import load_mit_weights

        report = load_mit_weights(model, cfg.model.pretrained)
        print(f"encoder weights: {cfg.model.pretrained}: {report}")
    return model


def make_ema(model: torch.nn.Module, decay: float):
    """A moving average of `model`'s weights (torch's AveragedModel), or None when decay is 0."""
    if decay <= 0:
        return None
    if not decay < 1:
        raise ValueError(f"train.ema must be in [0, 1), got {decay}")
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


def make_optimizer(cfg: Config, model: torch.nn.Module) -> torch.optim.Optimizer:
    o = cfg.optim
    # No weight decay on norms and biases (the usual rule for transformers).
    decay = [p for n, p in model.named_parameters() if p.ndim > 1 and p.requires_grad]
    no_decay = [p for n, p in model.named_parameters() if p.ndim <= 1 and p.requires_grad]
    groups = [{"params": decay, "weight_decay": o.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if o.name == "sgd":
        return torch.optim.SGD(groups, lr=o.lr, momentum=o.momentum)
    if o.name == "adamw":
        return torch.optim.AdamW(groups, lr=o.lr, betas=tuple(o.betas))
    raise ValueError(f"unknown optimizer {o.name!r}; choose sgd or adamw")


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


# ---------------------------------------------------------------------------------------------
# Evaluation during training (the full report with TTA lives in fer_ros.training.evaluate).


@torch.no_grad()
def evaluate(model, dataset, cfg: Config, device: torch.device, ddp: Dist, amp: torch.dtype | None,
             flip: bool = False) -> tuple[dict, torch.Tensor]:
    """Metrics and confusion matrix of `model` on `dataset`, each process scoring a shard."""
    model.eval()
    n = len(dataset)
    shard = list(range(ddp.rank, n, ddp.world))
    loader = make_loader(dataset, cfg.train.batch_size * 2, shard, cfg.data.workers, device)
    k = len(dataset.classes)
    cm = torch.zeros(k, k, dtype=torch.long, device=device)
    for images, targets in loader:
        x = prepare_batch(images.to(device, non_blocking=True), size=cfg.data.input_size, color=cfg.data.color,
                          mean=cfg.data.mean, std=cfg.data.std, channels_last=cfg.train.channels_last)
        with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
            logits = model(x).float()
            if flip:
                logits = logits.softmax(1) + model(x.flip(3)).float().softmax(1)
        targets = targets.to(device)
        true = targets.argmax(1) if targets.dim() == 2 else targets
        cm += confusion_matrix(true, logits.argmax(1), k)
    ddp.sum(cm)
    model.train()
    return summarize(cm.cpu(), dataset.classes), cm.cpu()


# ---------------------------------------------------------------------------------------------
# The run.


def export_best(path: Path, model, cfg: Config, classes, metrics: dict) -> None:
    from fer_ros.checkpoint import ModelMeta, save_checkpoint

    meta = ModelMeta(
        labels=list(classes),
        arch={"variant": cfg.model.variant, "num_classes": len(classes)},
        input_size=cfg.data.input_size,
        color=cfg.data.color,
        mean=tuple(cfg.data.mean),
        std=tuple(cfg.data.std),
        dataset=f"{cfg.data.format}:{Path(cfg.data.root).name if cfg.data.root else ''}",
        train_config=cfg.to_dict(),
        metrics=metrics,
    )
    dtypes = {"float32": None, "float16": torch.float16, "bfloat16": torch.bfloat16}
    if cfg.train.save_dtype not in dtypes:
        raise ValueError(f"train.save_dtype must be one of {', '.join(dtypes)}, got {cfg.train.save_dtype!r}")
    save_checkpoint(path, model, meta, dtype=dtypes[cfg.train.save_dtype])


def train(cfg: Config, progress: bool = True) -> dict:
    """Runs (or resumes) a training run; returns the summary (also written to summary.json)."""
    ddp = Dist()
    device = pick_device(cfg.train.device, ddp)
    ddp.init(device)
    t_start = time.time()
    out = Path(cfg.train.out_dir)
    say = print if ddp.main else (lambda *a, **k: None)
    if cfg.train.threads > 0:
        torch.set_num_threads(cfg.train.threads)
    seed_everything(cfg.train.seed + ddp.rank)
    if cfg.train.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = not cfg.train.deterministic

    splits = load_data(cfg)
    train_set = pick_split(splits, cfg.data.train_split)
    if cfg.data.val_fraction > 0:
        train_set, val_set = hold_out(train_set, cfg.data.val_fraction, cfg.train.seed)
    else:
        val_set = pick_split(splits, cfg.data.val_split)
    test_set = splits.get(cfg.data.test_split)
    classes = train_set.classes
    for name, ds in (("train", train_set), ("val", val_set)):
        say(f"{name}: {describe(ds)}")
    data_report = all_reports(splits).lines()
    for line in data_report:
        say(line)

    model = build(cfg, len(classes)).to(device)
    if cfg.train.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = make_optimizer(cfg, model)
    ema = make_ema(model, cfg.train.ema)
    plateau = Plateau(cfg.optim.plateau_factor, cfg.optim.plateau_patience)
    aug_gen = torch.Generator(device=device)
    aug_gen.manual_seed(cfg.train.seed * 7919 + ddp.rank)
    start_epoch, step, history = 0, 0, []

    state_path = out / STATE_FILE
    if cfg.train.resume and state_path.exists():
        state = torch.load(state_path, map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if ema is not None and "ema" in state:
            ema.load_state_dict(state["ema"])
        plateau.load_state_dict(state["plateau"])
        start_epoch, step, history = int(state["epoch"]), int(state["step"]), list(state["history"])
        if ddp.main:
            set_rng_state(state["rng"], aug_gen)
        else:  # only rank 0's generators are saved; the others restart their own streams
            torch.manual_seed(cfg.train.seed + ddp.rank + 1000 * start_epoch)
            aug_gen.manual_seed(cfg.train.seed * 7919 + ddp.rank + 1000 * start_epoch)
        say(f"resuming from {state_path}: epoch {start_epoch} done, best val acc {plateau.best:.4f}")

    counts = train_set.class_counts()
    weights = None
    power = cfg.train.balance_power
    if cfg.train.balance == "sampler":
        weights = class_weights(counts, power)[train_set.hard_targets().clamp(min=0)].double()
    elif cfg.train.balance not in ("none", "loss"):
        raise ValueError(f"unknown train.balance {cfg.train.balance!r}; choose none, sampler or loss")
    loss_weight = class_weights(counts, power).to(device) if cfg.train.balance == "loss" else None
    sampler = EpochSampler(len(train_set), cfg.train.seed, ddp.rank, ddp.world, weights)
    loader = make_loader(train_set, cfg.train.batch_size, sampler, cfg.data.workers, device)
    steps_per_epoch = len(loader) if cfg.train.steps_per_epoch <= 0 else min(len(loader), cfg.train.steps_per_epoch)
    total_steps = steps_per_epoch * cfg.train.epochs

    amp = amp_dtype(cfg.train.amp, device)
    scaler = torch.amp.GradScaler("cuda", enabled=amp == torch.float16)
    net = model
    if ddp.world > 1:
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    if cfg.train.compile:
        net = torch.compile(net)

    if ddp.main:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False), out / "config.yaml")
    say(f"training {cfg.model.variant} on {device} x{ddp.world}, {len(classes)} classes, "
        f"{steps_per_epoch} steps/epoch, batch {cfg.train.batch_size * ddp.world}, amp {amp}")

    skipped = torch.zeros((), dtype=torch.long, device=device)
    stop_reason, lr = f"{cfg.train.epochs} epochs", cfg.optim.lr
    bar_factory = _bar if (progress and ddp.main) else (lambda it, **k: it)
    for epoch in range(start_epoch, cfg.train.epochs):
        if cfg.train.early_stop > 0 and plateau.best_epoch >= 0 and plateau.since_best(epoch - 1) >= cfg.train.early_stop:
            stop_reason = f"early stop: no better val acc for {cfg.train.early_stop} epochs"
            break
        if cfg.train.max_epochs_per_run > 0 and epoch - start_epoch >= cfg.train.max_epochs_per_run:
            stop_reason = f"paused after {cfg.train.max_epochs_per_run} epochs (run again to resume)"
            break
        sampler.set_epoch(epoch)
        model.train()
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device)
        seen = torch.zeros((), device=device)
        t0 = time.time()
        bar = bar_factory(loader, total=steps_per_epoch, desc=f"epoch {epoch + 1}/{cfg.train.epochs}")
        for i, (images, targets) in enumerate(bar):
            if i >= steps_per_epoch:
                break
            lr = lr_at(step, cfg.optim, cfg.optim.lr, total_steps, plateau.scale)
            for g in optimizer.param_groups:
                g["lr"] = lr
            loss, logits, true = train_step(net, model, optimizer, scaler, images, targets, cfg, aug_gen, amp,
                                            loss_weight)
            if ema is not None:
                ema.update_parameters(model)
            skipped += (true < 0).sum()
            step += 1
            valid = true >= 0
            loss_sum += loss.detach() * valid.sum()
            correct += (logits.argmax(1) == true)[valid].sum()
            seen += valid.sum()
            if progress and ddp.main and i % 10 == 0 and hasattr(bar, "set_postfix"):
                bar.set_postfix(loss=f"{loss.item():.3f}", lr=f"{lr:.2e}")
        stats = ddp.sum(torch.stack([loss_sum, correct, seen]))
        train_time = time.time() - t0
        scored = model if ema is None else ema.module
        val, _ = evaluate(scored, val_set, cfg, device, ddp, amp, flip=cfg.train.eval_flip)
        improved = plateau.step(val["accuracy"], epoch)
        row = {"epoch": epoch + 1, "train_loss": (stats[0] / stats[2].clamp(min=1)).item(),
               "train_acc": (stats[1] / stats[2].clamp(min=1)).item(), "val_acc": val["accuracy"],
               "val_macro_f1": val["macro_f1"], "lr": lr, "epoch_s": round(train_time, 1),
               "img_per_s": round(stats[2].item() / max(train_time, 1e-9), 1)}
        history.append(row)
        say(f"epoch {epoch + 1}: loss {row['train_loss']:.4f} train acc {row['train_acc']:.4f} "
            f"val acc {row['val_acc']:.4f} macro-F1 {row['val_macro_f1']:.4f} lr {lr:.2e} "
            f"{row['img_per_s']:.0f} img/s{'  *best*' if improved else ''}")
        if ddp.main:
            if improved:
                export_best(out / BEST_FILE, scored, cfg, classes, {"epoch": epoch + 1, "val": _brief(val)})
            atomic_save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                         **({"ema": ema.state_dict()} if ema is not None else {}),
                         "plateau": plateau.state_dict(), "rng": rng_state(aug_gen), "epoch": epoch + 1, "step": step,
                         "history": history, "config": cfg.to_dict()}, state_path)
            atomic_write_text(json.dumps(history, indent=1), out / "history.json")
        ddp.barrier()

    summary = finish(cfg, out, ddp, device, amp, history, plateau, val_set, test_set, classes,
                     skipped, stop_reason, time.time() - t_start, data_report)
    ddp.close()
    return summary


def _brief(metrics: dict) -> dict:
    return {k: metrics[k] for k in ("samples", "accuracy", "macro_f1", "mean_recall")} | {
        "per_class_recall": {c: v["recall"] for c, v in metrics["per_class"].items()}}


def finish(cfg, out, ddp, device, amp, history, plateau, val_set, test_set, classes, skipped, stop_reason,
           seconds, data_report) -> dict:
    """Scores the best checkpoint on the test split, writes summary.json and the plots, prints a summary."""
    ddp.sum(skipped)
    summary = {"stopped": stop_reason, "epochs_run": len(history), "best_epoch": plateau.best_epoch + 1,
               "best_val_acc": plateau.best, "unreadable_images_skipped": int(skipped.item()),
               "seconds": round(seconds, 1), "checkpoint": str(out / BEST_FILE), "data_report": data_report}
    best_path = out / BEST_FILE
    if test_set is not None and best_path.exists() and len(test_set):
        from fer_ros.checkpoint import load_checkpoint

        best, _ = load_checkpoint(best_path, map_location=device)
        if cfg.train.channels_last:
            best = best.to(memory_format=torch.channels_last)
        test, cm = evaluate(best, test_set, cfg, device, ddp, amp, flip=cfg.train.eval_flip)
        summary["test"] = _brief(test)
        if ddp.main:
            atomic_write_text(json.dumps({"classes": list(classes), "matrix": cm.tolist()}), out / "confusion_test.json")
            plot_confusion(cm, classes, out / "confusion_test.png", f"{cfg.data.format} {cfg.data.test_split}")
    if ddp.main:
        atomic_write_text(json.dumps(summary, indent=1), out / "summary.json")
        if history:
            plot_curves(history, out / "curves.png")
        print(f"\n{stop_reason}; {len(history)} epochs in {seconds / 60:.1f} min")
        print(f"best epoch {summary['best_epoch']}: val acc {plateau.best:.4f} -> {best_path}")
        if "test" in summary:
            t = summary["test"]
            print(f"test ({cfg.data.test_split}, {t['samples']} images): acc {t['accuracy']:.4f} "
                  f"macro-F1 {t['macro_f1']:.4f}")
        if summary["unreadable_images_skipped"]:
            print(f"unreadable images skipped: {summary['unreadable_images_skipped']}")
        for line in data_report:  # repeated at the end, where a person looks
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
    try:
        cfg = config_from_args(args)
    except (ValueError, FileNotFoundError) as e:
        print(f"fer-ros train: {e}", file=sys.stderr)
        return 2
    if cfg.data.format != "synthetic" and not cfg.data.root:
        print("fer-ros train: no data set given (--data PATH)", file=sys.stderr)
        return 2
    try:
        train(cfg, progress=not args.no_progress)
    except (ValueError, FileNotFoundError) as e:
        print(f"fer-ros train: {e}", file=sys.stderr)
        return 1
    return 0


def main(argv=None) -> int:
    """Entry point for `torchrun -m fer_ros.training.train ...` (same options as `fer-ros train`)."""
    parser = argparse.ArgumentParser(prog="fer-ros train", description="Train a facial expression model.")
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
