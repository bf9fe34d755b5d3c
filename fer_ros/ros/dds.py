"""Settings that let camera-sized images cross processes without loss (Fast DDS + glibc).

Fast DDS's default shared-memory segment (512 KB) belongs to the publishing process and is smaller
than a 640x480 RGB frame: best-effort frames are then silently lost and reliable ones resent after
delays. The shipped profile's 128 MB segment carries frames up to 12 MP (4000x3000); keeping glibc
from returning multi-MB buffers to the system spares an mmap/munmap per frame. The publisher
(camera driver) must load the profile: setting it only in the subscriber changes nothing. Figures:
docs/ros.md, "Camera-sized images between processes".
"""

import ctypes
import importlib.metadata
import os

from fer_ros.paths import config_file

PROFILE = "fastdds_large_images.xml"
# glibc otherwise mmaps and unmaps every multi-MB message buffer, costing ms per frame.
GLIBC_TUNABLES = "glibc.malloc.mmap_threshold=16777216:glibc.malloc.trim_threshold=268435456"
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def tune_allocator() -> bool:
    """Apply the allocator settings to this process (call before rclpy.init)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, 16 * 1024 * 1024)) and bool(
        libc.mallopt(_M_TRIM_THRESHOLD, 256 * 1024 * 1024)
    )


# Fast DDS 3 (Kilted and later) reads the first, Fast DDS 2 (Humble, Jazzy) only the second. With
# the wrong one, Jazzy keeps its 512 KB shared-memory segment and loses most 640x480 frames; with
# both, Kilted warns in every process that the second is deprecated. So only the one that counts is
# set.
PROFILE_VARS = ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE")
FAST_DDS_2_DISTROS = ("humble", "iron", "jazzy")


def profile_variable() -> str:
    """The variable this environment's Fast DDS reads its XML profile from: by ROS_DISTRO in a
    sourced ROS install, else by the rclpy wheel's version (9 = Kilted, the first with Fast DDS
    3)."""
    distro = os.environ.get("ROS_DISTRO", "")
    if distro:
        return PROFILE_VARS[1] if distro in FAST_DDS_2_DISTROS else PROFILE_VARS[0]
    try:
        major = int(importlib.metadata.version("ros-rclpy").split(".")[0])
    except (importlib.metadata.PackageNotFoundError, ValueError):
        return PROFILE_VARS[0]
    return PROFILE_VARS[0] if major >= 9 else PROFILE_VARS[1]


def active_profile(env: dict | None = None) -> str:
    """The Fast DDS XML profile this process loaded (its path), or a note that it loaded none."""
    env = os.environ if env is None else env
    return (
        env.get(profile_variable())
        or f"none ({profile_variable()} unset: 512 KB shared-memory segment)"
    )


def large_image_env(base: dict | None = None) -> dict:
    """Environment for a child process that publishes or receives camera images.

    A profile the user already chose (under either name) is kept, under the name that counts here.
    """
    env = dict(os.environ if base is None else base)
    profile = next(
        (env[name] for name in PROFILE_VARS if env.get(name)), str(config_file(PROFILE))
    )
    env.setdefault(profile_variable(), profile)
    if "GLIBC_TUNABLES" not in env:
        env["GLIBC_TUNABLES"] = GLIBC_TUNABLES
    return env


def prepare_publisher() -> str:
    """Make this process a camera-image publisher: the large-image profile (under the name this
    Fast DDS reads, a profile already chosen kept) and the allocator settings. Call before
    rclpy.init: Fast DDS reads the profile when the first participant is created. Returns the
    profile's path."""
    name = profile_variable()
    os.environ.setdefault(name, large_image_env()[name])
    tune_allocator()
    return os.environ[name]
