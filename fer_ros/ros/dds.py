"""Settings that let camera-sized images cross processes without loss (Fast DDS + glibc).

Fast DDS's default shared-memory segment (512 KB) belongs to the publishing process and is smaller
than a 640x480 RGB frame: best-effort frames are then silently lost and reliable ones resent after
delays. The shipped profile gives the segment room for several 720p frames; keeping glibc from
returning multi-MB buffers to the system spares an mmap/munmap per frame. The publisher (camera
driver) must load the profile: setting it only in the subscriber changes nothing. Figures: README,
"Camera-sized images between processes".
"""

import ctypes
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
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, 16 * 1024 * 1024)) and \
        bool(libc.mallopt(_M_TRIM_THRESHOLD, 256 * 1024 * 1024))


def large_image_env(base: dict | None = None) -> dict:
    """Environment for a child process that publishes or receives camera images.

    A profile the user already chose is kept.
    """
    env = dict(os.environ if base is None else base)
    env.setdefault("FASTDDS_DEFAULT_PROFILES_FILE", str(config_file(PROFILE)))
    if "GLIBC_TUNABLES" not in env:
        env["GLIBC_TUNABLES"] = GLIBC_TUNABLES
    return env
