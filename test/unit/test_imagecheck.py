"""Encoded images checked before decoding: JPEG and PNG only (by their bytes), size from the header
within the pixel budget, on every path that decodes an image (frames, image files, training
sets)."""

import os

import cv2
import numpy as np
import pytest
import skimage.data
from bounded import run_bounded
from hostile import png_bomb

from fer_ros.errors import FrameError
from fer_ros.imagecheck import DEFAULT_MAX_PIXELS, decode, encoded_size, read_file, read_image


def encoded(ext: str, image: np.ndarray, *params) -> bytes:
    ok, data = cv2.imencode(ext, image, list(params))
    assert ok
    return data.tobytes()


def test_the_bomb_is_a_real_png_that_opencv_would_decode():
    """The test's bomb is not a straw man: a small one of the same making decodes."""
    small = png_bomb(300, 250)
    assert cv2.imdecode(np.frombuffer(small, np.uint8), cv2.IMREAD_GRAYSCALE).shape == (250, 300)
    assert decode(small).shape == (250, 300, 3)


@pytest.mark.parametrize("size", [(16000, 16000), (30000, 2000), (20000, 20000)])
def test_a_png_bomb_is_refused_from_its_header(size):
    bomb = png_bomb(*size)
    assert len(bomb) < 2_000_000  # a few hundred KB claiming hundreds of MP
    assert encoded_size(bomb) == ("png", *size)
    with pytest.raises(FrameError, match="max_pixels|absurd"):
        decode(bomb)


def test_sizes_read_from_jpeg_and_png_headers_match_the_decoded_image():
    photo = cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR)[:301, :457]
    cases = {
        "baseline jpeg": encoded(".jpg", photo),
        "progressive jpeg": encoded(".jpg", photo, cv2.IMWRITE_JPEG_PROGRESSIVE, 1),
        "png": encoded(".png", photo),
        "grey png": encoded(".png", photo[..., 0]),
    }
    for name, data in cases.items():
        kind, width, height = encoded_size(data)
        assert (width, height) == (457, 301) and kind in name, name
        assert decode(data).shape == (301, 457, 3), name


def test_a_12_megapixel_camera_frame_passes_the_default_budget():
    frame = np.zeros((3000, 4000, 3), np.uint8)
    frame[::50] = 255
    assert 4000 * 3000 <= DEFAULT_MAX_PIXELS < 16000 * 16000
    assert decode(encoded(".jpg", frame)).shape == (3000, 4000, 3)
    with pytest.raises(FrameError, match="max_pixels"):
        decode(encoded(".jpg", frame), max_pixels=4000 * 3000 - 1)


@pytest.mark.parametrize(
    "ext,name",
    [(".ppm", "PPM"), (".pgm", "PGM"), (".tiff", "TIFF"), (".webp", "WebP"), (".bmp", "BMP")],
)
def test_formats_other_than_jpeg_and_png_are_refused_by_their_bytes(ext, name):
    data = encoded(ext, np.full((40, 60) if ext == ".pgm" else (40, 60, 3), 99, np.uint8))
    assert (
        cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) is not None
    )  # OpenCV would decode it
    with pytest.raises(FrameError, match=f"{name} image refused: only JPEG and PNG"):
        decode(data)


@pytest.mark.parametrize(
    "data,why",
    [
        (b"", "no data"),
        (b"\xff\xd8\xff", "frame header"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 5 + b"\xff\xda", "frame header"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDX" + b"\x00" * 13, "IHDR"),
        (b"garbage!", "unrecognised"),
    ],
)
def test_truncated_or_broken_headers_are_one_frame_error(data, why):
    with pytest.raises(FrameError, match=why):
        decode(data)


def test_image_files_go_through_the_same_checks(tmp_path):
    good, bomb, ppm = tmp_path / "good.png", tmp_path / "bomb.png", tmp_path / "ppm.jpg"
    good.write_bytes(encoded(".png", np.full((30, 20, 3), 7, np.uint8)))
    bomb.write_bytes(png_bomb(16000, 16000))
    ppm.write_bytes(encoded(".ppm", np.full((30, 20, 3), 7, np.uint8)))  # a PPM named .jpg
    assert read_image(good).shape == (30, 20, 3)
    with pytest.raises(FrameError, match="bomb.png.*max_pixels"):
        read_image(bomb)
    with pytest.raises(FrameError, match="PPM image refused"):
        read_image(ppm)
    with pytest.raises(FrameError, match="no image file"):
        read_image(tmp_path / "missing.png")


def test_training_sets_and_images_bag_skip_refused_files(tmp_path):
    from fer_ros.bags.folder import frame_message
    from fer_ros.bags.io import make_header, typestore
    from fer_ros.training.datasets import ImageFileDataset

    paths = {
        "good": tmp_path / "good.jpg",
        "bomb": tmp_path / "bomb.png",
        "ppm": tmp_path / "ppm.jpg",
    }
    paths["good"].write_bytes(encoded(".jpg", np.full((48, 48), 99, np.uint8)))
    paths["bomb"].write_bytes(png_bomb(16000, 16000))
    paths["ppm"].write_bytes(encoded(".ppm", np.full((48, 48, 3), 99, np.uint8)))
    data = ImageFileDataset(
        [str(p) for p in paths.values()], [0, 1, 2], ("a", "b", "c"), "gray", 48
    )
    assert data.load(0).shape == (48, 48, 1) and data.load(1) is None and data.load(2) is None
    store = typestore()
    header = make_header(store, 1, "camera")
    assert frame_message(store, paths["good"], header, "auto").encoding == "mono8"
    assert (
        frame_message(store, paths["good"], header, "jpeg").data.tobytes()
        == paths["good"].read_bytes()
    )
    for name in ("bomb", "ppm"):
        for encoding in ("auto", "jpeg", "png"):
            assert frame_message(store, paths[name], header, encoding) is None, (name, encoding)


def test_only_regular_files_are_read_and_never_more_than_the_cap(tmp_path):
    (tmp_path / "folder.jpg").mkdir()
    with pytest.raises(FrameError, match="is a folder"):
        read_image(tmp_path / "folder.jpg")
    big = tmp_path / "big.png"
    big.write_bytes(encoded(".png", np.full((30, 20, 3), 7, np.uint8)))
    with pytest.raises(FrameError, match="more than an image file may be"):
        read_file(big, max_bytes=100)
    (tmp_path / "link.png").symlink_to(big)  # a link to a regular file is one
    assert read_image(tmp_path / "link.png").shape == (30, 20, 3)


def test_images_bag_skips_a_fifo_and_a_device_named_like_images(tmp_path):
    """A FIFO named x.jpg once hung images-bag for ever, a link to /dev/zero ran it out of memory:
    both are skipped and listed, in a child that may use 1.5 GB and two minutes."""
    happy = tmp_path / "faces" / "happy"
    happy.mkdir(parents=True)
    cv2.imwrite(str(happy / "a.jpg"), np.full((48, 48), 99, np.uint8))
    os.mkfifo(happy / "fifo.jpg")
    (happy / "zero.jpg").symlink_to("/dev/zero")
    done = run_bounded(f"""
        from fer_ros.cli import main
        sys.exit(main(["images-bag", {str(tmp_path / "faces")!r}, {str(tmp_path / "bag")!r}]))
    """)
    assert done.returncode == 0, done.stderr
    assert "1 frames" in done.stdout and "skipped 2 unreadable" in done.stdout, done.stdout
    assert "fifo.jpg" in done.stdout and "zero.jpg" in done.stdout
    with pytest.raises(FrameError, match="is a FIFO"):
        read_image(happy / "fifo.jpg")  # O_NONBLOCK: refused without waiting for a writer
    with pytest.raises(FrameError, match="is a device"):
        read_image(happy / "zero.jpg")
