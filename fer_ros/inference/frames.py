"""Frames handed in by a person (an array, an image file) as the RGB arrays the pipeline takes.

The same limits as the node's message decoders (fer_ros.ros.images): a frame of zero or absurd size
is refused, not allocated. Problems raise FrameError (a FerRosError): one line, exit 2 in the CLI.
"""

from pathlib import Path

import cv2
import numpy as np

from fer_ros.errors import FrameError

# Beyond this a frame is treated as corrupt rather than allocated (a 16k x 16k camera is not real).
MAX_SIDE = 16384
COLORS = ("rgb", "bgr")


def check_size(width: int, height: int, what: str = "image") -> None:
    if not (0 < height <= MAX_SIDE and 0 < width <= MAX_SIDE):
        raise FrameError(f"{what} size {width}x{height} is zero or absurd (at most {MAX_SIDE} a side)")


def to_rgb(image: np.ndarray, color: str = "rgb") -> np.ndarray:
    """An (H, W, 3) uint8 RGB array from an 8-bit grey, RGB/BGR or RGBA/BGRA array (`color` names the
    order of a colour array's channels)."""
    if color not in COLORS:
        raise FrameError(f"color must be one of {', '.join(COLORS)}, not {color!r}")
    if not isinstance(image, np.ndarray):
        raise FrameError(f"expected a numpy array or an image path, not {type(image).__name__}")
    if image.dtype != np.uint8:
        raise FrameError(f"expected 8-bit pixels (uint8), not {image.dtype}: scale and convert first")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (3, 4)):
        raise FrameError(f"expected an (H, W), (H, W, 3) or (H, W, 4) image, not shape {image.shape}")
    check_size(image.shape[1], image.shape[0])
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB if color == "bgr" else cv2.COLOR_RGBA2RGB)
    if color == "bgr":
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    return np.ascontiguousarray(image)


def read_image(path) -> np.ndarray:
    """An image file (anything OpenCV decodes) as RGB."""
    path = Path(path)
    if not path.is_file():
        raise FrameError(f"no image file {path}")
    data = np.fromfile(path, np.uint8)  # imread cannot tell a missing file from a corrupt one
    if data.size == 0:
        raise FrameError(f"{path} is empty")
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if bgr is None:
        raise FrameError(f"{path} is not an image OpenCV can decode")
    check_size(bgr.shape[1], bgr.shape[0], str(path))
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
