"""Training configuration: a dataclass per concern, loaded from YAML, overridden from the command
line.

The defaults are the seed paper's protocol (FER2013 / AffectNet with MiT-b0) as far as the paper
states it: 224x224 inputs, grey replicated to three channels, horizontal flip and rotation within
±30°, batch 48, lr 1e-4, momentum 0.9, weight decay 1e-3, learning rate divided by 10 when
validation accuracy has not improved (ReduceLROnPlateau, patience 2), stop after more than 8 epochs
without improvement, at most 50 epochs, encoder from ImageNet MiT weights. Where the paper is
silent the bundled configs say what they chose and why (docs/training.md, "The paper's protocol and
fer_ros"). The resolved configuration is written beside every checkpoint, so a run can always be
repeated.

Every field is an `option()` (fer_ros.options), as the node's parameters are: `check` holds each
value to its range or choices before any data is read, and the code that uses a value trusts it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from fer_ros.errors import ConfigError, one_line
from fer_ros.labels import LABEL_SETS
from fer_ros.model.checkpoint import MAX_INPUT_SIZE
from fer_ros.model.mit import VARIANTS
from fer_ros.model.preprocess import (
    COLORS,
    FACE_NORMS,
    IMAGENET_MEAN,
    IMAGENET_STD,
    MIN_INPUT_SIZE,
)
from fer_ros.options import check_options, option, read_yaml, short_repr
from fer_ros.paths import output_folder
from fer_ros.training.datasets import FERPLUS_TARGETS, FORMATS

CONFIG_DIR = Path(__file__).resolve().parent / "configs"


def _device_rule(device: str) -> str | None:
    if device in ("auto", "cpu", "cuda") or (device.startswith("cuda:") and device[5:].isdigit()):
        return None
    return "auto, cpu, cuda or cuda:N"


def tta_rule(tta: str) -> str | None:
    """None for none, flip or random:N (N >= 1); else what a test-time augmentation must be."""
    kind, _, n = tta.partition(":")
    if tta in ("none", "flip") or (kind == "random" and n.isdigit() and int(n) >= 1):
        return None
    return "none, flip or random:N (N views, e.g. random:10)"


def check_tta(tta: str) -> str:
    """tta when it is none, flip or random:N - else ConfigError."""
    if rule := tta_rule(tta):
        raise ConfigError(f"tta must be {rule}, not {tta!r}")
    return tta


@dataclass
class DataConfig:
    format: str = option(
        "fer2013",
        "Data set format (fer_ros.training.datasets.FORMATS), or auto: detected from data.root",
        choices=("auto", *FORMATS),
    )
    root: str = option("", "File or folder the format reads")
    labels: str = option("fer7", "Canonical label set", choices=tuple(LABEL_SETS))
    train_split: str = option("train", "Split to train on")
    val_split: str = option("val", "Split to validate on (unless data.val_fraction)")
    test_split: str = option("test", "Split the best checkpoint is tested on at the end")
    val_fraction: float = option(
        0.0,
        "> 0: validate on this share of the training split (per class) instead of val_split",
        0.0,
        0.99,
    )
    color: str = option(
        "gray",
        "gray: one channel replicated to three at the model input; rgb: as is",
        choices=COLORS,
    )
    input_size: int = option(224, "Model input side, pixels", MIN_INPUT_SIZE, MAX_INPUT_SIZE)
    mean: tuple[float, ...] = option(
        IMAGENET_MEAN, "Input normalisation mean, as the pretrained encoder expects"
    )
    std: tuple[float, ...] = option(IMAGENET_STD, "Input normalisation standard deviation")
    face_norm: str = option(
        "none",
        "Per-face brightness and contrast before mean/std, in training and in the engine: none | "
        "standardize (each face to one mean and spread) | equalize (each face's histogram)",
        choices=FACE_NORMS,
    )
    target: str = option(
        "majority",
        "FER+: majority (Microsoft's rule) | plurality | probability (vote "
        "distribution) | mixed (FER2013's label and the votes)",
        choices=FERPLUS_TARGETS,
    )
    vote_share: float = option(
        0.5,
        "FER+ target mixed: the votes' share of the target, the original label's the rest",
        0.0,
        1.0,
    )
    workers: int = option(
        4, "DataLoader worker processes (file formats; in-memory sets need none)", 0, 256
    )
    in_memory: str = option(
        "auto",
        "Decode image files once into memory: auto (sets up to 2 GB) | true | false",
        choices=("auto", "true", "false"),
    )
    extra_train: str = option(
        "",
        "More training faces: image-folder roots (<root>/<train_split>/<class>/*.jpg, "
        "comma-separated) whose training split joins this one's, e.g. muxspace beside "
        "FER2013; validation stays this set's",
    )
    teacher: str = option(
        "",
        "Distillation: fer_ros checkpoints (comma-separated) whose mean answer on each training "
        "face (and its mirror) joins its target",
    )
    teacher_share: float = option(
        0.5, "The teachers' share of each training target, the label's the rest", 0.0, 1.0
    )
    extra_weight: float = option(
        1.0, "How often a face of the extra sets is drawn, relative to one of this set", 0.0, 100.0
    )
    synthetic_train: int = option(7000, "Synthetic faces (format synthetic) in the training split")
    synthetic_val: int = option(1400, "Synthetic faces in the validation split")
    synthetic_test: int = option(1400, "Synthetic faces in the test split")


@dataclass
class AugmentConfig:
    flip: bool = option(True, "Random left-right flip")
    rotate: float = option(30.0, "Rotation, degrees, uniform in [-rotate, rotate]", 0.0, 180.0)
    scale: float = option(0.0, "Zoom uniform in [1 - scale, 1 + scale]", 0.0, 0.99)
    translate: float = option(0.0, "Shift uniform in +-translate of the side", 0.0, 0.5)
    color_jitter: float = option(
        0.0, "Brightness and contrast uniform in [1 - c, 1 + c]", 0.0, 1.0
    )
    erase: float = option(
        0.0, "Probability of erasing a random rectangle (random erasing)", 0.0, 1.0
    )
    # Other cameras and framings than the training set's:
    aspect: float = option(
        0.0,
        "Width/height of the crop scaled by exp(uniform(+-aspect)) (a detector's boxes vary so)",
        0.0,
        1.0,
    )
    blur: float = option(
        0.0, "Probability of a low-resolution copy (shrunk to 35-80 %, grown back)", 0.0, 1.0
    )
    noise: float = option(
        0.0, "Gaussian noise, standard deviation uniform in [0, noise] (0-1 intensity)", 0.0, 0.5
    )
    gamma: float = option(
        0.0, "Intensity ** exp(uniform(+-gamma)) (exposure, camera response)", 0.0, 2.0
    )


@dataclass
class ModelConfig:
    variant: str = option("mit_b0", "MiT encoder variant", choices=tuple(VARIANTS))
    # "required" refuses to start until weights or "none" are given (the paper configs).
    pretrained: str = option(
        "none",
        "Local ImageNet MiT weights for the encoder (mit_b0.pth or HF nvidia/mit-b0), "
        "none to start from scratch, or required",
    )
    drop_rate: float = option(0.4, "Dropout before the classifier", 0.0, 0.99)
    drop_path_rate: float = option(0.1, "Stochastic depth of the encoder blocks", 0.0, 0.99)
    init: str = option(
        "",
        "A fer_ros checkpoint to start from (fine-tuning; same classes): its weights, not its "
        "state",
    )


@dataclass
class OptimConfig:
    name: str = option("radam", "Optimizer (torch's)", choices=("sgd", "adamw", "radam"))
    lr: float = option(1e-4, "Peak learning rate", 1e-12)
    momentum: float = option(0.9, "SGD's momentum; Adam-style optimizers use betas[0]", 0.0, 1.0)
    weight_decay: float = option(1e-3, "Weight decay", 0.0)
    decay_norm_bias: bool = option(
        True, "Also decay norms and biases (plain weight decay); false: the usual transformer rule"
    )
    betas: tuple[float, float] = option((0.9, 0.999), "Adam-style optimizers' betas")
    grad_clip: float = option(0.0, "Max gradient norm; 0 = off", 0.0)
    schedule: str = option(
        "plateau", "Learning-rate schedule", choices=("plateau", "cosine", "constant")
    )
    plateau_factor: float = option(0.1, "Learning rate times this after a plateau", 1e-6, 1.0)
    plateau_patience: int = option(
        2, "As torch's ReduceLROnPlateau: the cut comes after patience + 1 flat epochs", 0
    )
    warmup_steps: int = option(0, "Linear warm-up from 0 (any schedule), optimizer steps", 0)
    min_lr: float = option(0.0, "Floor of the cosine and of the plateau cuts", 0.0)


@dataclass
class TrainConfig:
    epochs: int = option(50, "Epochs", 1)
    batch_size: int = option(48, "Per process; DDP multiplies it by the number of processes", 1)
    early_stop: int = option(
        8, "Stop after more than this many epochs without a better val accuracy; 0 = never", 0
    )
    label_smoothing: float = option(0.0, "Label smoothing of the cross-entropy", 0.0, 0.99)
    mixup: float = option(
        0.0,
        "Mixup: each face blended with another of the batch, targets likewise, weight drawn from "
        "Beta(mixup, mixup); 0 = off",
        0.0,
        10.0,
    )
    balance: str = option(
        "none",
        "none | sampler (class-balanced sampling) | loss (inverse-frequency weights)",
        choices=("none", "sampler", "loss"),
    )
    balance_power: float = option(
        1.0,
        "Class weight = (1 / frequency) ** power: 1 fully balanced, 0.5 halfway (sqrt)",
        0.0,
        4.0,
    )
    ema: float = option(
        0.0,
        "Decay of a moving average of the weights, validated and saved instead of them; 0 = off",
        0.0,
        0.999999,
    )
    amp: str = option(
        "auto",
        "auto (bf16 on CUDA when supported, else off) | bf16 | fp16 | off",
        choices=("auto", "bf16", "fp16", "off"),
    )
    channels_last: bool = option(True, "channels_last memory format")
    compile: bool = option(False, "torch.compile the model")
    seed: int = option(0, "Seed of the sampler, augmentation and initialisation")
    deterministic: bool = option(False, "torch's deterministic algorithms (slower)")
    out_dir: str = option("runs/fer", "Output folder")
    resume: bool = option(True, "Continue from <out_dir>/last_state.pt when it exists")
    max_epochs_per_run: int = option(
        0, "Stop (resumably) after this many epochs of one run; 0 = off", 0
    )
    steps_per_epoch: int = option(0, "Cap on steps per epoch (quick runs); 0 = the whole set", 0)
    tta: str = option(
        "none",
        "Test-time augmentation of the final test score: none | flip | random:N (never "
        "validation)",
        check=tta_rule,
    )
    device: str = option("auto", "auto | cpu | cuda | cuda:N", check=_device_rule)
    save_dtype: str = option(
        "float32",
        "Weights of best.safetensors: float32 | float16 (half the size) | bfloat16",
        choices=("float32", "float16", "bfloat16"),
    )
    threads: int = option(
        0, "CPU threads for torch; 0 = torch's default (on a shared CPU, 1 avoids stalls)", 0, 1024
    )


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return _plain(dataclasses.asdict(self))


def _plain(value):
    """Tuples become lists so the dict round-trips through YAML and JSON unchanged."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _coerce(value: Any, current: Any, where: str) -> Any:
    """Converts `value` (from YAML or a command line string) to the type of the field's default."""
    if isinstance(current, bool):
        if isinstance(value, str):
            if value.lower() in ("1", "true", "yes", "on"):
                return True
            if value.lower() in ("0", "false", "no", "off"):
                return False
            raise ConfigError(f"{where}: expected true/false, got {value!r}")
        return bool(value)
    if isinstance(value, str) and not isinstance(current, str):
        try:
            value = read_yaml(value, where)  # "3e-4" -> float, "[0.5, 0.5]" -> list
        except yaml.YAMLError:
            pass  # not YAML: the conversion below says why the text cannot be used
    try:
        if isinstance(current, tuple):
            return tuple(type(current[0])(v) for v in value) if current else tuple(value)
        if isinstance(current, float):
            return float(value)
        if isinstance(current, int):
            return int(value)
        if isinstance(current, str):
            return (
                str(value).lower() if isinstance(value, bool) else str(value)
            )  # YAML true: "true"
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{where}: cannot use {short_repr(value)} ({e})") from None
    return value


def _merge(cfg: Config, tree: dict[str, Any], source: str) -> None:
    for section, values in tree.items():
        if not hasattr(cfg, section) or not dataclasses.is_dataclass(getattr(cfg, section)):
            raise ConfigError(
                f"{source}: unknown section {section!r}; sections: "
                f"{', '.join(f.name for f in dataclasses.fields(Config))}"
            )
        if not isinstance(values, dict):
            raise ConfigError(f"{source}: section {section!r} must be a mapping")
        for key, value in values.items():
            set_value(cfg, f"{section}.{key}", value, source)


def set_value(cfg: Config, dotted: str, value: Any, source: str = "override") -> None:
    """Sets cfg.<section>.<key> from a YAML or string value, checking that the key exists."""
    section, _, key = dotted.partition(".")
    obj = getattr(cfg, section, None)
    if obj is None or not dataclasses.is_dataclass(obj) or not key:
        raise ConfigError(
            f"{source}: unknown setting {dotted!r} (expected section.key, e.g. optim.lr)"
        )
    names = {f.name for f in dataclasses.fields(obj)}
    if key not in names:
        raise ConfigError(
            f"{source}: unknown setting {dotted!r}; {section} has {', '.join(sorted(names))}"
        )
    setattr(obj, key, _coerce(value, getattr(obj, key), f"{source}: {dotted}"))


def resolve_config_path(name_or_path: str) -> Path:
    """A YAML path, or the name of a bundled config (`fer2013`, `affectnet8`, ...)."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") and path.exists():
        return path
    bundled = CONFIG_DIR / f"{name_or_path}.yaml"
    if bundled.exists():
        return bundled
    known = ", ".join(sorted(p.stem for p in CONFIG_DIR.glob("*.yaml")))
    raise ConfigError(
        f"no config {name_or_path!r}: not a YAML file and not a bundled config ({known})"
    )


def load_config(
    name_or_path: str | None = None, overrides: list[str] | dict[str, Any] = ()
) -> Config:
    """Defaults, then a YAML file (path or bundled name), then `section.key=value` overrides in
    order."""
    cfg = Config()
    if name_or_path:
        path = resolve_config_path(name_or_path)
        try:
            tree = read_yaml(path.read_text(), str(path)) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"{path} is not valid YAML: {one_line(err)}") from None
        _merge(cfg, tree, str(path))
    items = overrides.items() if isinstance(overrides, dict) else (_split(o) for o in overrides)
    for dotted, value in items:
        set_value(cfg, dotted, value)
    return cfg


def _split(override: str) -> tuple[str, str]:
    key, sep, value = override.partition("=")
    if not sep:
        raise ConfigError(
            f"override {override!r} must look like section.key=value (e.g. optim.lr=3e-4)"
        )
    return key.strip(), value.strip()


# ---------------------------------------------------------------------------------------------
# Validation: everything a config can get wrong, found before any data is read.


def check(cfg: Config) -> Config:
    """Raise ConfigError naming the first field that cannot work; returns cfg.

    Run before anything is loaded, so a typo costs a second, not an epoch. Each field's range and
    choices are its `option()`'s; what follows are the rules between fields and on files.
    """
    for section in dataclasses.fields(Config):
        check_options(getattr(cfg, section.name), f"{section.name}.")
    d = cfg.data
    if len(d.mean) != 3 or len(d.std) != 3 or min(d.std) <= 0:
        raise ConfigError(
            f"data.mean and data.std need 3 values each (std > 0), got {d.mean} / {d.std}"
        )
    if d.format != "synthetic" and not d.root:
        raise ConfigError("no data set given: set data.root (--data PATH)")
    pretrained = cfg.model.pretrained
    if pretrained == "required":
        raise ConfigError(
            "model.pretrained: this config follows the paper, which starts the encoder from "
            "ImageNet "
            "MiT weights: pass --pretrained /path/mit_b0.pth, or --set model.pretrained=none to "
            "train "
            "from scratch"
        )
    if pretrained not in ("", "none") and not Path(pretrained).is_file():
        raise ConfigError(f"model.pretrained: no such file {pretrained}")
    if cfg.model.init and not Path(cfg.model.init).is_file():
        raise ConfigError(f"model.init: no such checkpoint {cfg.model.init}")
    output_folder(cfg.train.out_dir, "train.out_dir (--out)")
    for root in filter(None, (r.strip() for r in d.extra_train.split(","))):
        if not Path(root).is_dir():
            raise ConfigError(f"data.extra_train: no such folder {root}")
    return cfg
