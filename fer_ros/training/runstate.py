"""The run: everything one training run holds, set up once, advanced by the loop; and its
resumable state (last_state.pt), written atomically after every epoch and read back on resume.

The state file holds tensors and plain values only (`torch.load(..., weights_only=True)` reads it
without running pickled code): model, optimizer, EMA weights, plateau counters, RNG states, epoch,
step, history and the resolved config.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from fer_ros.atomic import atomic_file
from fer_ros.model.checkpoint import ModelMeta
from fer_ros.training.config import Config
from fer_ros.training.distributed import Dist
from fer_ros.training.sampling import EpochSampler
from fer_ros.training.schedule import Plateau

STATE_FILE = "last_state.pt"


def atomic_save(obj, path: Path) -> None:
    """torch.save through fer_ros.atomic: a kill at any moment leaves the old file or the new
    one."""
    with atomic_file(path) as tmp:
        torch.save(obj, tmp)


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
    def shipped(self) -> torch.nn.Module:
        """The weights that are validated and shipped: the moving average when there is one."""
        return self.model if self.ema is None else self.ema.module

    def say(self, *args, **kwargs) -> None:
        if self.ddp.main:
            print(*args, **kwargs)

    def state(self) -> dict:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            **({"ema": self.ema.state_dict()} if self.ema is not None else {}),
            "plateau": self.plateau.state_dict(),
            "rng": rng_state(self.aug_gen),
            "epoch": self.epoch,
            "step": self.step,
            "history": self.history,
            "config": self.cfg.to_dict(),
        }

    def resume(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.ema is not None and "ema" in state:
            self.ema.load_state_dict(state["ema"])
        self.plateau.load_state_dict(state["plateau"])
        self.epoch, self.step, self.history = (
            int(state["epoch"]),
            int(state["step"]),
            list(state["history"]),
        )
        seed, rank = self.cfg.train.seed, self.ddp.rank
        if self.ddp.main:
            set_rng_state(state["rng"], self.aug_gen)
        else:  # only rank 0's generators are saved; the others restart their own streams
            torch.manual_seed(seed + rank + 1000 * self.epoch)
            self.aug_gen.manual_seed(seed * 7919 + rank + 1000 * self.epoch)
