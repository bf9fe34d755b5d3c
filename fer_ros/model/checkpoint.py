"""The fer_ros checkpoint: one `.safetensors` file holding the weights, with everything needed to
use them (labels in output order, architecture, input size, colour mode, mean/std, provenance) as
JSON in the safetensors header (`__metadata__["fer_ros"]`).

Loading never unpickles anything: safetensors is a flat tensor format, and a pickle-based torch
file handed in by mistake is recognised and refused before any of it is read.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import torch

from fer_ros.atomic import atomic_file
from fer_ros.errors import CheckpointError
from fer_ros.model.mit import VARIANTS, MiTFusion, build_model, variant_kwargs
from fer_ros.model.preprocess import Preprocess
from fer_ros.options import short_repr
from fer_ros.paths import existing_file

FORMAT = "fer_ros.checkpoint"  # the file format's name, not a module path: never change it
FORMAT_VERSION = 1
_META_KEY = "fer_ros"

# What a real checkpoint can be. The metadata is read before the weights, so its claims are bounded
# before anything is built: a 3 KB file saying "3000 blocks" or "4096x4096 input" would otherwise
# cost gigabytes and minutes before the weights are found wanting. The bounds are about twice
# MiT-b5's (widths 512, 40 blocks in a stage, 8 heads, sr ratio 8, 82 M parameters with the head).
MAX_INPUT_SIZE = 512  # the paper uses 224; 512 is 5x its pixels
MAX_PARAMETERS = 200_000_000
_STAGE_BOUNDS = {"embed_dims": 1024, "depths": 64, "num_heads": 16, "sr_ratios": 16}
_ARCH_RANGES = {
    "mlp_ratio": (0.25, 8),
    "num_classes": (1, 1000),
    "in_chans": (3, 3),  # RGB in
    "drop_rate": (0, 0.99),
    "drop_path_rate": (0, 0.99),
    "norm_eps": (1e-12, 0.1),
}
_ARCH_DEFAULTS = {name: p.default for name, p in inspect.signature(MiTFusion).parameters.items()}


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass
class ModelMeta:
    """What a model expects and where it came from. `arch` holds `variant` plus any `build_model`
    keyword arguments; `labels` are in the model's output order; `preprocess` is how a face crop
    becomes its input (stored flat in the file: input_size, color, mean, std)."""

    labels: list[str]
    arch: dict = field(default_factory=lambda: {"variant": "mit_b0"})
    preprocess: Preprocess = field(default_factory=Preprocess)
    dataset: str = ""
    # What it was trained on and from: data set, splits and sizes, encoder initialisation (file and
    # sha256, or "none"), written by `fer-ros train`.
    provenance: dict = field(default_factory=dict)
    train_config: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    # Softmax temperature the engine applies (probabilities as softmax(logits / T)): fitted on
    # held-out faces so that `confidence` means what it says; 1 = as trained. Never changes the
    # arg-max.
    temperature: float = 1.0
    created: str = field(default_factory=_now)

    def __post_init__(self):
        self.labels = [str(x) for x in self.labels]
        self.arch = dict(self.arch)
        self.arch.setdefault("variant", "mit_b0")
        self.temperature = float(self.temperature)
        if not 0.05 <= self.temperature <= 20:
            raise CheckpointError(f"temperature {self.temperature} is outside 0.05..20")
        n = self.arch.setdefault("num_classes", len(self.labels))
        if n != len(self.labels):
            raise CheckpointError(
                f"wrong class count: arch says {short_repr(n)} classes but "
                f"there are {len(self.labels)} labels"
            )
        check_arch(self.arch)
        if not self.preprocess.input_size <= MAX_INPUT_SIZE:
            raise CheckpointError(
                f"input_size {self.preprocess.input_size} is above "
                f"{MAX_INPUT_SIZE}: not a model fer_ros trains or runs"
            )

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    def build_model(self) -> MiTFusion:
        arch = dict(self.arch)
        return build_model(arch.pop("variant"), **arch)

    def to_json(self) -> str:
        d = dataclasses.asdict(self)
        d.update(d.pop("preprocess"))
        return json.dumps({"format": FORMAT, "version": FORMAT_VERSION, **d})

    @classmethod
    def from_json(cls, text: str) -> ModelMeta:
        d = json.loads(text)
        if d.pop("format", None) != FORMAT:
            raise ValueError("metadata is not a fer_ros checkpoint's")
        if (version := d.pop("version", None)) != FORMAT_VERSION:
            raise ValueError(
                f"checkpoint format version {version}; this fer_ros reads version {FORMAT_VERSION}"
            )
        pre = {f.name: d.pop(f.name) for f in dataclasses.fields(Preprocess) if f.name in d}
        pre = Preprocess(**{k: tuple(v) if isinstance(v, list) else v for k, v in pre.items()})
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(preprocess=pre, **{k: v for k, v in d.items() if k in names})


def check_arch(arch: dict) -> None:
    """CheckpointError unless `arch` (a variant and MiTFusion keyword arguments) describes a MiT a
    checkpoint can hold: a known variant, known arguments, four stages of sane widths and
    depths."""
    if unknown := sorted(set(arch) - set(_ARCH_DEFAULTS) - {"variant"}):
        raise CheckpointError(
            f"arch has unknown entries {short_repr(unknown)}; known: "
            f"variant, {', '.join(_ARCH_DEFAULTS)}"
        )
    if arch["variant"] not in VARIANTS:
        raise CheckpointError(
            f"unknown model variant {short_repr(arch['variant'])}; fer_ros "
            f"builds {', '.join(VARIANTS)}"
        )
    full = _ARCH_DEFAULTS | variant_kwargs(arch["variant"]) | arch
    for name, high in _STAGE_BOUNDS.items():
        values = full[name]
        stages = isinstance(values, (list, tuple)) and len(values) == 4
        if not stages or not all(_within(v, 1, high, int) for v in values):
            raise CheckpointError(
                f"arch {name} must be 4 whole numbers within 1..{high}, not {short_repr(values)}"
            )
    dims, heads = full["embed_dims"], full["num_heads"]
    if any(dim % n for dim, n in zip(dims, heads)):
        raise CheckpointError(f"arch embed_dims {dims} are not divisible by num_heads {heads}")
    for name, (low, high) in _ARCH_RANGES.items():
        if not _within(full[name], low, high, type(_ARCH_DEFAULTS[name])):
            raise CheckpointError(
                f"arch {name} must be within {low:g}..{high:g}, not {short_repr(full[name])}"
            )


def _within(value, low: float, high: float, kind: type) -> bool:
    """`value` a finite number (a whole one when `kind` is int; never a bool) within low..high."""
    if isinstance(value, bool) or not isinstance(value, int if kind is int else (int, float)):
        return False
    return math.isfinite(value) and low <= value <= high


def save_checkpoint(
    path: str | Path, model: MiTFusion, meta: ModelMeta, dtype: torch.dtype | None = None
) -> Path:
    """Write `model`'s weights and `meta` to one .safetensors file, atomically (a reader never sees
    a half-written file). `dtype=torch.float16` halves the size; loading casts back to float32."""
    from safetensors.torch import save_file

    path = Path(path)
    _check_matches(model, meta, str(path))
    state = {}
    for k, v in model.state_dict().items():
        v = v.detach().to("cpu")
        state[k] = (v.to(dtype) if dtype is not None and v.is_floating_point() else v).contiguous()
    with atomic_file(path) as tmp:
        # One metadata entry only: safetensors writes several in hash order, and the same
        # checkpoint saved twice would then differ in bytes (and in checkpoint_id).
        save_file(state, str(tmp), metadata={_META_KEY: meta.to_json()})
    return path


def _check_matches(model: MiTFusion, meta: ModelMeta, where: str) -> None:
    """The model `meta.arch` describes must have exactly `model`'s tensors, or the file could not
    load."""
    if getattr(model, "num_classes", None) != meta.num_classes:
        raise CheckpointError(
            f"{where}: wrong class count: the model has {getattr(model, 'num_classes', '?')} "
            "outputs but "
            f"meta has {meta.num_classes} labels"
        )
    found = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    _check_state(expected_shapes(meta, where), found, meta, where)


def expected_shapes(meta: ModelMeta, where: str) -> dict[str, tuple[int, ...]]:
    """The tensor shapes of the model `meta.arch` describes, from a model without storage (the meta
    device: no memory, no initialisation); CheckpointError when it is above MAX_PARAMETERS."""
    with torch.device("meta"):
        shapes = {k: tuple(v.shape) for k, v in meta.build_model().state_dict().items()}
    count = sum(math.prod(shape) for shape in shapes.values())
    if count > MAX_PARAMETERS:
        raise CheckpointError(
            f"{where}: the architecture {short_repr(meta.arch)} has {count:,} "
            f"parameters, more than a fer_ros model may ({MAX_PARAMETERS:,})"
        )
    return shapes


def _check_state(expected: dict, found: dict, meta: ModelMeta, where: str) -> None:
    missing = sorted(set(expected) - set(found))
    extra = sorted(set(found) - set(expected))
    wrong = [k for k in expected if k in found and expected[k] != found[k]]
    if "head.weight" in found and found["head.weight"][0] != meta.num_classes:
        raise CheckpointError(
            f"{where}: wrong class count: the weights have {found['head.weight'][0]} outputs but "
            f"{meta.num_classes} labels ({', '.join(meta.labels)})"
        )
    if missing or extra or wrong:
        detail = "; ".join(
            f"{what}: {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''}"
            for what, keys in (
                ("missing", missing),
                ("unexpected", extra),
                ("shape differs", wrong),
            )
            if keys
        )
        raise CheckpointError(
            f"{where}: weights do not match the architecture {meta.arch} ({detail})"
        )


def _open(path: str | Path):
    """Open a checkpoint lazily, with one clear error for each way it can be unusable."""
    from safetensors import safe_open

    path = existing_file(path, "checkpoint", CheckpointError)
    with open(path, "rb") as f:
        head = f.read(9)
    # safetensors: 8-byte little-endian header length, then the JSON header
    framed = (
        len(head) == 9
        and head[8:9] == b"{"
        and int.from_bytes(head[:8], "little") + 8 <= path.stat().st_size
    )
    if not framed and (head[:2] == b"PK" or head[:1] == b"\x80"):  # zip (torch.save) or raw pickle
        raise CheckpointError(
            f"{path} is a pickled torch file, not a fer_ros .safetensors checkpoint; fer_ros "
            "never unpickles "
            "checkpoints (ImageNet MiT weights are imported with fer_ros.model.weights)"
        )
    try:
        handle = safe_open(str(path), framework="pt", device="cpu")
        raw = (handle.metadata() or {}).get(_META_KEY)
    except Exception as e:
        raise CheckpointError(f"{path} is corrupt or not a safetensors file ({e})") from e
    if raw is None:
        raise CheckpointError(
            f"{path} is a safetensors file but not a fer_ros checkpoint (no fer_ros metadata)"
        )
    try:
        meta = ModelMeta.from_json(raw)
    except CheckpointError as e:  # metadata that parses but claims what no checkpoint can be
        raise CheckpointError(f"{path}: {e}") from None
    except (ValueError, TypeError) as e:
        raise CheckpointError(f"{path}: unreadable fer_ros metadata: {e}") from e
    return handle, meta


def read_meta(path: str | Path) -> ModelMeta:
    """The metadata alone, read from the header without loading any tensor."""
    return _open(path)[1]


def load_checkpoint(
    path: str | Path, map_location: str | torch.device = "cpu"
) -> tuple[MiTFusion, ModelMeta]:
    """Build the model `meta.arch` describes, fill it with the file's weights (cast to float32) and
    return it in eval mode with its metadata."""
    handle, meta = _open(path)
    try:
        # Names and shapes from the header first: nothing is read or built for weights that
        # cannot fit the architecture.
        found = {k: tuple(handle.get_slice(k).get_shape()) for k in handle.keys()}
        _check_state(expected_shapes(meta, str(path)), found, meta, str(path))
        state = {k: handle.get_tensor(k) for k in handle.keys()}
    except CheckpointError:
        raise
    except Exception as e:
        raise CheckpointError(f"{path} is corrupt: {e}") from e
    model = meta.build_model()
    model.load_state_dict(state)
    return model.to(map_location).eval(), meta


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def checkpoint_id(path: str | Path, sha256: str | None = None) -> str:
    """Short, stable identity of a checkpoint file's content: "<file stem>@<first 12 of sha256>"
    (`sha256`: the file's digest when the caller has it already)."""
    path = existing_file(path, "checkpoint", CheckpointError)
    return f"{path.stem}@{(sha256 or file_sha256(path))[:12]}"
