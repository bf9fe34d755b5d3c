"""Image messages -> RGB arrays for every common encoding, and clear errors for malformed
frames."""

import cv2
import numpy as np
import pytest
from sensor_msgs.msg import CompressedImage, Image

from fer_ros.ros.images import (
    FrameError,
    compressed_to_rgb,
    fill_image,
    image_to_rgb,
    message_to_rgb,
)

RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, (6, 8, 3), dtype=np.uint8)


def make(encoding, pixels, step=None, bigendian=False):
    msg = Image(
        height=pixels.shape[0], width=pixels.shape[1], encoding=encoding, is_bigendian=bigendian
    )
    raw = pixels.tobytes()
    row = len(raw) // pixels.shape[0]
    msg.step = step or row
    if msg.step > row:  # padded rows
        raw = b"".join(
            raw[i * row : (i + 1) * row] + b"\x00" * (msg.step - row)
            for i in range(pixels.shape[0])
        )
    msg.data = raw
    return msg


@pytest.mark.parametrize(
    "encoding,pixels,expected",
    [
        ("rgb8", RGB, RGB),
        ("bgr8", RGB[..., ::-1].copy(), RGB),
        ("rgba8", np.dstack([RGB, np.full(RGB.shape[:2], 255, np.uint8)]), RGB),
        ("bgra8", np.dstack([RGB[..., ::-1], np.zeros(RGB.shape[:2], np.uint8)]), RGB),
    ],
)
def test_colour_encodings(encoding, pixels, expected):
    assert np.array_equal(image_to_rgb(make(encoding, pixels)), expected)


def test_mono8_and_mono16_become_grey_rgb():
    grey = RGB[..., 0].copy()
    assert np.array_equal(image_to_rgb(make("mono8", grey)), np.dstack([grey] * 3))
    wide = grey.astype(np.uint16) * 257  # full 16-bit range maps back onto 8 bits
    out = image_to_rgb(make("mono16", wide))
    assert out.dtype == np.uint8 and np.abs(out[..., 0].astype(int) - grey).max() <= 1
    big = image_to_rgb(make("mono16", wide.byteswap(), bigendian=True))
    assert np.array_equal(big, out)


def test_yuv422_and_bayer_decode_to_the_right_colour():
    flat = np.zeros((4, 8, 3), np.uint8)
    flat[:] = (200, 40, 40)  # a red patch
    r, g, b = np.array([200, 40, 40]) / 255.0  # BT.601 video range, as cameras send UYVY
    y = round(16 + 65.481 * r + 128.553 * g + 24.966 * b)
    u = round(128 - 37.797 * r - 74.203 * g + 112.0 * b)
    v = round(128 + 112.0 * r - 93.786 * g - 18.214 * b)
    uyvy = np.tile(np.array([[u, y], [v, y]], np.uint8).reshape(1, 2, 2), (4, 4, 1)).reshape(
        4, 8, 2
    )
    out = image_to_rgb(make("yuv422", uyvy))
    assert out.shape == (4, 8, 3) and np.abs(out.astype(int) - flat).max() < 12
    bayer = np.zeros((4, 8), np.uint8)  # RGGB mosaic of the same colour
    bayer[0::2, 0::2], bayer[0::2, 1::2], bayer[1::2, 0::2], bayer[1::2, 1::2] = 200, 40, 40, 40
    out = image_to_rgb(make("bayer_rggb8", bayer))
    assert out.shape == (4, 8, 3)
    assert out[2, 2, 0] > 150 and out[2, 2, 1] < 80 and out[2, 2, 2] < 80


def _video_range_yuv(rgb):
    r, g, b = np.asarray(rgb) / 255.0  # BT.601 video range, as cameras send it
    return (
        round(16 + 65.481 * r + 128.553 * g + 24.966 * b),
        round(128 - 37.797 * r - 74.203 * g + 112.0 * b),
        round(128 + 112.0 * r - 93.786 * g - 18.214 * b),
    )


def test_yuyv_and_nv12_decode_to_the_right_colour():
    colour = (200, 40, 40)
    y, u, v = _video_range_yuv(colour)
    yuyv = np.tile(np.array([[y, u], [y, v]], np.uint8).reshape(1, 2, 2), (4, 4, 1)).reshape(
        4, 8, 2
    )
    out = image_to_rgb(make("yuv422_yuy2", yuyv))
    assert out.shape == (4, 8, 3) and np.abs(out.astype(int) - colour).max() < 12
    # NV12: a full-size luma plane, then one interleaved U,V row per two luma rows.
    planes = np.vstack([np.full((4, 8), y, np.uint8), np.tile(np.array([u, v], np.uint8), (2, 4))])
    msg = Image(height=4, width=8, encoding="nv12", step=8, data=planes.tobytes())
    out = image_to_rgb(msg)
    assert out.shape == (4, 8, 3) and np.abs(out.astype(int) - colour).max() < 12
    short = Image(
        height=4, width=8, encoding="nv12", step=8, data=planes.tobytes()[:-8]
    )  # chroma cut short
    with pytest.raises(FrameError, match="shorter than step"):
        image_to_rgb(short)


@pytest.mark.parametrize("encoding", ["rgb16", "bgr16"])
def test_16_bit_colour_maps_onto_8_bits(encoding):
    wide = RGB.astype(np.uint16) * 257
    pixels = wide if encoding == "rgb16" else wide[..., ::-1].copy()
    out = image_to_rgb(make(encoding, pixels))
    assert out.dtype == np.uint8 and np.abs(out.astype(int) - RGB).max() <= 1
    assert np.array_equal(image_to_rgb(make(encoding, pixels.byteswap(), bigendian=True)), out)


def test_row_padding_is_dropped():
    assert np.array_equal(image_to_rgb(make("rgb8", RGB, step=RGB.shape[1] * 3 + 8)), RGB)


@pytest.mark.parametrize(
    "broken,reason",
    [
        (lambda m: setattr(m, "data", m.data[:-5]), "shorter than step"),
        (lambda m: setattr(m, "step", 3), "step"),
        (lambda m: setattr(m, "encoding", "weird42"), "unknown image encoding"),
        (lambda m: setattr(m, "height", 0), "zero or absurd"),
        (lambda m: setattr(m, "width", 100000), "zero or absurd"),
    ],
)
def test_malformed_frames_raise_frame_error(broken, reason):
    msg = make("rgb8", RGB)
    broken(msg)
    with pytest.raises(FrameError, match=reason):
        image_to_rgb(msg)


def test_compressed_jpeg_and_png_and_corrupt():
    bgr = cv2.cvtColor(RGB, cv2.COLOR_RGB2BGR)
    png = CompressedImage(format="png", data=cv2.imencode(".png", bgr)[1].tobytes())
    assert np.array_equal(compressed_to_rgb(png), RGB)
    big = cv2.resize(RGB, (64, 48), interpolation=cv2.INTER_NEAREST)
    jpeg = CompressedImage(
        format="jpeg", data=cv2.imencode(".jpg", cv2.cvtColor(big, cv2.COLOR_RGB2BGR))[1].tobytes()
    )
    out = message_to_rgb(jpeg)
    assert out.shape == (48, 64, 3) and np.abs(out.astype(int) - big).mean() < 20
    with pytest.raises(FrameError, match="corrupt"):
        compressed_to_rgb(CompressedImage(format="jpeg", data=jpeg.data[:40]))
    with pytest.raises(FrameError, match="no data"):
        compressed_to_rgb(CompressedImage(format="jpeg"))


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "mono8"])
def test_fill_image_round_trips(encoding):
    msg = fill_image(Image(), RGB, encoding)
    out = image_to_rgb(msg)
    if encoding == "mono8":
        assert np.array_equal(out[..., 0], cv2.cvtColor(RGB, cv2.COLOR_RGB2GRAY))
    else:
        assert np.array_equal(out, RGB)
