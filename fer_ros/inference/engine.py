"""The inference engine: face crops in, class probabilities out, with exactly the preprocessing the
checkpoint records. The node, the bag tools, the demo, `fer-ros evaluate` and training's validation
all go through `Engine.predict`.

Back-ends, chosen by `device`, `precision` and `backend`:

- CPU, ONNX Runtime (the default when installed; 1.85x eager PyTorch's speed at batch 1 and 1.08x
at
  batch 16 on a CPU for the 224x224 model, benchmarks/results/bench_cpu.json): the checkpoint is
  exported once to the user cache and run with all graph
  optimisations. By default its threads sleep between operators (`spin=False`): spin-waiting
  threads
  are faster only on a CPU kept free for inference, and much slower when other processes (the face
  detector, DDS, the rest of a robot) compete for the cores.
- CPU, PyTorch: float32 eager under `inference_mode`; the fallback when onnxruntime is missing, and
  what training validates with.
- CUDA, PyTorch: float16 (default) or bfloat16, optionally `torch.compile`d, each of a few fixed
batch
  sizes captured as a CUDA graph; a batch is padded up to the next captured size. If compiling or
  capturing fails the engine says so and runs eagerly.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from fer_ros.errors import ConfigError
from fer_ros.metrics import with_temperature
from fer_ros.model.checkpoint import ModelMeta, checkpoint_id, file_sha256, load_checkpoint
from fer_ros.model.mit import MiTFusion
from fer_ros.model.preprocess import Preprocess
from fer_ros.options import Checked, check, option

log = logging.getLogger(__name__)

DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "fp16", "bf16")
BACKENDS = ("auto", "torch", "onnxruntime")
CUDA_BATCH_SIZES = (1, 4, 16, 48)
_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


@dataclass(frozen=True)
class EngineOptions(Checked):
    """How to build the engine; fer_node's parameters of the same names fill it."""

    checkpoint: str = option(
        "",
        "Path of the fer_ros .safetensors checkpoint to load; empty: the shipped default model",
        live=False,
    )
    device: str = option(
        "auto", "auto (CUDA when present), cuda or cpu", choices=DEVICES, live=False
    )
    allow_cpu_fallback: bool = option(
        False,
        "With device cuda and no GPU, run on the CPU (logged) instead of failing",
        live=False,
    )
    precision: str = option(
        "auto",
        "auto (fp16 on CUDA, fp32 on the CPU), fp32, fp16 or bf16 (CUDA)",
        choices=PRECISIONS,
        live=False,
    )
    backend: str = option("auto", "auto, torch or onnxruntime (CPU)", choices=BACKENDS, live=False)
    threads: int = option(0, "CPU threads for inference; 0 = all cores", 0, 256, live=False)
    cpu_spin: bool = option(
        False,
        "Let ONNX Runtime's threads spin-wait: faster on a CPU kept free for "
        "inference, slower when other processes compete for it",
        live=False,
    )


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32, copy=False)


def resolve_device(device: str) -> str:
    """auto, cpu, cuda or cuda:N -> the torch device to run on ("cuda" when auto finds a GPU);
    ConfigError for an unknown name or CUDA without a GPU. The one place a device name is
    resolved."""
    device = str(device)
    if device not in DEVICES and not device.startswith("cuda:"):
        raise ConfigError(f"device must be one of {DEVICES} (or cuda:N), got {device!r}")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(
            f"device={device!r} but CUDA is not available to this PyTorch ({torch.__version__}); "
            "use device 'cpu' or 'auto'"
        )
    return device


def _resolve(device: str, precision: str, backend: str) -> tuple[str, str]:
    """(precision, backend) that `auto` stands for on `device`, or ConfigError for a pair it
    cannot run."""
    check(
        EngineOptions, precision=precision, backend=backend
    )  # Engine's keyword API bypasses EngineOptions
    if device == "cpu":
        precision = "fp32" if precision == "auto" else precision
        if precision != "fp32":
            raise ConfigError(f"precision {precision!r} is not supported on CPU; use 'fp32'")
        if backend == "auto":
            backend = "onnxruntime" if _has_onnxruntime() else "torch"
        if backend == "onnxruntime" and not _has_onnxruntime():
            raise ConfigError("backend 'onnxruntime' requested but onnxruntime is not installed")
    else:
        precision = "fp16" if precision == "auto" else precision
        if precision not in _DTYPES:
            raise ConfigError(
                f"precision {precision!r} is not supported on CUDA; use 'fp16', 'bf16' or 'fp32'"
            )
        if backend == "onnxruntime":
            raise ConfigError(
                "backend 'onnxruntime' is used on CPU only; on CUDA the engine runs PyTorch"
            )
        backend = "torch"
    return precision, backend


def _has_onnxruntime() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


class _Probabilities(torch.nn.Module):
    """The model followed by a float32 softmax, so one CUDA graph covers both."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x).float().softmax(-1)


class _TorchRunner:
    """Eager PyTorch; on CUDA, one captured graph per fixed batch size."""

    def __init__(
        self,
        model: MiTFusion,
        device: str,
        precision: str,
        compile: bool,
        batch_sizes: Sequence[int],
    ):
        self.device = torch.device(device)
        self.dtype = _DTYPES[precision]
        self.net = _Probabilities(model.to(self.device, self.dtype).eval())
        self.fn = self.net
        self.graphs: dict[int, tuple[torch.cuda.CUDAGraph, torch.Tensor, torch.Tensor]] = {}
        self.batch_sizes = tuple(sorted(batch_sizes)) if self.device.type == "cuda" else ()
        self.compile = compile and self.device.type == "cuda"
        self.notes: list[str] = []

    def prepare(self, input_size: int) -> None:
        """Compile and capture every batch size now (on CUDA), so no request pays for it."""
        if self.device.type != "cuda" or self.graphs:
            return
        if self.compile:
            try:
                self.fn = torch.compile(self.net, dynamic=False)
                first = self.batch_sizes[0] if self.batch_sizes else 1
                with torch.inference_mode():
                    self.fn(
                        torch.zeros(
                            first, 3, input_size, input_size, device=self.device, dtype=self.dtype
                        )
                    )
            except (
                Exception
            ) as e:  # compilers fail in many ways (missing toolchain, unsupported op)
                log.warning(
                    "torch.compile failed, running eagerly: %s", str(e).splitlines()[0][:200]
                )
                self.notes.append("compile failed")
                self.fn = self.net
        while True:
            try:
                for b in self.batch_sizes:
                    self.graphs[b] = self._capture(b, input_size)
                return
            except Exception as e:  # a recompile for a new batch size can fail here too
                self.graphs.clear()
                torch.cuda.synchronize(self.device)
                if self.fn is self.net:
                    log.warning(
                        "CUDA graph capture failed, running eagerly: %s",
                        str(e).splitlines()[0][:200],
                    )
                    self.notes.append("graph capture failed")
                    return
                log.warning(
                    "compiled capture failed, retrying uncompiled: %s",
                    str(e).splitlines()[0][:200],
                )
                self.notes.append("compiled capture failed")
                self.fn = self.net

    def _capture(self, batch: int, input_size: int):
        static_in = torch.zeros(
            batch, 3, input_size, input_size, device=self.device, dtype=self.dtype
        )
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.inference_mode(), torch.cuda.stream(side):
            for _ in range(3):  # warm-up outside the graph: cuDNN/cuBLAS pick and allocate here
                self.fn(static_in)
        torch.cuda.current_stream(self.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.inference_mode(), torch.cuda.graph(graph):
            static_out = self.fn(static_in)
        return graph, static_in, static_out

    def __call__(self, x: torch.Tensor) -> np.ndarray:
        x = x.to(self.device, self.dtype, non_blocking=True)
        if not self.graphs:
            with torch.inference_mode():
                return self.fn(x).cpu().numpy()
        out = []
        largest = self.batch_sizes[-1]
        for chunk in x.split(largest):
            n = chunk.shape[0]
            size = next(b for b in self.batch_sizes if b >= n)
            graph, static_in, static_out = self.graphs[size]
            static_in[:n].copy_(chunk)  # rows n.. keep stale inputs; their outputs are dropped
            graph.replay()
            out.append(static_out[:n].cpu().numpy())
        return np.concatenate(out)

    def close(self) -> None:
        self.graphs.clear()
        self.fn = self.net = None


class _OrtRunner:
    """ONNX Runtime on CPU, over the cached export of the checkpoint."""

    def __init__(self, onnx_path: Path, threads: int, spin: bool):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
        self.session = ort.InferenceSession(
            str(onnx_path), opts, providers=["CPUExecutionProvider"]
        )
        self.input_name = self.session.get_inputs()[0].name

    def prepare(self, input_size: int) -> None:
        pass

    def __call__(self, x: torch.Tensor) -> np.ndarray:
        logits = self.session.run(None, {self.input_name: x.cpu().numpy()})[0]
        return softmax(logits)

    def close(self) -> None:
        self.session = None


class Engine:
    """Face crops (uint8 RGB HxWx3 or grey HxW, any size) -> probabilities (N, classes), float32.

    Build with `Engine.from_checkpoint(path, ...)` or `Engine(model, meta, ...)`; see the module
    docstring for the back-ends. `threads` sets PyTorch's (process-wide) and ONNX Runtime's CPU
    threads; `spin` lets ONNX Runtime's threads spin-wait (faster on an idle CPU, much slower on a
    busy one); `compile` and `batch_sizes` shape the CUDA path.
    """

    def __init__(
        self,
        model: MiTFusion,
        meta: ModelMeta,
        *,
        device: str = "auto",
        precision: str = "auto",
        threads: int | None = None,
        backend: str = "auto",
        model_id: str | None = None,
        compile: bool = True,
        batch_sizes: Sequence[int] = CUDA_BATCH_SIZES,
        spin: bool = False,
        _weights_key: str | None = None,
    ):
        if getattr(model, "num_classes", len(meta.labels)) != len(meta.labels):
            raise ConfigError(
                f"model has {model.num_classes} outputs but meta has {len(meta.labels)} labels"
            )
        self._meta = meta
        self._pre = meta.preprocess
        self._device = resolve_device(device)
        self.precision, self._backend = _resolve(self._device, precision, backend)
        if threads is not None:
            torch.set_num_threads(threads)
        threads = threads or torch.get_num_threads()
        self._weights_key = _weights_key
        self._model_id = model_id
        model = model.eval()
        self._runner = None
        if self._backend == "onnxruntime":
            try:
                self._runner = self._ort_runner(model, threads, spin)
            except (
                Exception
            ) as e:  # e.g. the onnx package missing, or an export the runtime rejects
                if backend != "auto":
                    raise
                log.warning("ONNX Runtime unavailable (%s); running PyTorch on the CPU", e)
                self._backend = "torch"
        if self._runner is None:
            self._runner = _TorchRunner(model, self._device, self.precision, compile, batch_sizes)
        self._prepared = False

    @classmethod
    def from_checkpoint(
        cls,
        path: str | Path,
        device: str = "auto",
        precision: str = "auto",
        threads: int | None = None,
        backend: str = "auto",
        **kwargs,
    ) -> Engine:
        model, meta = load_checkpoint(path)
        digest = file_sha256(path)  # read once: it names the model and keys its ONNX export
        return cls(
            model, meta, device=device, precision=precision, threads=threads, backend=backend,
            model_id=checkpoint_id(path, digest), _weights_key=digest, **kwargs,
        )  # fmt: skip

    @classmethod
    def from_options(cls, options: EngineOptions, warn=log.warning) -> Engine:
        """The engine fer_node's parameters describe; an empty checkpoint means the shipped default
        model, and device cuda without a GPU runs on the CPU when allow_cpu_fallback is set."""
        from fer_ros.paths import default_checkpoint

        device = options.device
        if device == "cuda" and options.allow_cpu_fallback and not torch.cuda.is_available():
            warn("device cuda requested but no GPU is available: running on the CPU")
            device = "cpu"
        return cls.from_checkpoint(
            options.checkpoint or default_checkpoint(),
            device=device,
            precision=options.precision,
            threads=options.threads or None,
            backend=options.backend,
            spin=options.cpu_spin,
        )

    def _ort_runner(self, model: MiTFusion, threads: int, spin: bool) -> _OrtRunner:
        from fer_ros.model.export import cached_onnx, weights_digest

        key = self._weights_key or weights_digest(model)
        self._weights_key = key
        path = cached_onnx(model, self._pre.input_size, key, self._meta.to_json())
        return _OrtRunner(path, threads, spin)

    # ------------------------------------------------------------------ properties

    @property
    def labels(self) -> list[str]:
        return list(self._meta.labels)

    @property
    def meta(self) -> ModelMeta:
        return self._meta

    @property
    def device(self) -> str:
        return self._device

    @property
    def backend(self) -> str:
        return self._backend

    @property
    def model_id(self) -> str:
        if self._model_id is None:
            from fer_ros.model.export import weights_digest

            if self._weights_key is None and isinstance(self._runner, _TorchRunner):
                self._weights_key = weights_digest(self._runner.net.model)
            self._model_id = f"unsaved@{(self._weights_key or 'unknown')[:12]}"
        return self._model_id

    @property
    def preprocess(self) -> Preprocess:
        return self._pre

    def __repr__(self) -> str:
        return (f"Engine({self.model_id}, device={self.device}, backend={self.backend}, "
                f"precision={self.precision}, input={self._pre.input_size}, "
                f"color={self._pre.color})")  # fmt: skip

    # ------------------------------------------------------------------ inference

    def warmup(self) -> None:
        """Compile / capture (CUDA) and run once per batch size, so the first real call is fast."""
        self._ensure_prepared()
        s = self._pre.input_size
        sizes = getattr(self._runner, "batch_sizes", ()) or (1,)
        for b in sizes:
            self._runner(torch.zeros(b, 3, s, s))

    def _ensure_prepared(self) -> None:
        if self._runner is None:
            raise RuntimeError("engine is closed")
        if not self._prepared:
            self._runner.prepare(self._pre.input_size)
            self._prepared = True

    def predict(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        """Probabilities (N, classes), float32, rows summing to 1, in the order of
        `self.labels`."""
        if len(crops) == 0:
            return np.zeros((0, len(self._meta.labels)), np.float32)
        return self.predict_tensor(
            self._pre(crops, self._device)
        )  # (N, 3, S, S), normalised on the device

    def predict_tensor(self, x: torch.Tensor) -> np.ndarray:
        """Probabilities for an already preprocessed batch (N, 3, S, S) float (see
        fer_ros.model.preprocess)."""
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected a (N, 3, S, S) tensor, got {tuple(x.shape)}")
        if x.shape[0] == 0:
            return np.zeros((0, len(self._meta.labels)), np.float32)
        self._ensure_prepared()
        # The one place a checkpoint's calibration is applied: every caller sees calibrated
        # probabilities.
        return with_temperature(self._runner(x), self._meta.temperature)

    def close(self) -> None:
        """Free the model, graphs and sessions (and cached GPU memory). The engine is unusable
        after."""
        if self._runner is not None:
            self._runner.close()
            self._runner = None
        if self._device.startswith("cuda"):
            torch.cuda.empty_cache()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
