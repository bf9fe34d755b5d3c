"""The learning-rate schedule: warm-up, then plateau cuts, a cosine or a constant rate."""

from __future__ import annotations

import math


def lr_at(step: int, cfg, base_lr: float, total_steps: int, plateau_scale: float = 1.0) -> float:
    """Learning rate at optimizer step `step`: linear warm-up, then the schedule.

    plateau: base_lr times the factor the plateau rule has accumulated; cosine: from base_lr down
    to min_lr over total_steps; constant: base_lr.
    """
    warm = min(1.0, (step + 1) / cfg.warmup_steps) if cfg.warmup_steps > 0 else 1.0
    if cfg.schedule == "cosine":
        t = min(1.0, max(0.0, (step - cfg.warmup_steps) / max(1, total_steps - cfg.warmup_steps)))
        return warm * (cfg.min_lr + (base_lr - cfg.min_lr) * 0.5 * (1 + math.cos(math.pi * t)))
    if cfg.schedule == "plateau":
        return warm * base_lr * plateau_scale
    return (
        warm * base_lr
    )  # constant (optim.schedule's choices are checked where the config is read)


class Plateau:
    """Validation accuracy over the epochs: the best epoch, and torch's ReduceLROnPlateau rule.

    The best epoch is any improvement: it selects the checkpoint and starts the early-stop count.
    The lr follows ReduceLROnPlateau(mode="max", threshold=1e-4 relative, cooldown 0): when
    `patience` + 1 epochs in a row fail to beat its own best by the threshold, the lr scale is
    multiplied by `factor` (never below `floor`) and the count starts again.
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
        return {
            "best": self.best,
            "best_epoch": self.best_epoch,
            "lr_best": self.lr_best,
            "bad_epochs": self.bad_epochs,
            "scale": self.scale,
        }

    def load_state_dict(self, state: dict) -> None:
        self.best, self.best_epoch = float(state["best"]), int(state["best_epoch"])
        self.lr_best = float(state.get("lr_best", self.best))
        self.bad_epochs, self.scale = int(state["bad_epochs"]), float(state["scale"])
