"""Import ImageNet-pretrained MiT encoder weights from a local file.

Three key layouts are understood, whichever file format carries them:

- the official SegFormer release (`mit_b0.pth`): `patch_embed1.proj`, `block1.0.attn.kv`, `norm1`,
...
- Hugging Face `nvidia/mit-b0` as published (`pytorch_model.bin` / `model.safetensors`):
  `segformer.encoder.block.0.0.attention.self.query`, ... with key and value as separate layers;
- the layout transformers >= 5 uses in memory: `stages.0.blocks.0.attention.q_proj`, ...

Nothing is downloaded: the weights' licence (NVIDIA, research/evaluation only) and the project's
no-run-time-downloads rule both say the user brings the file.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch

from fer_ros.errors import CheckpointError
from fer_ros.model.mit import VARIANTS, MiT, MiTFusion
from fer_ros.paths import existing_file

log = logging.getLogger(__name__)

# Classification / segmentation heads that come with the published files and are dropped on
# purpose.
_HEAD_PREFIXES = ("head.", "classifier.", "decode_head.")

# (pattern, replacement) from each layout to our encoder's names. Block-internal names of the
# official release equal ours, apart from the depth-wise conv's extra level.
_OFFICIAL = [
    (r"^patch_embed(\d)\.(proj|norm)\.", lambda m: f"stages.{int(m[1]) - 1}.patch_embed.{m[2]}."),
    (r"^block(\d)\.(\d+)\.", lambda m: f"stages.{int(m[1]) - 1}.blocks.{m[2]}."),
    (r"^norm(\d)\.", lambda m: f"stages.{int(m[1]) - 1}.norm."),
    (r"\.mlp\.dwconv\.dwconv\.", ".mlp.dwconv."),
]
_HF_V4 = [
    (r"^(segformer\.)?encoder\.patch_embeddings\.(\d)\.proj\.", r"stages.\2.patch_embed.proj."),
    (
        r"^(segformer\.)?encoder\.patch_embeddings\.(\d)\.layer_norm\.",
        r"stages.\2.patch_embed.norm.",
    ),
    (r"^(segformer\.)?encoder\.block\.(\d)\.(\d+)\.", r"stages.\2.blocks.\3."),
    (r"^(segformer\.)?encoder\.layer_norm\.(\d)\.", r"stages.\2.norm."),
    (r"\.layer_norm_1\.", ".norm1."),
    (r"\.layer_norm_2\.", ".norm2."),
    (r"\.attention\.self\.query\.", ".attn.q."),
    (r"\.attention\.self\.key\.", ".attn.k."),
    (r"\.attention\.self\.value\.", ".attn.v."),
    (r"\.attention\.self\.sr\.", ".attn.sr."),
    (r"\.attention\.self\.layer_norm\.", ".attn.norm."),
    (r"\.attention\.output\.dense\.", ".attn.proj."),
    (r"\.mlp\.dense1\.", ".mlp.fc1."),
    (r"\.mlp\.dense2\.", ".mlp.fc2."),
    (r"\.mlp\.dwconv\.dwconv\.", ".mlp.dwconv."),
]
_HF_V5 = [
    (r"^(segformer\.)?stages\.(\d)\.patch_embeddings\.proj\.", r"stages.\2.patch_embed.proj."),
    (
        r"^(segformer\.)?stages\.(\d)\.patch_embeddings\.layer_norm\.",
        r"stages.\2.patch_embed.norm.",
    ),
    (r"^(segformer\.)?stages\.(\d)\.blocks\.(\d+)\.", r"stages.\2.blocks.\3."),
    (r"^(segformer\.)?stages\.(\d)\.layer_norm\.", r"stages.\2.norm."),
    (r"\.layernorm_before\.", ".norm1."),
    (r"\.layernorm_after\.", ".norm2."),
    (r"\.attention\.q_proj\.", ".attn.q."),
    (r"\.attention\.k_proj\.", ".attn.k."),
    (r"\.attention\.v_proj\.", ".attn.v."),
    (r"\.attention\.sequence_reduction\.sequence_reduction\.", ".attn.sr."),
    (r"\.attention\.sequence_reduction\.layer_norm\.", ".attn.norm."),
    (r"\.attention\.o_proj\.", ".attn.proj."),
    (r"\.mlp\.dwconv\.dwconv\.", ".mlp.dwconv."),
]
_LAYOUTS = {
    "segformer": (re.compile(r"^block\d\.\d+\.attn\.kv\."), _OFFICIAL),
    "huggingface": (re.compile(r"(^|\.)encoder\.block\.\d\.\d+\.attention\.self\.key\."), _HF_V4),
    "huggingface-v5": (re.compile(r"(^|\.)stages\.\d\.blocks\.\d+\.attention\.k_proj\."), _HF_V5),
}


@dataclass
class ImportReport:
    """What `load_mit_weights` did. `missing`: encoder tensors the file did not provide;
    `unexpected`: file tensors that matched nothing (heads are listed apart, in `ignored`)."""

    layout: str
    variant: str | None
    loaded: int
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    origin: dict[str, str] = field(default_factory=dict, repr=False)

    def __str__(self) -> str:
        variant = self.variant or "unknown variant"
        s = f"{self.layout} MiT weights ({variant}): loaded {self.loaded} tensors"
        if self.missing:
            more = " ..." if len(self.missing) > 5 else ""
            s += f"; missing {len(self.missing)}: {', '.join(self.missing[:5])}{more}"
        if self.unexpected:
            s += f"; unexpected {len(self.unexpected)}: {', '.join(self.unexpected[:5])}"
        if self.ignored:
            s += f"; ignored {len(self.ignored)} head tensors"
        return s


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a .safetensors file, or of a torch file loaded with weights_only=True (never
    unpickles arbitrary objects). A checkpoint wrapping its weights in "state_dict" or "model" is
    unwrapped."""
    path = existing_file(path, "weights file", CheckpointError)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as e:
            raise CheckpointError(f"{path} is not a readable safetensors file: {e}") from e
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(
            f"{path} is not a plain torch weights file (loaded with weights_only=True): {e}"
        ) from e
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path} does not hold a dict of tensors")
    return obj


def detect_layout(state_dict: dict[str, torch.Tensor]) -> str:
    for name, (probe, _) in _LAYOUTS.items():
        if any(probe.search(k) for k in state_dict):
            return name
    raise CheckpointError(
        "not MiT weights: found none of the official SegFormer (block1.0.attn.kv) or Hugging Face "
        "(encoder.block.0.0.attention.self.key / stages.0.blocks.0.attention.k_proj) names; "
        "first keys: "
        f"{', '.join(list(state_dict)[:4])}"
    )


def convert_state_dict(
    state_dict: dict[str, torch.Tensor],
) -> tuple[dict[str, torch.Tensor], ImportReport]:
    """Rename a MiT state dict of any known layout to our `MiT` encoder's names (key and value
    fused into `attn.kv`). The report's `missing` is left empty: only a model knows what it lacks;
    its `origin` maps each converted name back to the file's."""
    layout = detect_layout(state_dict)
    rules = [(re.compile(p), r) for p, r in _LAYOUTS[layout][1]]
    out: dict[str, torch.Tensor] = {}
    origin: dict[
        str, str
    ] = {}  # our name -> the file's, to report unexpected keys as the file names them
    unexpected, ignored = [], []
    for key, tensor in state_dict.items():
        if key.removeprefix("segformer.").startswith(_HEAD_PREFIXES):
            ignored.append(key)
            continue
        new = key
        for pattern, repl in rules:
            new = pattern.sub(repl, new)
        if not new.startswith("stages."):
            unexpected.append(key)
            continue
        out[new], origin[new] = tensor, key
    # The official layout fuses key and value in one layer (rows [:C] key, [C:] value); HF splits
    # them.
    for k_name in [k for k in out if ".attn.k." in k]:
        v_name = k_name.replace(".attn.k.", ".attn.v.")
        if v_name in out:
            kv_name = k_name.replace(".attn.k.", ".attn.kv.")
            out[kv_name] = torch.cat([out.pop(k_name), out.pop(v_name)], 0)
            origin[kv_name] = origin[k_name]
    report = ImportReport(
        layout, guess_variant(out), loaded=len(out), unexpected=unexpected, ignored=ignored
    )
    report.origin = origin
    return out, report


def guess_variant(encoder_state: dict[str, torch.Tensor]) -> str | None:
    """The MiT variant whose widths and depths match a state dict in our names, if any."""
    dims, depths = [], []
    for i in range(4):
        w = encoder_state.get(f"stages.{i}.patch_embed.proj.weight")
        if w is None:
            return None
        dims.append(w.shape[0])
        blocks = {
            int(k.split(".")[3]) for k in encoder_state if k.startswith(f"stages.{i}.blocks.")
        }
        depths.append(len(blocks))
    for name, cfg in VARIANTS.items():
        if tuple(dims) == cfg.embed_dims and tuple(depths) == cfg.depths:
            return name
    return None


def load_mit_weights(
    model: MiTFusion | MiT, path_or_state: str | Path | dict, strict: bool = False
) -> ImportReport:
    """Copy ImageNet MiT weights into `model`'s encoder (a MiTFusion or a bare MiT).

    Raises ValueError when the file is not MiT weights, or is another variant (shapes differ); with
    `strict`, also when any encoder tensor is missing. Returns what was loaded, missing and
    unexpected.
    """
    encoder = model.encoder if isinstance(model, MiTFusion) else model
    if not isinstance(encoder, MiT):
        raise TypeError(f"expected a MiTFusion or MiT, got {type(model).__name__}")
    state = path_or_state if isinstance(path_or_state, dict) else read_state_dict(path_or_state)
    converted, report = convert_state_dict(state)
    own = encoder.state_dict()
    ours = guess_variant(own) or "mit_b?"
    if (
        report.variant and ours != "mit_b?" and report.variant != ours
    ):  # same widths, other depths (b2 vs b1)
        raise CheckpointError(
            f"MiT weights of the wrong variant: the file is {report.variant} but the model is "
            f"{ours}"
        )
    mismatched = [k for k in converted if k in own and converted[k].shape != own[k].shape]
    if mismatched:
        k = mismatched[0]
        raise CheckpointError(
            "MiT weights of the wrong variant: the file looks like "
            f"{report.variant or 'an unknown MiT'} but the "
            f"model is {ours} ({k}: file {tuple(converted[k].shape)} vs model "
            f"{tuple(own[k].shape)})"
        )
    extra = [k for k in converted if k not in own]
    report.unexpected += [report.origin[k] for k in extra]
    result = encoder.load_state_dict(
        {k: v for k, v in converted.items() if k in own}, strict=False
    )
    report.missing = list(result.missing_keys)
    report.loaded = len(converted) - len(extra)
    if report.loaded == 0:
        raise CheckpointError("no tensor of the file matched the encoder")
    if strict and (report.missing or report.unexpected):
        raise CheckpointError(f"incomplete MiT import: {report}")
    log.info("%s", report)
    return report
