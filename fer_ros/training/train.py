"""`fer-ros train`: train a MiT-fusion expression classifier, on one device or many (torchrun).

    fer-ros train --config fer2013 --data /data/fer2013.csv --pretrained mit_b0.pth --out
    runs/fer2013
    torchrun --nproc-per-node 4 -m fer_ros.training.train --config affectnet8 --data
    /data/affectnet ...
    fer-ros train --config fer2013 --set optim.lr=3e-4 --set train.batch_size=64

What a run leaves in its output folder:
  best.safetensors   the best epoch's model (validation accuracy) in the fer_ros checkpoint format,
                     with labels, preprocessing, the resolved config and its metrics
  last_state.pt      everything needed to resume (model, optimizer, schedule, epoch, RNG states);
                     written atomically after every epoch, so a crash loses at most the epoch in
                     flight
  config.yaml        the resolved configuration
  history.json       per-epoch loss, accuracy, macro-F1, learning rate; curves.png the same as a
  plot
  summary.json       best epoch, its validation metrics, test metrics, data set report

Running the same command again resumes from last_state.pt (set train.resume=false to start over).

This file is the loop and its entry; the pieces it calls live beside it: `schedule` (lr_at, the
plateau rule), `sampling` (class weights, sampler, loader), `splits` (which faces a run uses),
`distributed` (torchrun processes, device, AMP), `build` (model, optimizer, EMA, checkpoint
metadata) and `runstate` (the run and its resumable state).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import yaml

from fer_ros.atomic import atomic_write_text
from fer_ros.metrics import plot_confusion, plot_curves, summarize
from fer_ros.model.checkpoint import save_checkpoint
from fer_ros.training.augment import prepare_batch
from fer_ros.training.build import SAVE_DTYPES, build, make_ema, make_optimizer, model_meta
from fer_ros.training.config import Config, check, load_config
from fer_ros.training.datasets import all_reports, describe
from fer_ros.training.distributed import Dist, amp_dtype, configure_torch, pick_device
from fer_ros.training.runstate import STATE_FILE, Run, atomic_save
from fer_ros.training.sampling import EpochSampler, class_weights, draw_weights, make_loader
from fer_ros.training.schedule import Plateau, lr_at
from fer_ros.training.splits import training_splits

BEST_FILE = "best.safetensors"


def train_step(
    net, model, optimizer, scaler, images, targets, cfg: Config, aug_gen, amp, loss_weight=None
):
    """One optimizer step on a uint8 batch: to the device, augment, forward, loss, backward, clip,
    step.

    Returns (loss, logits, true class per sample (-1: unusable image, ignored by the loss)).
    """
    device = next(model.parameters()).device
    images = images.to(device, non_blocking=True)
    targets = targets.to(device, non_blocking=True)
    x = prepare_batch(
        images,
        size=cfg.data.input_size,
        color=cfg.data.color,
        mean=cfg.data.mean,
        std=cfg.data.std,
        face_norm=cfg.data.face_norm,
        augment=cfg.augment,
        generator=aug_gen,
        channels_last=cfg.train.channels_last,
    )
    true = targets.argmax(1) if targets.dim() == 2 else targets
    if cfg.train.mixup > 0:
        x, targets = mixup(x, targets, model.num_classes, cfg.train.mixup, aug_gen)
    with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
        logits = net(x)
    logits = logits.float()
    if targets.dim() == 2:  # vote distributions (FER+ probability targets)
        loss = F.cross_entropy(
            logits, targets, weight=loss_weight, label_smoothing=cfg.train.label_smoothing
        )
    else:
        loss = F.cross_entropy(
            logits,
            targets,
            weight=loss_weight,
            ignore_index=-1,
            label_smoothing=cfg.train.label_smoothing,
        )
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    if cfg.optim.grad_clip > 0:
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)
    scaler.step(optimizer)
    scaler.update()
    return loss.detach(), logits.detach(), true


def mixup(
    x: torch.Tensor, targets: torch.Tensor, classes: int, alpha: float, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mixup (Zhang et al. 2018): each input blended with another of the batch, weight
    lam ~ Beta(alpha, alpha), and the target distributions alike. Class indices become one-hot
    rows; an unusable face (-1) has an all-zero row, so it adds nothing to the loss. Drawn from the
    augmentation generator, so a resumed run mixes as the uninterrupted one would."""
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator, device=generator.device))
    lam = float(np.random.default_rng(seed).beta(alpha, alpha))
    perm = torch.randperm(x.shape[0], generator=generator, device=generator.device).to(x.device)
    if targets.dim() == 1:
        usable = (targets >= 0).float().unsqueeze(1)
        targets = F.one_hot(targets.clamp(min=0), classes).float() * usable
    return lam * x + (1 - lam) * x[perm], lam * targets + (1 - lam) * targets[perm]


def start(cfg: Config) -> Run:
    """Processes, device, data, model, optimizer and loader; resumed from the run folder's
    state."""
    started = time.time()
    ddp = Dist()
    device = pick_device(cfg.train.device, ddp)
    ddp.init(device)
    t = cfg.train
    configure_torch(t, device, ddp.rank)
    splits, used, set_weight = training_splits(cfg)
    train_set, classes = used["train"][1], used["train"][1].classes
    model = build(cfg, len(classes)).to(device)
    if t.channels_last:
        model = model.to(memory_format=torch.channels_last)
    weights = class_weights(train_set.class_counts(), t.balance_power)
    sampler = EpochSampler(
        len(train_set),
        t.seed,
        ddp.rank,
        ddp.world,
        draw_weights(train_set, weights, set_weight, t.balance),
    )
    loader = make_loader(train_set, t.batch_size, sampler, cfg.data.workers, device)
    amp = amp_dtype(t.amp, device)
    net = model
    if ddp.world > 1:
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    if t.compile:
        net = torch.compile(net)
    aug_gen = torch.Generator(device=device)
    aug_gen.manual_seed(t.seed * 7919 + ddp.rank)
    run = Run(
        cfg=cfg,
        ddp=ddp,
        device=device,
        out=Path(t.out_dir),
        train_set=train_set,
        val_set=used["val"][1],
        test_set=used.get("test", (None, None))[1],
        meta=model_meta(cfg, classes, used),
        model=model,
        net=net,
        ema=make_ema(model, t.ema),
        optimizer=make_optimizer(cfg, model),
        scaler=torch.amp.GradScaler("cuda", enabled=amp == torch.float16),
        amp=amp,
        plateau=Plateau(
            cfg.optim.plateau_factor, cfg.optim.plateau_patience, cfg.optim.min_lr / cfg.optim.lr
        ),
        aug_gen=aug_gen,
        sampler=sampler,
        loader=loader,
        loss_weight=weights.to(device) if t.balance == "loss" else None,
        steps_per_epoch=len(loader)
        if t.steps_per_epoch <= 0
        else min(len(loader), t.steps_per_epoch),
        data_report=all_reports(splits).lines(),
        started=started,
    )
    resume_or_begin(run)
    return run


def resume_or_begin(run: Run) -> None:
    """Reads the run folder's state when there is one (and train.resume), writes config.yaml, says
    so."""
    cfg, t = run.cfg, run.cfg.train
    for name, ds in (("train", run.train_set), ("val", run.val_set)):
        run.say(f"{name}: {describe(ds)}")
    for line in run.data_report:
        run.say(line)
    state_path = run.out / STATE_FILE
    if t.resume and state_path.exists():
        run.resume(torch.load(state_path, map_location="cpu", weights_only=True))
        run.say(
            f"resuming from {state_path}: epoch {run.epoch} done, best val acc "
            f"{run.plateau.best:.4f}"
        )
    run.started_epoch = run.epoch
    if run.ddp.main:
        run.out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False), run.out / "config.yaml")
    run.say(
        f"training {cfg.model.variant} on {run.device} x{run.ddp.world}, {len(run.classes)} "
        "classes, "
        f"{run.steps_per_epoch} steps/epoch, batch {t.batch_size * run.ddp.world}, amp {run.amp}"
    )


def stop_reason(run: Run, epoch: int) -> str | None:
    t, plateau = run.cfg.train, run.plateau
    if (
        t.early_stop > 0
        and plateau.best_epoch >= 0
        and plateau.since_best(epoch - 1) > t.early_stop
    ):
        return f"early stop: no better val acc for more than {t.early_stop} epochs"
    if t.max_epochs_per_run > 0 and epoch - run.started_epoch >= t.max_epochs_per_run:
        return f"paused after {t.max_epochs_per_run} epochs (run again to resume)"
    return None


def train_epoch(run: Run, epoch: int, progress: bool) -> dict:
    """One pass over the training split: lr schedule, augmentation, forward, backward, step,
    EMA."""
    cfg = run.cfg
    run.sampler.set_epoch(epoch)
    run.model.train()
    loss_sum, correct, seen = (torch.zeros((), device=run.device) for _ in range(3))
    skipped = torch.zeros((), dtype=torch.long, device=run.device)
    total_steps = run.steps_per_epoch * cfg.train.epochs
    bar = (
        _bar(run.loader, total=run.steps_per_epoch, desc=f"epoch {epoch + 1}/{cfg.train.epochs}")
        if progress and run.ddp.main
        else run.loader
    )
    t0, lr = time.time(), cfg.optim.lr
    for i, (images, targets) in enumerate(bar):
        if i >= run.steps_per_epoch:
            break
        lr = lr_at(run.step, cfg.optim, cfg.optim.lr, total_steps, run.plateau.scale)
        for g in run.optimizer.param_groups:
            g["lr"] = lr
        loss, logits, true = train_step(
            run.net,
            run.model,
            run.optimizer,
            run.scaler,
            images,
            targets,
            cfg,
            run.aug_gen,
            run.amp,
            run.loss_weight,
        )
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
    loss_sum, correct, seen, skipped = run.ddp.sum(
        torch.stack([loss_sum, correct, seen, skipped.float()])
    )
    run.skipped += int(skipped.item())
    seconds = time.time() - t0
    return {
        "train_loss": (loss_sum / seen.clamp(min=1)).item(),
        "train_acc": (correct / seen.clamp(min=1)).item(),
        "lr": lr,
        "epoch_s": round(seconds, 1),
        "img_per_s": round(seen.item() / max(seconds, 1e-9), 1),
    }


def validate(run: Run, dataset, engine=None, tta: str = "none") -> tuple[dict, torch.Tensor]:
    """Metrics and confusion matrix on `dataset`, each process scoring a shard, through the
    inference engine (by default over the weights being trained, in float32 PyTorch)."""
    from fer_ros.inference.engine import Engine
    from fer_ros.training.evaluate import confusion

    own = engine is None
    if own:
        engine = Engine(
            run.shipped,
            run.meta,
            device=str(run.device),
            precision="fp32",
            backend="torch",
            compile=False,
            batch_sizes=(),
        )
    try:
        shard = range(run.ddp.rank, len(dataset), run.ddp.world)
        cm = confusion(engine, dataset, run.cfg.train.batch_size * 2, tta, shard).to(run.device)
    finally:
        if own:
            engine.close()
        run.model.train()
    run.ddp.sum(cm)
    return summarize(cm.cpu(), run.classes), cm.cpu()


def end_epoch(run: Run, epoch: int, stats: dict, val: dict) -> None:
    """Record the epoch; on the main process keep the best checkpoint and write the resumable
    state."""
    improved = run.plateau.step(val["accuracy"], epoch)
    run.epoch = epoch + 1
    row = {
        "epoch": epoch + 1,
        "train_loss": stats["train_loss"],
        "train_acc": stats["train_acc"],
        "val_acc": val["accuracy"],
        "val_macro_f1": val["macro_f1"],
        "lr": stats["lr"],
        "epoch_s": stats["epoch_s"],
        "img_per_s": stats["img_per_s"],
    }
    run.history.append(row)
    run.say(
        f"epoch {epoch + 1}: loss {row['train_loss']:.4f} train acc {row['train_acc']:.4f} "
        f"val acc {row['val_acc']:.4f} macro-F1 {row['val_macro_f1']:.4f} lr {row['lr']:.2e} "
        f"{row['img_per_s']:.0f} img/s{'  *best*' if improved else ''}"
    )
    if run.ddp.main:
        if improved:
            run.meta.metrics = {"epoch": epoch + 1, "val": _brief(val)}
            save_checkpoint(
                run.out / BEST_FILE,
                run.shipped,
                run.meta,
                dtype=SAVE_DTYPES[run.cfg.train.save_dtype],
            )
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
        "per_class_recall": {c: v["recall"] for c, v in metrics["per_class"].items()}
    }


def finish(run: Run, reason: str) -> dict:
    """Scores the best checkpoint on the test split with the node's back-end, writes summary.json
    and the plots, prints a summary."""
    cfg, out = run.cfg, run.out
    best_path = out / BEST_FILE
    summary = {
        "stopped": reason,
        "epochs_run": len(run.history),
        "best_epoch": run.plateau.best_epoch + 1,
        "best_val_acc": run.plateau.best,
        "unreadable_images_skipped": run.skipped,
        "seconds": round(time.time() - run.started, 1),
        "checkpoint": str(best_path),
        "data_report": run.data_report,
    }
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
            atomic_write_text(
                json.dumps({"classes": list(run.classes), "matrix": cm.tolist()}),
                out / "confusion_test.json",
            )
            plot_confusion(
                cm,
                run.classes,
                out / "confusion_test.png",
                f"{cfg.data.format} {cfg.data.test_split}",
            )
    if run.ddp.main:
        atomic_write_text(json.dumps(summary, indent=1), out / "summary.json")
        if run.history:
            plot_curves(run.history, out / "curves.png")
        print(f"\n{reason}; {len(run.history)} epochs in {summary['seconds'] / 60:.1f} min")
        print(f"best epoch {summary['best_epoch']}: val acc {run.plateau.best:.4f} -> {best_path}")
        if "test" in summary:
            t = summary["test"]
            print(
                f"test ({cfg.data.test_split}, {t['samples']} images, {t['backend']}): acc "
                f"{t['accuracy']:.4f} "
                f"macro-F1 {t['macro_f1']:.4f}"
                + (
                    f" with TTA {t['tta']}; without: acc {t['no_tta']['accuracy']:.4f} "
                    f"macro-F1 {t['no_tta']['macro_f1']:.4f}"
                    if "no_tta" in t
                    else ""
                )
            )
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
    parser.add_argument(
        "--config",
        default="fer2013",
        help="bundled config name (fer2013, affectnet8, affectnet7, "
        "ferplus, rafdb, synthetic) or a YAML file (default fer2013)",
    )
    parser.add_argument("--data", help="data set file or folder (data.root)")
    parser.add_argument(
        "--format", help="data set format (data.format), e.g. fer2013, affectnet, auto"
    )
    parser.add_argument(
        "--pretrained", help="local ImageNet MiT weights for the encoder (model.pretrained)"
    )
    parser.add_argument("--out", help="output folder (train.out_dir)")
    parser.add_argument("--epochs", type=int, help="train.epochs")
    parser.add_argument("--batch-size", type=int, help="train.batch_size (per process)")
    parser.add_argument("--lr", type=float, help="optim.lr")
    parser.add_argument("--device", help="auto, cpu, cuda or cuda:N (train.device)")
    parser.add_argument("--workers", type=int, help="DataLoader workers (data.workers)")
    parser.add_argument("--seed", type=int, help="train.seed")
    parser.add_argument(
        "--no-resume", action="store_true", help="start over even if the output folder has a state"
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override any config value, e.g. --set optim.name=adamw --set optim.schedule=cosine",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


_FLAGS = {
    "data": "data.root",
    "format": "data.format",
    "pretrained": "model.pretrained",
    "out": "train.out_dir",
    "epochs": "train.epochs",
    "batch_size": "train.batch_size",
    "lr": "optim.lr",
    "device": "train.device",
    "workers": "data.workers",
    "seed": "train.seed",
}


def config_from_args(args: argparse.Namespace) -> Config:
    overrides = [
        f"{key}={getattr(args, flag)}"
        for flag, key in _FLAGS.items()
        if getattr(args, flag) is not None
    ]
    if args.no_resume:
        overrides.append("train.resume=false")
    return load_config(args.config, overrides + list(args.set))


def run(args: argparse.Namespace) -> int:
    train(config_from_args(args), progress=not args.no_progress)
    return 0


def main(argv=None) -> int:
    """Entry point for `torchrun -m fer_ros.training.train ...` (same options and errors as
    `fer-ros train`)."""
    from fer_ros.cli import main as cli_main

    return cli_main(["train", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
