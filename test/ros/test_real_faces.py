"""The shipped model on real people: FER2013 PublicTest faces (raw pixels) through the node's
engine, the same faces as a camera bag through bag-eval, and a real photo through the node over
DDS.

FER2013 is read from ../shared/data/ferplus.tar.xz (or $FERPLUS_TAR); without it those tests skip.
"""

import csv
import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import cv2
import numpy as np
import pytest
from live import publish_until_answered

from fer_ros.inference.engine import Engine
from fer_ros.labels import FER7
from fer_ros.paths import DEFAULT_MODEL, default_checkpoint

REPO = Path(__file__).resolve().parents[2]
FER_TAR = Path(os.environ.get("FERPLUS_TAR") or REPO.parent / "shared" / "data" / "ferplus.tar.xz")
needs_fer2013 = pytest.mark.skipif(
    not FER_TAR.is_file(),
    reason=f"real FER2013 faces not found at {FER_TAR} "
    "(set FERPLUS_TAR to ferplus.tar.xz, which holds ferplus/fer2013.csv)",
)
# What the README and the model card state: the shipped model's PublicTest accuracy (raw pixels).
CARD = json.loads((REPO / DEFAULT_MODEL).with_suffix(".metrics.json").read_text())
PUBLIC_TEST_ACCURACY = CARD["publictest"]["accuracy"]


def public_test(per_class: int | None = None) -> list[tuple[str, str, np.ndarray]]:
    """(name, class, 48x48 grey face) of the PublicTest rows of fer2013.csv, in file order."""
    with tarfile.open(FER_TAR, "r:xz") as tar:
        member = next(m for m in tar if m.isfile() and m.name.endswith("fer2013.csv"))
        text = io.TextIOWrapper(tar.extractfile(member), encoding="utf-8")
        faces = [
            (
                f"{i:05d}.png",
                FER7[int(row["emotion"])],
                np.array(row["pixels"].split(), np.uint8).reshape(48, 48),
            )
            for i, row in enumerate(csv.DictReader(text))
            if row["Usage"] == "PublicTest"
        ]
    if per_class is None:
        return faces
    kept, seen = [], {}
    for face in faces:
        seen[face[1]] = seen.get(face[1], 0) + 1
        if seen[face[1]] <= per_class:
            kept.append(face)
    return kept


@needs_fer2013
def test_shipped_model_on_publictest_through_the_nodes_engine():
    faces = public_test()
    assert len(faces) == 3556
    with Engine.from_checkpoint(default_checkpoint(), device="cpu") as engine:
        assert engine.backend == "onnxruntime"  # what fer_node runs on a CPU
        crops = [face for _, _, face in faces]
        probs = np.concatenate(
            [engine.predict(crops[i : i + 256]) for i in range(0, len(crops), 256)]
        )
        predicted = [engine.labels[i] for i in probs.argmax(1)]
    accuracy = float(np.mean([p == label for p, (_, label, _) in zip(predicted, faces)]))
    print(f"PublicTest accuracy through Engine: {accuracy:.4f} (card: {PUBLIC_TEST_ACCURACY:.4f})")
    assert accuracy == pytest.approx(PUBLIC_TEST_ACCURACY, abs=0.005)  # the card was measured so


@needs_fer2013
def test_images_bag_through_bag_eval_scores_what_evaluate_scores(tmp_path):
    """A folder of labelled faces as a camera bag: the node's pipeline (detector none) over it
    gives exactly the accuracy `fer-ros evaluate` gives on the same images with the same back-end.
    """
    faces = public_test(per_class=60)
    for name, label, face in faces:  # PNG: the raw pixels, losslessly
        (tmp_path / "fer" / "val" / label).mkdir(parents=True, exist_ok=True)
        assert cv2.imwrite(str(tmp_path / "fer" / "val" / label / name), face)
    fer_ros = [sys.executable, "-m", "fer_ros.cli"]

    def run(*args):
        done = subprocess.run([*fer_ros, *args], capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr
        return done.stdout

    run("images-bag", str(tmp_path / "fer" / "val"), str(tmp_path / "bag"))
    run(
        "bag-eval",
        str(tmp_path / "bag"),
        "-p",
        "detector:=none",
        "--out",
        str(tmp_path / "bag_eval"),
    )
    run(
        "evaluate",
        str(default_checkpoint()),
        "--data",
        str(tmp_path / "fer"),
        "--format",
        "fer2013_folder",
        "--split",
        "val",
        "--out",
        str(tmp_path / "evaluate"),
    )
    bag = json.loads((tmp_path / "bag_eval" / "report.json").read_text())
    direct = json.loads((tmp_path / "evaluate" / "metrics.json").read_text())
    assert bag["frames"]["processed"] == direct["samples"] == len(faces)
    assert bag["backend"] == direct["backend"] == "onnxruntime"
    assert bag["accuracy"]["accuracy"] == pytest.approx(direct["accuracy"], abs=1e-12)
    assert bag["accuracy"]["per_class"]["happy"]["recall"] == pytest.approx(
        direct["per_class"]["happy"]["recall"]
    )


def test_astronaut_smiles_for_the_shipped_model_over_dds(ros, spawn):
    """fer-ros run with no checkpoint argument: the node runs the shipped model on a real photo."""
    import skimage.data
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image

    from fer_ros.msg import EmotionArray
    from fer_ros.ros.images import fill_image

    ns = "real_faces"
    node = spawn(
        str(Path(sys.executable).parent / "fer-ros"),
        "run",
        "--namespace",
        ns,
        "--image",
        f"/{ns}/camera",
        name="fer_node",
    )
    assert node.wait_for("listening on", timeout=90), node.output()
    assert (
        DEFAULT_MODEL.split("/")[-1].split(".")[0] in node.output()
    )  # the shipped model was loaded
    tester = ros.create_node("real_faces_tester")
    try:
        answers = []
        tester.create_subscription(EmotionArray, f"/{ns}/emotions", answers.append, 10)
        pub = tester.create_publisher(Image, f"/{ns}/camera", qos_profile_sensor_data)
        frame = np.zeros((480, 640, 3), np.uint8)
        frame[:, 80:560] = cv2.resize(
            skimage.data.astronaut(), (480, 480), interpolation=cv2.INTER_AREA
        )
        msg = fill_image(Image(), frame, "rgb8")
        publish_until_answered(ros, tester, pub, msg, answers, period=1.0)
        assert answers, node.output()
        faces = answers[0].faces
        assert len(faces) == 1
        top_two = [faces[0].labels[i] for i in np.argsort(faces[0].probabilities)[::-1][:2]]
        print(f"astronaut: {dict(zip(faces[0].labels, np.round(faces[0].probabilities, 3)))}")
        assert "happy" in top_two, top_two
    finally:
        tester.destroy_node()
