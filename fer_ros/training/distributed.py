"""Processes and devices: this process's place in a torchrun job, its device, seeds and
precision."""

from __future__ import annotations

import os
import random

import numpy as np
import torch
import torch.distributed as dist

from fer_ros.inference.engine import resolve_device


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
    """train.device as a torch device; plain "cuda" is this process's GPU (its LOCAL_RANK)."""
    device = torch.device(resolve_device(name))
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


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def configure_torch(t, device: torch.device, rank: int) -> None:
    """Threads, seeds, determinism and TF32 for this process, from the train section of a
    config."""
    if t.threads > 0:
        torch.set_num_threads(t.threads)
    seed_everything(t.seed + rank)
    if t.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = not t.deterministic
