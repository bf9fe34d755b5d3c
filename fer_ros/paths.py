"""Where the package's shared files (config/, launch/, models/) are installed.

A ROS 2 workspace finds them through the ament index; a pip install puts them under the
environment's prefix (share/fer_ros) without registering an index path.
"""

import sys
from pathlib import Path

PACKAGE = "fer_ros"


def share_dir() -> Path:
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory
        try:
            return Path(get_package_share_directory(PACKAGE))
        except (PackageNotFoundError, LookupError, ValueError, OSError):  # OSError: no AMENT_PREFIX_PATH
            pass
    except ImportError:
        pass
    candidate = Path(sys.prefix) / "share" / PACKAGE
    if candidate.is_dir():
        return candidate
    raise FileNotFoundError(f"cannot find the installed share/{PACKAGE} folder; is fer_ros installed?")


def config_file(name: str) -> Path:
    return share_dir() / "config" / name
