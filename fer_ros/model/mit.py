"""MiT (Mix Transformer, the SegFormer encoder) with the multi-scale fusion head of the seed paper.

Layout follows timm's `pvt_v2.py`: building blocks, the model, then the named variants.

The encoder is MiT-b0..b5. The head max-pools the stage outputs F1..F3 to F4's grid (kernel =
stride = 8, 4, 2 at 224x224; adaptive windows where a size is not divisible by 32), concatenates
them with F4, projects back to F4's width with a 1x1 convolution (F_R), and re-weights F4 with it:
F_N = F4 + F4 * F_R. Global average pooling, dropout and a linear layer give the logits. With 7
classes MiT-b0 + fusion has exactly 3,452,519 parameters.

Parameter names inside a block are those of the official SegFormer release (`attn.q`, `attn.kv`,
`attn.sr`, `mlp.dwconv`, ...) so that `fer_ros.model.weights` only has to rename the stage
prefixes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from fer_ros.errors import ConfigError


class DropPath(nn.Module):
    """Stochastic depth: drops the whole residual branch per sample while training."""

    def __init__(self, drop_prob: float = 0.0):
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.drop_prob == 0.0 or not self.training:
            return x
        keep = 1.0 - self.drop_prob
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"drop_prob={self.drop_prob}"


class Attention(nn.Module):
    """Efficient self-attention: keys and values come from a sequence shrunk by `sr_ratio` per
    side."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        sr_ratio: int,
        qkv_bias: bool = True,
        attn_drop: float = 0.0,
    ):
        super().__init__()
        assert dim % num_heads == 0, f"dim {dim} must be divisible by num_heads {num_heads}"
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.attn_drop = attn_drop
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.kv = nn.Linear(dim, dim * 2, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.sr_ratio = sr_ratio
        if sr_ratio > 1:
            self.sr = nn.Conv2d(dim, dim, kernel_size=sr_ratio, stride=sr_ratio)
            self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, H: int, W: int) -> torch.Tensor:
        B, N, C = x.shape
        q = (
            self.q(x).reshape(B, N, self.num_heads, self.head_dim).transpose(1, 2)
        )  # (B, heads, N, head_dim)
        if self.sr_ratio > 1:
            x = x.transpose(1, 2).reshape(B, C, H, W)  # (B, C, H, W)
            x = self.sr(x).flatten(2).transpose(1, 2)  # (B, N / sr^2, C)
            x = self.norm(x)
        kv = self.kv(x).reshape(
            B, -1, 2, self.num_heads, self.head_dim
        )  # (B, M, 2, heads, head_dim)
        k, v = kv.permute(2, 0, 3, 1, 4).unbind(0)  # 2 x (B, heads, M, head_dim)
        x = F.scaled_dot_product_attention(
            q, k, v, dropout_p=self.attn_drop if self.training else 0.0
        )
        x = x.transpose(1, 2).reshape(B, N, C)  # (B, N, C)
        return self.proj(x)


class MixFFN(nn.Module):
    """fc1 -> 3x3 depth-wise conv (the positional cue MiT uses instead of embeddings) -> GELU ->
    fc2."""

    def __init__(self, dim: int, hidden_dim: int, drop: float = 0.0):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.dwconv = nn.Conv2d(hidden_dim, hidden_dim, 3, padding=1, groups=hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor, H: int, W: int) -> torch.Tensor:
        x = self.fc1(x)
        B, N, C = x.shape
        x = x.transpose(1, 2).reshape(B, C, H, W)  # (B, hidden, H, W)
        x = self.dwconv(x).flatten(2).transpose(1, 2)  # (B, N, hidden)
        x = self.drop(self.act(x))
        return self.drop(self.fc2(x))


class Block(nn.Module):
    def __init__(
        self,
        dim: int,
        num_heads: int,
        sr_ratio: int,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop: float = 0.0,
        attn_drop: float = 0.0,
        drop_path: float = 0.0,
        norm_eps: float = 1e-6,
    ):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = Attention(dim, num_heads, sr_ratio, qkv_bias=qkv_bias, attn_drop=attn_drop)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = MixFFN(dim, int(dim * mlp_ratio), drop=drop)

    def forward(self, x: torch.Tensor, H: int, W: int) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x), H, W))
        return x + self.drop_path(self.mlp(self.norm2(x), H, W))


class OverlapPatchEmbed(nn.Module):
    """Strided conv whose kernel overlaps its neighbours (k7/s4 first, k3/s2 after)."""

    def __init__(self, in_chans: int, dim: int, patch_size: int, stride: int):
        super().__init__()
        self.proj = nn.Conv2d(
            in_chans, dim, kernel_size=patch_size, stride=stride, padding=patch_size // 2
        )
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, int, int]:
        x = self.proj(x)
        H, W = x.shape[2:]
        x = self.norm(x.flatten(2).transpose(1, 2))  # (B, H*W, C)
        return x, H, W


class Stage(nn.Module):
    def __init__(
        self,
        in_chans: int,
        dim: int,
        depth: int,
        num_heads: int,
        sr_ratio: int,
        patch_size: int,
        stride: int,
        mlp_ratio: float,
        qkv_bias: bool,
        drop_rates: list[float],
        norm_eps: float,
    ):
        super().__init__()
        self.patch_embed = OverlapPatchEmbed(in_chans, dim, patch_size, stride)
        self.blocks = nn.ModuleList(
            Block(dim, num_heads, sr_ratio, mlp_ratio, qkv_bias, drop_path=rate, norm_eps=norm_eps)
            for rate in drop_rates
        )
        assert len(self.blocks) == depth
        self.norm = nn.LayerNorm(dim, eps=norm_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, H, W = self.patch_embed(x)
        for block in self.blocks:
            x = block(x, H, W)
        x = self.norm(x)
        return x.transpose(1, 2).reshape(x.shape[0], -1, H, W)  # (B, C, H, W)


class MiT(nn.Module):
    """The four-stage Mix Transformer encoder; returns the map of every stage (strides 4, 8, 16,
    32)."""

    def __init__(
        self,
        embed_dims: tuple[int, ...],
        depths: tuple[int, ...],
        num_heads: tuple[int, ...],
        sr_ratios: tuple[int, ...],
        mlp_ratio: float = 4.0,
        in_chans: int = 3,
        qkv_bias: bool = True,
        drop_path_rate: float = 0.0,
        norm_eps: float = 1e-6,
    ):
        super().__init__()
        if not len(embed_dims) == len(depths) == len(num_heads) == len(sr_ratios) == 4:
            raise ValueError(
                "embed_dims, depths, num_heads and sr_ratios need one entry per stage (4)"
            )
        self.embed_dims = tuple(embed_dims)
        n = sum(depths)
        rates = [drop_path_rate * i / max(n - 1, 1) for i in range(n)]  # linear over all blocks
        self.stages = nn.ModuleList()
        prev = in_chans
        for i, (dim, depth) in enumerate(zip(embed_dims, depths)):
            start = sum(depths[:i])
            self.stages.append(
                Stage(
                    prev,
                    dim,
                    depth,
                    num_heads[i],
                    sr_ratios[i],
                    patch_size=7 if i == 0 else 3,
                    stride=4 if i == 0 else 2,
                    mlp_ratio=mlp_ratio,
                    qkv_bias=qkv_bias,
                    drop_rates=rates[start : start + depth],
                    norm_eps=norm_eps,
                )
            )
            prev = dim

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        maps = []
        for stage in self.stages:
            x = stage(x)
            maps.append(x)
        return maps


def max_pool_to(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Adaptive max-pooling of (B, C, H, W) to (B, C, *size), in a form every exporter accepts.

    When the grid divides evenly this is the paper's fixed pooling (kernel = stride = H / size: 8,
    4, 2 for F1..F3 at 224x224 and at every multiple of 32). Otherwise (e.g. 48x48 or 112x112
    inputs, where the strided convolutions round up) the windows are adaptive pooling's, floor(i *
    H / h) to ceil((i + 1) * H / h), taken one axis at a time (a max over a rectangle is a max of
    maxes), because the ONNX exporter refuses adaptive_max_pool2d for uneven grids.
    """
    # Plain ints: the ONNX export has a fixed input size, and pooling kernels must be constants
    # there.
    (h, w), (oh, ow) = (int(v) for v in x.shape[-2:]), (int(v) for v in size)
    if h % oh == 0 and w % ow == 0:
        return F.max_pool2d(x, kernel_size=(h // oh, w // ow))
    x = torch.cat(
        [x[..., i * h // oh : -(-(i + 1) * h // oh), :].amax(-2, keepdim=True) for i in range(oh)],
        -2,
    )
    return torch.cat(
        [x[..., j * w // ow : -(-(j + 1) * w // ow)].amax(-1, keepdim=True) for j in range(ow)], -1
    )


class Fusion(nn.Module):
    """Max-pool F1..F3 to F4's grid, concat with F4, 1x1 conv to F4's width (F_R); F_N = F4 + F4 *
    F_R."""

    def __init__(self, embed_dims: tuple[int, ...]):
        super().__init__()
        self.reduce = nn.Conv2d(sum(embed_dims), embed_dims[-1], kernel_size=1)

    def forward(self, maps: list[torch.Tensor]) -> torch.Tensor:
        *early, f4 = maps
        pooled = [max_pool_to(f, f4.shape[-2:]) for f in early]  # each (B, C_i, h4, w4)
        f_r = self.reduce(torch.cat(pooled + [f4], dim=1))  # (B, C4, h4, w4)
        return f4 + f4 * f_r


class MiTFusion(nn.Module):
    """MiT encoder + fusion head, for any input size (32x32 and up; the paper uses 224x224)."""

    def __init__(
        self,
        *,
        embed_dims: tuple[int, ...] = (32, 64, 160, 256),
        depths: tuple[int, ...] = (2, 2, 2, 2),
        num_heads: tuple[int, ...] = (1, 2, 5, 8),
        sr_ratios: tuple[int, ...] = (8, 4, 2, 1),
        mlp_ratio: float = 4.0,
        num_classes: int = 7,
        in_chans: int = 3,
        drop_rate: float = 0.4,
        drop_path_rate: float = 0.1,
        norm_eps: float = 1e-6,
    ):
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.num_classes = num_classes
        self.encoder = MiT(
            embed_dims, depths, num_heads, sr_ratios, mlp_ratio, in_chans,
            drop_path_rate=drop_path_rate, norm_eps=norm_eps,
        )  # fmt: skip
        self.fusion = Fusion(tuple(embed_dims))
        self.head_drop = nn.Dropout(drop_rate)
        self.head = nn.Linear(embed_dims[-1], num_classes)
        self.apply(_init_weights)

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The four stage maps, (B, C_i, H / 2^(i+2), W / 2^(i+2))."""
        return self.encoder(x)

    def forward_head(self, maps: list[torch.Tensor], pre_logits: bool = False) -> torch.Tensor:
        x = self.fusion(maps).mean(dim=(2, 3))  # (B, C4)
        x = self.head_drop(x)
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def _init_weights(m: nn.Module) -> None:
    # SegFormer's initialisation: truncated normal for linear layers, fan-out normal for convs.
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)
    elif isinstance(m, nn.Conv2d):
        fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
        nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
        if m.bias is not None:
            nn.init.zeros_(m.bias)


# ---------------------------------------------------------------------------------------------
# Named variants (SegFormer's MiT-b0..b5). Heads, sr ratios and mlp ratio are shared by all.


@dataclass(frozen=True)
class MiTConfig:
    embed_dims: tuple[int, ...]
    depths: tuple[int, ...]
    num_heads: tuple[int, ...] = (1, 2, 5, 8)
    sr_ratios: tuple[int, ...] = (8, 4, 2, 1)
    mlp_ratio: float = 4.0


_WIDE = (64, 128, 320, 512)
VARIANTS: dict[str, MiTConfig] = {
    "mit_b0": MiTConfig(embed_dims=(32, 64, 160, 256), depths=(2, 2, 2, 2)),
    "mit_b1": MiTConfig(embed_dims=_WIDE, depths=(2, 2, 2, 2)),
    "mit_b2": MiTConfig(embed_dims=_WIDE, depths=(3, 4, 6, 3)),
    "mit_b3": MiTConfig(embed_dims=_WIDE, depths=(3, 4, 18, 3)),
    "mit_b4": MiTConfig(embed_dims=_WIDE, depths=(3, 8, 27, 3)),
    "mit_b5": MiTConfig(embed_dims=_WIDE, depths=(3, 6, 40, 3)),
}


def variant_kwargs(variant: str) -> dict:
    """The MiTFusion keyword arguments of a named variant (lists, so they round-trip through
    JSON)."""
    if variant not in VARIANTS:
        raise ConfigError(
            f"unknown model variant {variant!r}; choose one of {', '.join(VARIANTS)}"
        )
    cfg = VARIANTS[variant]
    return {
        "embed_dims": list(cfg.embed_dims),
        "depths": list(cfg.depths),
        "num_heads": list(cfg.num_heads),
        "sr_ratios": list(cfg.sr_ratios),
        "mlp_ratio": cfg.mlp_ratio,
    }


def build_model(variant: str = "mit_b0", num_classes: int = 7, **overrides) -> MiTFusion:
    """A MiT-fusion model of a named variant; `overrides` replace any MiTFusion keyword
    argument."""
    kwargs = variant_kwargs(variant) | {"num_classes": num_classes} | overrides
    return MiTFusion(**kwargs)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
