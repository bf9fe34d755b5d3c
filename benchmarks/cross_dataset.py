"""fer_ros beside its peers on every labelled set at hand, and fer_ros through its own pipeline.

Sets (each skipped, saying why, when absent):
  publictest   FER2013 PublicTest, raw pixels (<data>/ferplus/fer2013.csv, from ferplus.tar.xz),
  48x48
               grey crops, FER2013's original labels (3,556 faces)
  publictest_ferplus
               the same faces under FER+'s majority labels (fer2013new.csv beside it; faces
               without a
               majority, or won by unknown, left out: 3,165)
  muxspace     muxspace val (<data>/muxspace/val), 128x128 grey crops; 92 % neutral or happy, so
  its
               macro-recall (mean per-class recall) is the figure to compare, not its accuracy
  taiwanese    taiwanese_dev (<data>/taiwanese_dev), whole 256x256 photos: every model gets the
  face
               crop the node makes (its default detector and crop); "fer_ros_pipeline" is the
               node's
               whole pipeline (`Pipeline.process`: detector, crop, engine) on the photos
Every model resizes the crop its own way: fer_ros by its checkpoint's preprocessing (the engine),
the peers as their README says (../shared/peers). A photo where no face is found counts as wrong.
Figures: accuracy, macro-recall, macro-F1 and the expected calibration error (ECE, 15 bins: how far
the confidence is from the accuracy; lower is better).

    python benchmarks/cross_dataset.py --data <dir> [--peers ../shared/peers] [--checkpoint M]
        --json benchmarks/results/cross_dataset.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

from fer_ros.inference.crops import face_crop
from fer_ros.inference.engine import Engine, EngineOptions
from fer_ros.inference.faces import Face
from fer_ros.inference.pipeline import Pipeline, PipelineOptions
from fer_ros.labels import FER7, canonical
from fer_ros.metrics import calibration_error

PEERS = {  # file, input, output order (../shared/peers/README.md)
    "mini_xception": (
        "fer_mini_xception.onnx",
        ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"),
    ),
    "faceapi": (
        "faceapi_face_expression.onnx",
        ("neutral", "happy", "sad", "angry", "fear", "disgust", "surprise"),
    ),
}
REPO = Path(__file__).resolve().parents[1]


class Peer:
    """An ONNX peer with its own preprocessing; probabilities come back in FER7 order."""

    def __init__(self, name: str, folder: Path):
        import onnxruntime as ort

        file, order = PEERS[name]
        options = ort.SessionOptions()
        options.intra_op_num_threads = 2
        self.session = ort.InferenceSession(
            str(folder / file), options, providers=["CPUExecutionProvider"]
        )
        self.input = self.session.get_inputs()[0].name
        self.name, self.columns = name, [order.index(c) for c in FER7]

    def batch(self, crops: list[np.ndarray]) -> np.ndarray:
        grey = [c if c.ndim == 2 else cv2.cvtColor(c, cv2.COLOR_RGB2GRAY) for c in crops]
        if self.name == "mini_xception":  # 64x64 grey, x/255 - 0.5, x2
            x = np.stack(
                [cv2.resize(g, (64, 64), interpolation=cv2.INTER_LINEAR) for g in grey]
            ).astype(np.float32)
            x = ((x / 255.0 - 0.5) * 2.0)[..., None]
        else:  # 112x112 RGB 0-255, a grey face copied into the three channels
            x = np.stack(
                [cv2.resize(g, (112, 112), interpolation=cv2.INTER_LINEAR) for g in grey]
            ).astype(np.float32)
            x = np.repeat(x[..., None], 3, axis=-1)
        return self.session.run(None, {self.input: x})[0][:, self.columns]

    def predict(self, crops):
        return np.concatenate([self.batch(crops[i : i + 256]) for i in range(0, len(crops), 256)])


def fer_ros_predict(engine: Engine, crops: list[np.ndarray]) -> np.ndarray:
    probs = np.concatenate([engine.predict(crops[i : i + 256]) for i in range(0, len(crops), 256)])
    return probs[:, [list(engine.labels).index(c) for c in FER7]]


def scores(truth: list[str], probs: np.ndarray, found: np.ndarray | None = None) -> dict:
    """Accuracy, macro-F1, macro-recall and per-class recall over the classes present; a row not
    `found` (no face) counts as wrong and as nobody's prediction."""
    true = np.array([FER7.index(t) for t in truth])
    pred = probs.argmax(1)
    if found is not None:
        pred = np.where(found, pred, -1)
    present = sorted(set(true.tolist()))
    recall, f1 = {}, []
    for c in present:
        tp = float(np.sum((pred == c) & (true == c)))
        r = tp / max(1, np.sum(true == c))
        p = tp / max(1, np.sum(pred == c))
        recall[FER7[c]] = round(100.0 * r, 1)
        f1.append(2 * p * r / (p + r) if p + r > 0 else 0.0)
    answered = np.ones(len(true), bool) if found is None else np.asarray(found, bool)
    return {
        "n": len(truth),
        "accuracy": round(100.0 * float(np.mean(pred == true)), 2),
        "macro_f1": round(float(np.mean(f1)), 4),
        "macro_recall": round(float(np.mean(list(recall.values()))), 1),
        "ece": round(calibration_error(probs[answered], true[answered]), 4),
        "recall": recall,
    }


def csv_set(folder: Path, fmt: str) -> tuple[list[np.ndarray], list[str]]:
    """PublicTest's faces and labels, read by the training loaders (fer2013 or ferplus
    majority)."""
    from fer_ros.training.datasets import load_splits

    val = load_splits(fmt, folder, "fer7", target="majority")["val"]
    return [img[..., 0] for img in val.images.numpy()], [
        val.classes[int(t)] for t in val.hard_targets()
    ]


def crop_set(folder: Path) -> tuple[list[np.ndarray], list[str]]:
    crops, truth = [], []
    for path in sorted(folder.glob("*/*.jpg")):
        crops.append(cv2.imread(str(path), cv2.IMREAD_GRAYSCALE))
        truth.append(canonical(path.parent.name))
    return crops, truth


def photo_set(folder: Path, engine: Engine, options: PipelineOptions):
    """The node's crops of the photos (its default detector and crop rule), and fer_ros's answers
    through the whole pipeline."""
    pipeline = Pipeline(engine, options)
    crops, truth, found, piped = [], [], [], []
    for i, path in enumerate(sorted(folder.glob("*/*.jpg"))):
        rgb = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        truth.append(canonical(path.parent.name))
        result = pipeline.process(
            rgb, now=i * 10.0
        )  # 10 s apart: nothing carries over between photos
        found.append(bool(result.faces))
        row = np.zeros(len(FER7), np.float32)
        crops.append(rgb)
        if result.faces:  # the peers get the crop of the very face the pipeline classified
            face = result.faces[0]
            crops[-1] = face_crop(
                rgb,
                Face(face.box, face.landmarks, face.score),
                pipeline.detector_name,
                options.face_crop,
                options.face_margin,
            )
            p = face.probabilities
            row[[FER7.index(c) for c in engine.labels]] = p
        piped.append(row)
    pipeline.close()
    return crops, truth, np.array(found), np.stack(piped), pipeline.detector_name


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data", type=Path, required=True, help="folder with ferplus/, muxspace/, taiwanese_dev/"
    )
    parser.add_argument("--peers", type=Path, default=REPO.parent / "shared" / "peers")
    parser.add_argument(
        "--no-peers", action="store_true", help="fer_ros only (scoring a training run)"
    )
    parser.add_argument(
        "--checkpoint", default="", help="fer_ros checkpoint (default: the shipped model)"
    )
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    engine = Engine.from_options(EngineOptions(checkpoint=args.checkpoint))
    engine.warmup()
    models: dict = {"fer_ros": lambda crops: fer_ros_predict(engine, crops)}
    skipped = {}
    if args.no_peers:
        pass
    elif all((args.peers / f).is_file() for f, _ in PEERS.values()):
        for name in PEERS:
            models[name] = Peer(name, args.peers).predict
    else:
        skipped["peers"] = f"no peer models in {args.peers}"
    options = PipelineOptions(
        detect_async=False, detect_every=1
    )  # the node's defaults, one photo at a time
    results: dict = {}
    ferplus = args.data / "ferplus"
    for set_name, folder in (
        ("publictest", ferplus),
        ("publictest_ferplus", ferplus),
        ("muxspace", args.data / "muxspace" / "val"),
        ("taiwanese", args.data / "taiwanese_dev"),
    ):
        csv_name = {"publictest": "fer2013.csv", "publictest_ferplus": "fer2013new.csv"}.get(
            set_name
        )
        if csv_name and not (folder / csv_name).is_file():
            skipped[set_name] = f"no {folder / csv_name} (tar -xJf ferplus.tar.xz -C <data>)"
            continue
        if not csv_name and not any(folder.glob("*/*.jpg")):
            skipped[set_name] = f"no {folder}/<class>/*.jpg"
            continue
        found = None
        if csv_name:
            crops, truth = csv_set(folder, "fer2013" if set_name == "publictest" else "ferplus")
        elif set_name == "taiwanese":
            crops, truth, found, piped, detector = photo_set(folder, engine, options)
            results.setdefault(set_name, {})["fer_ros_pipeline"] = scores(truth, piped, found)
            results[set_name]["crops"] = (
                f"{detector}, face_crop {options.face_crop}, margin {options.face_margin:g}"
            )
        else:
            crops, truth = crop_set(folder)
        for name, predict in models.items():
            results.setdefault(set_name, {})[name] = scores(truth, predict(crops), found)
            print(f"{set_name:10s} {name:16s} {json.dumps(results[set_name][name])}", flush=True)
        if "fer_ros_pipeline" in results[set_name]:
            print(
                f"{set_name:10s} fer_ros_pipeline "
                f"{json.dumps(results[set_name]['fer_ros_pipeline'])}",
                flush=True,
            )
    out = {"model": engine.model_id, "skipped": skipped, "results": results}
    engine.close()
    print(table(out))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2) + "\n")
        args.json.with_suffix(".txt").write_text(table(out))
    return 0


def table(out: dict) -> str:
    names = ["fer_ros", "fer_ros_pipeline", *PEERS]
    lines = [
        f"fer_ros model {out['model']}",
        "",
        "| set | figure | " + " | ".join(names) + " |",
        "|---|---|" + "---|" * len(names),
    ]
    for set_name, per_model in out["results"].items():
        for figure in ("accuracy", "macro_recall", "macro_f1", "ece"):
            cells = [str(per_model[n][figure]) if n in per_model else "" for n in names]
            lines.append(f"| {set_name} | {figure} | " + " | ".join(cells) + " |")
    for k, v in out["skipped"].items():
        lines.append(f"skipped {k}: {v}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
