"""Where the package's shared files (config/, launch/, models/, msg/) are installed.

A ROS 2 workspace finds them through the ament index; a pip install puts them under the
environment's prefix (share/fer_ros) without registering an index path.
"""

import sys
from pathlib import Path

from fer_ros.errors import CheckpointError, ConfigError, FerRosError

PACKAGE = "fer_ros"
# Image files the folder readers (data sets, images-bag) list; only JPEG and PNG decode
# (fer_ros.imagecheck): the others are counted as unreadable, never dropped silently.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
# The model a node runs when no checkpoint is named (installed under share/fer_ros/).
DEFAULT_MODEL = "models/fer2013_mit_b0_64.safetensors"


def share_dir() -> Path:
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory

        try:
            return Path(get_package_share_directory(PACKAGE))
        except (
            PackageNotFoundError,
            LookupError,
            ValueError,
            OSError,
        ):  # OSError: no AMENT_PREFIX_PATH
            pass
    except ImportError:
        pass
    candidate = Path(sys.prefix) / "share" / PACKAGE
    if candidate.is_dir():
        return candidate
    raise FerRosError(f"cannot find the installed share/{PACKAGE} folder; is fer_ros installed?")


def config_file(name: str) -> Path:
    return share_dir() / "config" / name


def default_checkpoint() -> Path:
    """The shipped model, used wherever no checkpoint is given (node, `fer-ros run`, bag-eval)."""
    path = share_dir() / DEFAULT_MODEL
    if not path.is_file():
        raise CheckpointError(
            f"no checkpoint given and the default model {DEFAULT_MODEL} is not installed "
            f"({path}); set the checkpoint parameter to a fer_ros .safetensors file"
        )
    return path


def existing_file(path, what: str, error: type[FerRosError] = FerRosError) -> Path:
    """`path` when it is a file; otherwise `error` saying whether it is missing or a folder."""
    path = Path(path)
    if path.is_dir():
        raise error(f"{what} {path} is a folder, not a file")
    if not path.is_file():
        raise error(f"{what} not found: {path}")
    return path


def output_folder(path, what: str) -> Path:
    """`path` when it is a folder or does not exist yet; a file there is refused before any
    work."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{what} {path} is a file, not a folder: choose another")
    return path


def output_file(path, what: str) -> Path:
    """`path` when it can be written as a file: not a folder."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{what} {path} is a folder: name a file")
    return path
