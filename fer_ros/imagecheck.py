"""Encoded images (JPEG, PNG) checked before they are decoded: format by the bytes, size by the
header.

A few hundred KB of PNG can claim 20000x20000 pixels and make a decoder allocate gigabytes. So the
width and height are read from the file's own header (PNG's IHDR, JPEG's start-of-frame marker) and
an image above the pixel budget is refused before any pixel is allocated. Only JPEG and PNG are
accepted, recognised by their first bytes whatever a message's `format` field or a file's suffix
says: every other decoder OpenCV carries (PPM, TIFF, WebP, ...) is more surface than fer_ros needs.

The node's compressed frames, bag-eval's, images-bag's files and the training sets' image files all
come through `decode`, so every decoding path refuses the same images for the same reasons.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from fer_ros.errors import FrameError
from fer_ros.options import Checked, option

# 16 MP: a 12 MP (4000x3000) camera frame fits, a 16000x16000 bomb does not; decoded as BGR it is
# 48 MB, a few copies of which (RGB, detector input) stay within a few hundred MB.
DEFAULT_MAX_PIXELS = 16_777_216
# Beyond this a side is treated as corrupt rather than allocated (no camera is that wide).
MAX_SIDE = 16384
# The largest image file read: a 16 MP 16-bit RGBA PNG stored without compression is 134 MB.
MAX_FILE_BYTES = 256 << 20
OPENCV_MAX_PIXELS = (
    1_000_000_000  # below OpenCV's own ceiling (2**30): a budget above it would mean nothing
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_SOI = b"\xff\xd8\xff"
# Start-of-frame markers carry the size; C4 (DHT), C8 (JPG) and CC (DAC) share the range but do
# not.
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_JPEG_STANDALONE = frozenset(range(0xD0, 0xD8)) | {
    0x01
}  # restart markers and TEM: no length field

# First bytes of the formats OpenCV would otherwise decode, to say which one was refused.
_OTHER_FORMATS = (
    (b"P1", "PBM"),
    (b"P2", "PGM"),
    (b"P3", "PPM"),
    (b"P4", "PBM"),
    (b"P5", "PGM"),
    (b"P6", "PPM"),
    (b"P7", "PAM"),
    (b"Pf", "PFM"),
    (b"PF", "PFM"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"BM", "BMP"),
    (b"GIF8", "GIF"),
    (b"#?RADIANCE", "HDR"),
    (b"#?RGBE", "HDR"),
    (b"v/1\x01", "OpenEXR"),
    (b"\x00\x00\x00\x0cjP  ", "JPEG 2000"),
    (b"\xff\x4f\xff\x51", "JPEG 2000"),
    (b"\x59\xa6\x6a\x95", "Sun raster"),
)


@dataclass(frozen=True)
class DecodeOptions(Checked):
    """How large an image any decoder of fer_ros may produce (fer_node's `max_pixels`
    parameter)."""

    max_pixels: int = option(
        DEFAULT_MAX_PIXELS,
        "Refuse a frame (raw, or JPEG/PNG by its header before decoding) "
        "of more than this many pixels (default 16 MP: 12 MP camera frames pass)",
        1,
        OPENCV_MAX_PIXELS,
    )


def format_name(data: bytes) -> str:
    """'jpeg' or 'png' from the first bytes; otherwise the name of what it looks like, in
    capitals."""
    head = bytes(data[:16])
    if head.startswith(PNG_SIGNATURE):
        return "png"
    if head.startswith(JPEG_SOI):
        return "jpeg"
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "WebP"
    return next((name for magic, name in _OTHER_FORMATS if head.startswith(magic)), "unrecognised")


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk, which the format requires to come first."""
    if len(data) < 24 or bytes(data[12:16]) != b"IHDR":
        raise FrameError("corrupt PNG: no IHDR header")
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def jpeg_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a JPEG's first start-of-frame marker; the markers before it are skipped
    by their length fields, so nothing of the image data is read."""
    pos, end = 2, len(data)
    while pos + 4 <= end:
        if data[pos] != 0xFF:
            raise FrameError(f"corrupt JPEG: no marker at byte {pos}")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte before a marker
            pos += 1
            continue
        if marker in _JPEG_STANDALONE:
            pos += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image, or a scan, before any frame header
            break
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        if marker in _JPEG_SOF:
            if length < 8 or pos + 9 > end:
                break
            return int.from_bytes(data[pos + 7 : pos + 9], "big"), int.from_bytes(
                data[pos + 5 : pos + 7], "big"
            )
        if length < 2:
            raise FrameError(f"corrupt JPEG: segment of length {length} at byte {pos}")
        pos += 2 + length
    raise FrameError("corrupt or truncated JPEG: no frame header (SOF) before its image data")


def encoded_size(data: bytes) -> tuple[str, int, int]:
    """(format, width, height) of a JPEG or PNG from its header; FrameError for anything else."""
    if len(data) == 0:
        raise FrameError("no data")
    data = memoryview(data).cast("B")  # ints by index, bytes-like slices, no copy of the image
    kind = format_name(data)
    if kind == "png":
        return (kind, *png_size(data))
    if kind == "jpeg":
        return (kind, *jpeg_size(data))
    raise FrameError(f"{kind} image refused: only JPEG and PNG are decoded")


def check_pixels(width: int, height: int, max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
    """FrameError unless width x height is a plausible image within the pixel budget."""
    if not (0 < width <= MAX_SIDE and 0 < height <= MAX_SIDE):
        raise FrameError(
            f"image size {width}x{height} is zero or absurd (at most {MAX_SIDE} a side)"
        )
    if width * height > max_pixels:
        raise FrameError(
            f"image of {width}x{height} = {width * height} pixels is above max_pixels "
            f"({max_pixels})"
        )


def decode(
    data, flags: int = cv2.IMREAD_COLOR, max_pixels: int = DEFAULT_MAX_PIXELS
) -> np.ndarray:
    """A JPEG or PNG (bytes or a uint8 buffer) decoded by OpenCV (BGR with IMREAD_COLOR), after its
    format and size passed the checks; FrameError names what was refused."""
    buffer = (
        np.frombuffer(data, dtype=np.uint8)
        if not isinstance(data, np.ndarray)
        else data.reshape(-1)
    )
    kind, width, height = encoded_size(buffer)
    check_pixels(width, height, max_pixels)
    try:
        image = cv2.imdecode(buffer, flags)
    except cv2.error as err:
        raise FrameError(f"cannot decode {kind}: {' '.join(str(err).split())}") from None
    if image is None:
        raise FrameError(f"corrupt or undecodable {kind} image")
    return image


def read_image(
    path: str | Path, flags: int = cv2.IMREAD_COLOR, max_pixels: int = DEFAULT_MAX_PIXELS
) -> np.ndarray:
    """An image file through the same checks as a frame (instead of cv2.imread, which has none)."""
    data = read_file(path)
    try:
        return decode(data, flags, max_pixels)
    except FrameError as err:
        raise FrameError(f"{path}: {err}") from None


def read_file(path: str | Path, max_bytes: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of a regular file (a symlink to one counts) of at most `max_bytes`. A FIFO named
    x.jpg would block the reader forever and /dev/zero would fill memory: anything but a regular
    file is refused before a byte is read."""
    try:
        # O_NONBLOCK: opening a FIFO without a writer returns at once instead of waiting for one.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise FrameError(f"no image file {path}") from None
    except OSError as err:
        raise FrameError(f"cannot read {path}: {err.strerror or err}") from None
    try:
        info = os.fstat(fd)  # of what was opened, so nothing can be swapped in after the check
        if not stat.S_ISREG(info.st_mode):
            raise FrameError(f"{path} is {_file_kind(info.st_mode)}, not an image file: refused")
        if info.st_size > max_bytes:
            raise FrameError(
                f"{path} is {info.st_size} bytes, more than an image file may be ({max_bytes})"
            )
        with os.fdopen(os.dup(fd), "rb") as f:
            data = f.read(max_bytes + 1)  # a file that grows while read is cut off, not followed
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise FrameError(f"{path} grew beyond {max_bytes} bytes while read: refused")
    return data


def _file_kind(mode: int) -> str:
    kinds = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"))
    for test, kind in kinds:
        if test(mode):
            return kind
    return "a device"  # character or block: /dev/zero, /dev/urandom, a disk
