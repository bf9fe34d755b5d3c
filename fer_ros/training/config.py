"""Training configuration: a dataclass per concern, loaded from YAML, overridden from the command line.

The defaults are the seed paper's protocol (FER2013 / AffectNet with MiT-b0) as far as the paper
states it: 224x224 inputs, grey replicated to three channels, horizontal flip and rotation within
±30°, batch 48, lr 1e-4, momentum 0.9, weight decay 1e-3, learning rate divided by 10 when validation
accuracy has not improved (ReduceLROnPlateau, patience 2), stop after more than 8 epochs without
improvement, at most 50 epochs, encoder from ImageNet MiT weights. Where the paper is silent the
bundled configs say what they chose and why (README, "The paper's protocol and fer_ros"). The
resolved configuration is written beside every checkpoint, so a run can always be repeated.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from fer_ros.errors import ConfigError
from fer_ros.paths import output_folder
from fer_ros.model.preprocess import COLORS, IMAGENET_MEAN, IMAGENET_STD, MIN_INPUT_SIZE

CONFIG_DIR = Path(__file__).resolve().parent / "configs"


@dataclass
class DataConfig:
    format: str = "fer2013"  # see fer_ros.training.datasets.FORMATS
    root: str = ""  # file or folder the format reads
    labels: str = "fer7"  # canonical label set: fer7 | affectnet8
    train_split: str = "train"
    val_split: str = "val"
    test_split: str = "test"
    val_fraction: float = 0.0  # > 0: validate on this share of the training split (per class) instead of val_split
    color: str = "gray"  # gray: one channel replicated to three at the model input; rgb: as is
    input_size: int = 224
    mean: tuple[float, ...] = IMAGENET_MEAN  # as the pretrained encoder expects
    std: tuple[float, ...] = IMAGENET_STD
    target: str = "majority"  # FER+: majority (Microsoft's rule) | plurality | probability (vote distribution)
    workers: int = 4  # DataLoader worker processes (file formats; in-memory sets need none)
    in_memory: str = "auto"  # decode image files once into memory: auto (sets up to 2 GB) | true | false
    # More training faces: image-folder roots (<root>/<train_split>/<class>/*.jpg, comma-separated) whose
    # training split joins this one's, e.g. muxspace beside FER2013. Validation stays this set's.
    extra_train: str = ""
    extra_weight: float = 1.0  # how often a face of the extra sets is drawn, relative to one of this set
    # Synthetic faces (format: synthetic): how many per split.
    synthetic_train: int = 7000
    synthetic_val: int = 1400
    synthetic_test: int = 1400


@dataclass
class AugmentConfig:
    flip: bool = True  # left-right
    rotate: float = 30.0  # degrees, uniform in [-rotate, rotate]
    scale: float = 0.0  # zoom uniform in [1 - scale, 1 + scale]
    translate: float = 0.0  # shift uniform in ±translate of the side
    color_jitter: float = 0.0  # brightness and contrast uniform in [1 - c, 1 + c]
    erase: float = 0.0  # probability of erasing a random rectangle (random erasing)
    # Other cameras and framings than the training set's:
    aspect: float = 0.0  # width/height of the crop scaled by exp(uniform(±aspect)) (a detector's boxes vary so)
    blur: float = 0.0  # probability of a low-resolution copy (shrunk to 35-80 %, grown back)
    noise: float = 0.0  # Gaussian noise, standard deviation uniform in [0, noise] (0-1 intensity)
    gamma: float = 0.0  # intensity ** exp(uniform(±gamma)) (exposure, camera response)


@dataclass
class ModelConfig:
    variant: str = "mit_b0"
    # Local ImageNet MiT weights for the encoder (mit_b0.pth or HF nvidia/mit-b0), "none" to start
    # from scratch, or "required": refuse to start until one of the two is given (paper configs).
    pretrained: str = "none"
    drop_rate: float = 0.4
    drop_path_rate: float = 0.1
    init: str = ""  # a fer_ros checkpoint to start from (fine-tuning; same classes): its weights, not its state


@dataclass
class OptimConfig:
    name: str = "radam"  # sgd | adamw | radam (torch's)
    lr: float = 1e-4
    momentum: float = 0.9  # SGD's momentum; Adam-style optimizers use betas[0]
    weight_decay: float = 1e-3
    decay_norm_bias: bool = True  # also decay norms and biases (plain weight decay); false: the usual transformer rule
    betas: tuple[float, float] = (0.9, 0.999)
    grad_clip: float = 0.0  # max gradient norm; 0 = off
    schedule: str = "plateau"  # plateau | cosine | constant
    plateau_factor: float = 0.1
    plateau_patience: int = 2  # as torch's ReduceLROnPlateau: the cut comes after patience + 1 flat epochs
    warmup_steps: int = 0  # linear warm-up from 0 (any schedule)
    min_lr: float = 0.0  # floor of the cosine and of the plateau cuts


@dataclass
class TrainConfig:
    epochs: int = 50
    batch_size: int = 48  # per process; DDP multiplies it by the number of processes
    early_stop: int = 8  # stop after more than this many epochs without a better val accuracy; 0 = never
    label_smoothing: float = 0.0
    balance: str = "none"  # none | sampler (class-balanced sampling) | loss (inverse-frequency weights)
    balance_power: float = 1.0  # class weight = (1 / frequency) ** power: 1 fully balanced, 0.5 halfway (sqrt)
    ema: float = 0.0  # decay of a moving average of the weights, validated and saved instead of them; 0 = off
    amp: str = "auto"  # auto (bf16 on CUDA when supported, else off) | bf16 | fp16 | off
    channels_last: bool = True
    compile: bool = False
    seed: int = 0
    deterministic: bool = False
    out_dir: str = "runs/fer"
    resume: bool = True  # continue from <out_dir>/last_state.pt when it exists
    max_epochs_per_run: int = 0  # stop (resumably) after this many epochs of one run; 0 = off
    steps_per_epoch: int = 0  # cap on steps per epoch (quick runs); 0 = the whole set
    tta: str = "none"  # test-time augmentation of the final test score: none | flip | random:N (never validation)
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    save_dtype: str = "float32"  # weights of best.safetensors: float32 | float16 (half the size)
    threads: int = 0  # CPU threads for torch; 0 = torch's default (on a shared CPU, 1 avoids stalls)


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
        value = yaml.safe_load(value)  # "3e-4" -> float, "[0.5, 0.5]" -> list
    try:
        if isinstance(current, tuple):
            return tuple(type(current[0])(v) for v in value) if current else tuple(value)
        if isinstance(current, float):
            return float(value)
        if isinstance(current, int):
            return int(value)
        if isinstance(current, str):
            return str(value)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{where}: cannot use {value!r} ({e})") from None
    return value


def _merge(cfg: Config, tree: dict[str, Any], source: str) -> None:
    for section, values in tree.items():
        if not hasattr(cfg, section) or not dataclasses.is_dataclass(getattr(cfg, section)):
            raise ConfigError(f"{source}: unknown section {section!r}; sections: "
                             f"{', '.join(f.name for f in dataclasses.fields(Config))}")
        if not isinstance(values, dict):
            raise ConfigError(f"{source}: section {section!r} must be a mapping")
        for key, value in values.items():
            set_value(cfg, f"{section}.{key}", value, source)


def set_value(cfg: Config, dotted: str, value: Any, source: str = "override") -> None:
    """Sets cfg.<section>.<key> from a YAML or string value, checking that the key exists."""
    section, _, key = dotted.partition(".")
    obj = getattr(cfg, section, None)
    if obj is None or not dataclasses.is_dataclass(obj) or not key:
        raise ConfigError(f"{source}: unknown setting {dotted!r} (expected section.key, e.g. optim.lr)")
    names = {f.name for f in dataclasses.fields(obj)}
    if key not in names:
        raise ConfigError(f"{source}: unknown setting {dotted!r}; {section} has {', '.join(sorted(names))}")
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
    raise ConfigError(f"no config {name_or_path!r}: not a YAML file and not a bundled config ({known})")


def load_config(name_or_path: str | None = None, overrides: list[str] | dict[str, Any] = ()) -> Config:
    """Defaults, then a YAML file (path or bundled name), then `section.key=value` overrides in order."""
    cfg = Config()
    if name_or_path:
        path = resolve_config_path(name_or_path)
        tree = yaml.safe_load(path.read_text()) or {}
        _merge(cfg, tree, str(path))
    items = overrides.items() if isinstance(overrides, dict) else (_split(o) for o in overrides)
    for dotted, value in items:
        set_value(cfg, dotted, value)
    return cfg


def _split(override: str) -> tuple[str, str]:
    key, sep, value = override.partition("=")
    if not sep:
        raise ConfigError(f"override {override!r} must look like section.key=value (e.g. optim.lr=3e-4)")
    return key.strip(), value.strip()


# ---------------------------------------------------------------------------------------------
# Validation: everything a config can get wrong, found before any data is read.

CHOICES = {
    "data.labels": ("fer7", "affectnet8"),
    "data.color": COLORS,
    "data.target": ("majority", "plurality", "probability"),
    "data.in_memory": ("auto", "true", "false"),
    "optim.name": ("sgd", "adamw", "radam"),
    "optim.schedule": ("plateau", "cosine", "constant"),
    "train.balance": ("none", "sampler", "loss"),
    "train.amp": ("auto", "bf16", "fp16", "off"),
    "train.save_dtype": ("float32", "float16", "bfloat16"),
}
# (low, high) inclusive; None: unbounded.
RANGES = {
    "data.input_size": (MIN_INPUT_SIZE, 4096), "data.val_fraction": (0.0, 0.99), "data.workers": (0, 256),
    "augment.rotate": (0.0, 180.0), "augment.scale": (0.0, 0.99), "augment.translate": (0.0, 0.5),
    "augment.color_jitter": (0.0, 1.0), "augment.erase": (0.0, 1.0), "augment.aspect": (0.0, 1.0),
    "augment.blur": (0.0, 1.0), "augment.noise": (0.0, 0.5), "augment.gamma": (0.0, 2.0),
    "data.extra_weight": (0.0, 100.0),
    "model.drop_rate": (0.0, 0.99), "model.drop_path_rate": (0.0, 0.99),
    "optim.lr": (1e-12, None), "optim.weight_decay": (0.0, None), "optim.momentum": (0.0, 1.0),
    "optim.grad_clip": (0.0, None), "optim.warmup_steps": (0, None), "optim.min_lr": (0.0, None),
    "optim.plateau_factor": (1e-6, 1.0), "optim.plateau_patience": (0, None),
    "train.epochs": (1, None), "train.batch_size": (1, None), "train.early_stop": (0, None),
    "train.label_smoothing": (0.0, 0.99), "train.balance_power": (0.0, 4.0), "train.ema": (0.0, 0.999999),
    "train.max_epochs_per_run": (0, None), "train.steps_per_epoch": (0, None), "train.threads": (0, 1024),
}


def check(cfg: Config) -> Config:
    """Raise ConfigError naming the first field that cannot work; returns cfg.

    Run before anything is loaded, so a typo costs a second, not an epoch.
    """
    from fer_ros.model.mit import VARIANTS
    from fer_ros.training.datasets import FORMATS

    def value(dotted: str):
        section, key = dotted.split(".")
        return getattr(getattr(cfg, section), key)

    choices = CHOICES | {"data.format": ("auto", *FORMATS), "model.variant": tuple(VARIANTS)}
    for dotted, allowed in choices.items():
        if str(value(dotted)).lower() not in allowed:
            raise ConfigError(f"{dotted} must be one of {', '.join(allowed)}, not {value(dotted)!r}")
    for dotted, (low, high) in RANGES.items():
        v = value(dotted)
        if v < low or (high is not None and v > high):
            bounds = f">= {low:g}" if high is None else f"within {low:g}..{high:g}"
            raise ConfigError(f"{dotted} must be {bounds}, not {v!r}")
    d = cfg.data
    if len(d.mean) != 3 or len(d.std) != 3 or min(d.std) <= 0:
        raise ConfigError(f"data.mean and data.std need 3 values each (std > 0), got {d.mean} / {d.std}")
    if d.format != "synthetic" and not d.root:
        raise ConfigError("no data set given: set data.root (--data PATH)")
    device = cfg.train.device
    if device not in ("auto", "cpu", "cuda") and not (device.startswith("cuda:") and device[5:].isdigit()):
        raise ConfigError(f"train.device must be auto, cpu, cuda or cuda:N, not {device!r}")
    pretrained = cfg.model.pretrained
    if pretrained == "required":
        raise ConfigError("model.pretrained: this config follows the paper, which starts the encoder from ImageNet "
                          "MiT weights: pass --pretrained /path/mit_b0.pth, or --set model.pretrained=none to train "
                          "from scratch")
    if pretrained not in ("", "none") and not Path(pretrained).is_file():
        raise ConfigError(f"model.pretrained: no such file {pretrained}")
    if cfg.model.init and not Path(cfg.model.init).is_file():
        raise ConfigError(f"model.init: no such checkpoint {cfg.model.init}")
    output_folder(cfg.train.out_dir, "train.out_dir (--out)")
    for root in filter(None, (r.strip() for r in d.extra_train.split(","))):
        if not Path(root).is_dir():
            raise ConfigError(f"data.extra_train: no such folder {root}")
    from fer_ros.training.evaluate import check_tta

    try:
        check_tta(cfg.train.tta)
    except ConfigError as err:
        raise ConfigError(f"train.tta: {err}") from None
    return cfg
