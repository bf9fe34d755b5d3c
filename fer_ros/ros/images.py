"""ROS image messages <-> numpy arrays, without cv_bridge.

Works on rclpy messages and on rosbags' message classes alike (both expose the same fields).
Every check that protects the pipeline from a malformed frame lives here, so the node and the
bag tools drop the same frames for the same reasons.
"""

import sys

import cv2
import numpy as np
from rosbags.image.image import ImageError, convert_color, to_cvtype

from fer_ros.errors import FrameError
from fer_ros.imagecheck import DEFAULT_MAX_PIXELS, check_pixels, decode


def image_to_rgb(msg, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Convert a sensor_msgs/Image of any common encoding to an (H, W, 3) uint8 RGB array."""
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    check_pixels(width, height, max_pixels)
    encoding = msg.encoding.lower()
    try:
        depth, _, typestr, channels = to_cvtype(encoding)
    except ImageError:
        raise FrameError(f"unknown image encoding {msg.encoding!r}") from None
    # NV12/NV21 carry a half-height chroma plane below the luma rows.
    rows = height * 3 // 2 if encoding in ("nv12", "nv21") else height
    row_bytes = width * channels * depth // 8
    if step < row_bytes:
        raise FrameError(
            f"step {step} is smaller than width x pixel size ({row_bytes}) for {encoding}"
        )
    data = msg.data
    size = len(data)
    if size < step * rows:
        raise FrameError(f"data is {size} bytes, shorter than step x height ({step * rows})")
    # Zero-copy view, then drop any row padding beyond the pixels.
    raw = np.frombuffer(data, dtype=np.uint8, count=step * rows).reshape(rows, step)[:, :row_bytes]
    dtype = np.dtype(typestr)
    if dtype.itemsize > 1:
        byteorder = ">" if msg.is_bigendian else "<"
        raw = np.ascontiguousarray(raw).view(dtype.newbyteorder(byteorder))
        if (byteorder == ">") == (sys.byteorder == "little"):
            raw = raw.astype(dtype)  # to native order for OpenCV
    pixels = raw.reshape(rows, width, channels) if channels > 1 else raw.reshape(rows, width)
    try:
        rgb = convert_color(pixels, encoding, "rgb8")
    except (ImageError, cv2.error) as err:
        raise FrameError(f"cannot convert {encoding} to rgb8: {err}") from None
    return np.ascontiguousarray(rgb, dtype=np.uint8)


def compressed_to_rgb(msg, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode a sensor_msgs/CompressedImage (JPEG or PNG, by its bytes) to an (H, W, 3) uint8 RGB
    array; its size is checked from the header before anything is decoded (fer_ros.imagecheck)."""
    try:
        bgr = decode(np.frombuffer(msg.data, dtype=np.uint8), cv2.IMREAD_COLOR, max_pixels)
    except FrameError as err:
        raise FrameError(f"compressed frame (format {msg.format!r}): {err}") from None
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def message_to_rgb(msg, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Either kind of image message to RGB, at most `max_pixels` large; CompressedImage is
    recognised by its `format` field."""
    return (
        compressed_to_rgb(msg, max_pixels)
        if hasattr(msg, "format")
        else image_to_rgb(msg, max_pixels)
    )


def fill_image(msg, rgb: np.ndarray, encoding: str = "rgb8"):
    """Fill a sensor_msgs/Image (rclpy or rosbags class) from an RGB array; returns msg."""
    if encoding == "bgr8":
        pixels = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    elif encoding == "mono8":
        pixels = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    elif encoding == "rgb8":
        pixels = rgb
    else:
        raise ValueError(f"fill_image writes rgb8, bgr8 or mono8, not {encoding!r}")
    pixels = np.ascontiguousarray(pixels, dtype=np.uint8)
    msg.height, msg.width = pixels.shape[:2]
    msg.encoding = encoding
    msg.is_bigendian = 0
    msg.step = pixels.shape[1] * (1 if pixels.ndim == 2 else pixels.shape[2])
    # bytes, not the array: rclpy copies an ndarray element by element (tens of ms per frame).
    msg.data = pixels.tobytes() if not isinstance(msg.data, np.ndarray) else pixels.reshape(-1)
    return msg
