"""ONNX export of a fer_ros checkpoint (`fer-ros export`), and the export cache the engine uses.

The exported graph takes the normalised (N, 3, S, S) float32 tensor `fer_ros.model.preprocess`
makes and returns logits (N, classes); the batch axis is dynamic. The checkpoint's metadata is
copied into the ONNX file's `metadata_props` ("fer_ros"), so the labels and preprocessing travel
with it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import warnings
from pathlib import Path

import numpy as np
import torch

from fer_ros.atomic import atomic_file, atomic_write_text
from fer_ros.paths import output_file

log = logging.getLogger(__name__)


class ExportError(RuntimeError):
    """The exported graph does not compute what the model computes (exit code 1: the run
    failed)."""


DEFAULT_OPSET = 17
PARITY_TOLERANCE = 1e-3  # largest |logit difference| `fer-ros export` accepts
# Bump when the exported graph changes, so cached exports of an older fer_ros are not reused.
EXPORT_VERSION = 1


def export_onnx(
    model: torch.nn.Module,
    path: str | Path,
    input_size: int,
    *,
    meta_json: str | None = None,
    opset: int = DEFAULT_OPSET,
    dynamic_batch: bool = True,
    dynamo: bool = False,
) -> Path:
    """Write `model` (float32, CPU, eval) as ONNX to `path`, atomically.

    `dynamo=False` uses torch's TorchScript-based exporter: faster to export, no extra dependency,
    and a graph ONNX Runtime runs as fast as the torch.export-based one (`dynamo=True`, needs
    onnxscript).
    """
    import onnx

    path = Path(path)
    model = model.float().cpu().eval()
    x = torch.zeros(2, 3, input_size, input_size)  # batch 2: torch.export specialises a batch of 1
    with atomic_file(path) as tmp:
        with warnings.catch_warnings():
            warnings.simplefilter(
                "ignore", DeprecationWarning
            )  # the TorchScript exporter is "legacy"
            # The fusion block turns feature-map sizes into pooling kernels; the export fixes the
            # input size, so the tracer's "converting a tensor to a Python integer" warning is
            # expected.
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            if dynamo:
                batch = torch.export.Dim("batch", min=1, max=4096)
                torch.onnx.export(
                    model,
                    (x,),
                    tmp,
                    dynamo=True,
                    opset_version=max(opset, 18),
                    input_names=["input"],
                    output_names=["logits"],
                    dynamic_shapes=({0: batch},) if dynamic_batch else None,
                )
            else:
                torch.onnx.export(
                    model,
                    (x if dynamic_batch else x[:1],),
                    tmp,
                    dynamo=False,
                    opset_version=opset,
                    input_names=["input"],
                    output_names=["logits"],
                    dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}
                    if dynamic_batch
                    else None,
                )
        proto = onnx.load(tmp)
        if meta_json is not None:
            entry = proto.metadata_props.add()
            entry.key, entry.value = "fer_ros", meta_json
        proto.producer_name = "fer_ros"
        onnx.save(proto, tmp)
    return path


def cache_dir() -> Path:
    """Per-user cache (never beside a checkpoint): $FER_ROS_CACHE, else $XDG_CACHE_HOME/fer_ros,
    else ~/.cache/fer_ros."""
    if env := os.environ.get("FER_ROS_CACHE"):
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "fer_ros"


def cached_onnx(
    model: torch.nn.Module, input_size: int, weights_key: str, meta_json: str | None = None
) -> Path:
    """The ONNX export of `model`, made once per weights (`weights_key`, e.g. the checkpoint's
    sha256) and input size, and reused from the cache afterwards.

    Beside `<hash>.onnx` lies `<hash>.onnx.json`: the key it was built from and the file's own
    sha256. A cache file that does not match it (replaced, truncated, or from a fer_ros that wrote
    no record) is rebuilt, with a warning, rather than run: the cache is outside the checkpoint's
    identity, so a swapped file would otherwise change every answer under the checkpoint's name.
    """
    key = f"{weights_key}|{input_size}|{DEFAULT_OPSET}|{EXPORT_VERSION}|{torch.__version__}"
    path = cache_dir() / "onnx" / f"{hashlib.sha256(key.encode()).hexdigest()[:24]}.onnx"
    if path.is_file():
        problem = cache_problem(path, key)
        if problem is None:
            return path
        log.warning("rebuilding the ONNX cache %s: %s", path, problem)
    else:
        log.info("exporting ONNX to %s (once per checkpoint)", path)
    export_onnx(model, path, input_size, meta_json=meta_json)
    # Written after the export: a crash between the two leaves no record, hence a rebuild.
    atomic_write_text(
        json.dumps({"key": key, "sha256": file_digest(path)}) + "\n", record_path(path)
    )
    return path


def record_path(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def cache_problem(path: Path, key: str) -> str | None:
    """Why the cached export at `path` cannot be trusted for `key`, or None when its record
    matches."""
    try:
        record = json.loads(record_path(path).read_text())
    except FileNotFoundError:
        return "it has no record of what it was built from"
    except (OSError, ValueError) as err:
        return f"its record is unreadable ({type(err).__name__})"
    if not isinstance(record, dict) or record.get("key") != key:
        return "its record names other weights or settings"
    if record.get("sha256") != file_digest(path):
        return "its content changed since it was built (replaced or truncated)"
    return None


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def weights_digest(model: torch.nn.Module) -> str:
    """sha256 of a model's tensors, for models that did not come from a file."""
    h = hashlib.sha256()
    for name, t in model.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def parity(
    model: torch.nn.Module, onnx_path: str | Path, input_size: int, batch: int = 2, seed: int = 0
) -> float:
    """Largest absolute difference between ONNX Runtime's and PyTorch's logits on random input."""
    import onnxruntime as ort

    x = torch.randn(
        batch, 3, input_size, input_size, generator=torch.Generator().manual_seed(seed)
    )
    with torch.inference_mode():
        ref = model.float().cpu().eval()(x).numpy()
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    out = session.run(None, {"input": x.numpy()})[0]
    return float(np.abs(out - ref).max())


# --------------------------------------------------------------------------------------- CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="fer_ros .safetensors checkpoint")
    parser.add_argument(
        "-o", "--output", help="ONNX file to write (default: the checkpoint's name with .onnx)"
    )
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET)
    parser.add_argument("--static-batch", action="store_true", help="fix the batch size to 1")
    parser.add_argument(
        "--dynamo", action="store_true", help="use torch.export-based exporter (needs onnxscript)"
    )
    parser.add_argument(
        "--no-check", action="store_true", help="skip the ONNX Runtime parity check"
    )


def run(args: argparse.Namespace) -> int:
    from fer_ros.model.checkpoint import load_checkpoint

    out = output_file(args.output or Path(args.checkpoint).with_suffix(".onnx"), "-o/--output")
    model, meta = load_checkpoint(args.checkpoint)
    pre = meta.preprocess
    export_onnx(
        model,
        out,
        pre.input_size,
        meta_json=meta.to_json(),
        opset=args.opset,
        dynamic_batch=not args.static_batch,
        dynamo=args.dynamo,
    )
    print(
        f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB): input (N, 3, {pre.input_size}, "
        f"{pre.input_size}) "
        f"float32 normalised with mean {pre.mean} std {pre.std}, colour {pre.color}; output "
        "logits "
        f"over {meta.labels}"
    )
    if not args.no_check:
        diff = parity(model, out, pre.input_size, batch=1 if args.static_batch else 2)
        print(f"parity with PyTorch: max |logit difference| = {diff:.2e}")
        if diff > PARITY_TOLERANCE:
            raise ExportError(
                f"ONNX Runtime's logits differ from PyTorch's by {diff:.2e} (more than "
                f"{PARITY_TOLERANCE:g}); {out} is not to be trusted"
            )
    return 0
