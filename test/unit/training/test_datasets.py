"""Every data set format, generated small in its real layout: counts, splits, label maps, bad
rows."""

import csv

import cv2
import numpy as np
import pytest
import torch

from fer_ros.labels import AFFECTNET8, FER7
from fer_ros.training.datasets import (
    DatasetError,
    all_reports,
    detect_format,
    hold_out,
    load_splits,
)


def _pixels(value: int, n: int = 48 * 48) -> str:
    return " ".join([str(value)] * n)


@pytest.fixture
def fer_csv(tmp_path):
    """FER2013 rows: emotion e gets pixel value 10 * e, so the image says which row it came
    from."""
    path = tmp_path / "fer2013.csv"
    rows = [(e, _pixels(10 * e), "Training") for e in range(7) for _ in range(3)]  # 21
    rows += [(e, _pixels(10 * e), "PublicTest") for e in range(7)]  # 7
    rows += [(e, _pixels(10 * e), "PrivateTest") for e in (0, 3, 3)]  # 3
    rows += [
        (3, _pixels(1, 100), "Training"),  # wrong pixel count
        (9, _pixels(1), "Training"),  # unknown label
        (2, _pixels(300), "Training"),  # pixel out of range
        (2, _pixels(1), "Elsewhere"),
    ]  # unknown Usage
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["emotion", "pixels", "Usage"])
        w.writerows(rows)
    return path


def test_fer2013_csv_splits_labels_and_bad_rows(fer_csv):
    splits = load_splits("fer2013", fer_csv, "fer7")
    assert {k: len(v) for k, v in splits.items()} == {"train": 21, "val": 7, "test": 3}
    train = splits["train"]
    assert train.images.dtype == torch.uint8 and train.images.shape[1:] == (48, 48, 1)
    # FER2013's order is the canonical FER7 order: label e -> FER7[e]; the pixels carry e.
    for img, t in zip(train.images, train.targets):
        assert int(img[0, 0, 0]) == 10 * FER7.index(FER7[int(t)])
    assert train.class_counts().tolist() == [3] * 7
    assert splits["test"].class_counts().tolist() == [1, 0, 0, 2, 0, 0, 0]
    report = all_reports(splits)
    assert report.bad == {
        "wrong pixel count or value": 2,
        "unknown label": 1,
        "unknown Usage 'Elsewhere'": 1,
    }
    assert detect_format(fer_csv) == "fer2013" and detect_format(fer_csv.parent) == "fer2013"


def test_fer2013_folder_maps_class_names_not_indices(tmp_path):
    # Kaggle copies sort class folders alphabetically: index order differs from FER2013's.
    names = ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]
    for split, n in (("train", 2), ("test", 1)):
        for value, name in enumerate(names):
            d = tmp_path / split / name
            d.mkdir(parents=True)
            for i in range(n):
                cv2.imwrite(str(d / f"{i}.png"), np.full((48, 48), 20 * value, np.uint8))
    (tmp_path / "train" / "happy" / "broken.png").write_bytes(b"not a png")
    (tmp_path / "train" / "bored").mkdir()  # unknown class folder: reported
    assert detect_format(tmp_path) == "fer2013_folder"
    splits = load_splits("fer2013_folder", tmp_path, "fer7", color="gray", size=48)
    assert set(splits) == {"train", "test"}
    train = splits["train"]
    assert len(train) == 15 and len(splits["test"]) == 7
    unreadable = [i for i in range(len(train)) if int(train[i][1]) < 0]
    assert [train.paths[i].rsplit("/", 1)[1] for i in unreadable] == [
        "broken.png"
    ]  # target -1: skipped
    for i in set(range(len(train))) - set(unreadable):
        img, t = train[i]
        assert int(img[0, 0, 0]) == 20 * names.index(FER7[int(t)])
    assert "unknown class folder 'bored'" in train.report.bad
    # Decoded once into memory: the same images and targets, the unreadable one still -1 and
    # counted.
    memory = train.to_memory()
    assert len(memory) == len(train) and memory.report is train.report
    for i in range(len(train)):
        img, t = train[i]
        assert torch.equal(memory[i][0], img) and int(memory[i][1]) == int(t)
    assert train.report.bad["unreadable image"] == 1


def test_ferplus_majority_plurality_and_probability(tmp_path):
    votes_header = [
        "Usage",
        "Image name",
        "neutral",
        "happiness",
        "surprise",
        "sadness",
        "anger",
        "disgust",
        "fear",
        "contempt",
        "unknown",
        "NF",
    ]
    votes = [
        ("Training", "fer0000000.png", [0, 8, 2, 0, 0, 0, 0, 0, 0, 0]),  # happy
        (
            "Training",
            "fer0000001.png",
            [5, 0, 0, 5, 0, 0, 0, 0, 0, 0],
        ),  # tie: excluded under majority
        ("Training", "fer0000002.png", [1, 0, 0, 0, 0, 0, 0, 9, 0, 0]),  # contempt: not in FER7
        ("Training", "", [0, 0, 0, 0, 0, 0, 0, 0, 0, 10]),  # not a face
        ("PublicTest", "fer0000004.png", [0, 0, 7, 0, 0, 0, 3, 0, 0, 0]),  # surprise
        ("PrivateTest", "fer0000005.png", [0, 0, 0, 0, 6, 4, 0, 0, 0, 0]),  # anger
        # Worked by hand. Majority (Microsoft): drop sadness's single vote -> 3 + 4 + 2 = 9 votes,
        # happiness 4 is not more than half: excluded. Plurality: happiness 4 is the unique top:
        # happy.
        ("Training", "fer0000006.png", [3, 4, 2, 1, 0, 0, 0, 0, 0, 0]),
        # Majority: NF's single vote dropped -> unknown 5 of 9 wins: excluded. Plurality: unknown
        # on top.
        ("PublicTest", "fer0000007.png", [4, 0, 0, 0, 0, 0, 0, 0, 5, 1]),
    ]
    with open(tmp_path / "fer2013.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["emotion", "pixels", "Usage"])
        for i, (usage, _, _) in enumerate(votes):
            w.writerow([0, _pixels(i), usage])
    with open(tmp_path / "fer2013new.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(votes_header)
        for usage, name, v in votes:
            w.writerow([usage, name, *v])
    assert detect_format(tmp_path) == "ferplus"
    maj = load_splits("ferplus", tmp_path, "fer7", target="majority")
    assert [FER7[int(t)] for t in maj["train"].targets] == ["happy"]
    assert [FER7[int(t)] for t in maj["val"].targets] == ["surprise"]
    assert [FER7[int(t)] for t in maj["test"].targets] == ["angry"]
    excluded = all_reports(maj).excluded
    assert excluded["no majority after dropping single votes"] == 2  # the tie and the 4-of-9 row
    assert (
        excluded["contempt (not in the label set)"] == 1
        and excluded["majority unknown or not a face"] == 1
    )
    assert excluded["not a face (FER+ gives no image name)"] == 1
    plural = load_splits("ferplus", tmp_path, "fer7", target="plurality")
    assert [FER7[int(t)] for t in plural["train"].targets] == ["happy", "happy"]
    excluded = all_reports(plural).excluded
    assert excluded["tied top votes"] == 1 and excluded["majority unknown or not a face"] == 1
    prob = load_splits("ferplus", tmp_path, "affectnet8", target="probability")
    t = prob["train"].targets
    assert t.shape == (4, 8) and torch.allclose(t.sum(1), torch.ones(4))
    assert t[0, AFFECTNET8.index("happy")] == pytest.approx(0.8)
    assert t[2, AFFECTNET8.index("contempt")] == pytest.approx(0.9)
    # mixed: FER2013's own label (0, angry, for every row here) and the votes, 0.7 / 0.3.
    mixed = load_splits("ferplus", tmp_path, "fer7", target="mixed", vote_share=0.3)
    t = mixed["train"].targets
    assert t.shape == (4, 7) and torch.allclose(t.sum(1), torch.ones(4))
    assert t[0, FER7.index("angry")] == pytest.approx(0.7) and t[
        0, FER7.index("happy")
    ] == pytest.approx(0.24)
    assert (
        mixed["train"].hard_targets().tolist() == [FER7.index("angry")] * 4
    )  # validation: original labels


def _affectnet_original(root, rows_per_label=2):
    """AffectNet labels 0..10 (0 neutral ... 7 contempt, 8-10 excluded); each face box is a white
    square in a black image, so a correct crop is all white."""
    img_dir = root / "Manually_Annotated_Images" / "1"
    img_dir.mkdir(parents=True)
    header = [
        "subDirectory_filePath",
        "face_x",
        "face_y",
        "face_width",
        "face_height",
        "facial_landmarks",
        "expression",
        "valence",
        "arousal",
    ]
    for name, n in (("training.csv", rows_per_label), ("validation.csv", 1)):
        with open(root / name, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(header)
            for label in range(11):
                for i in range(n):
                    file = f"{name[:3]}_{label}_{i}.jpg"
                    img = np.zeros((120, 100, 3), np.uint8)
                    img[20:80, 30:90] = 255
                    cv2.imwrite(str(img_dir / file), img)
                    w.writerow([f"1/{file}", 30, 20, 60, 60, "1;2", label, 0.1, 0.2])
            w.writerow(["1/missing.jpg", 0, 0, 10, 10, "", 1, 0, 0])


def test_affectnet_original_8_and_7(tmp_path):
    _affectnet_original(tmp_path)
    assert detect_format(tmp_path) == "affectnet"
    eight = load_splits("affectnet", tmp_path, "affectnet8", size=32)
    assert len(eight["train"]) == 16 and len(eight["val"]) == 8 and eight["test"] is eight["val"]
    # AffectNet index 0 is neutral, 6 anger, 7 contempt: mapped by name.
    targets = [AFFECTNET8[int(t)] for t in eight["train"].targets]
    assert targets[:2] == ["neutral", "neutral"] and targets[12:14] == ["angry", "angry"]
    assert targets[14:] == ["contempt", "contempt"]
    img, _ = eight["train"][0]
    assert img.shape == (32, 32, 3) and int(img.min()) > 200  # cropped to the face box
    report = eight["train"].report
    assert report.bad["missing image"] == 1
    assert sum(report.excluded.values()) == 6  # labels 8, 9, 10 twice each
    seven = load_splits("affectnet", tmp_path, "fer7", size=32)
    assert (
        len(seven["train"]) == 14
        and seven["train"].report.excluded["contempt (not in the label set)"] == 2
    )


def test_affectnet_2021(tmp_path):
    for split, n in (("train_set", 2), ("val_set", 1)):
        (tmp_path / split / "images").mkdir(parents=True)
        (tmp_path / split / "annotations").mkdir()
        for label in range(11):
            for i in range(n):
                stem = f"{label}{i}"
                cv2.imwrite(
                    str(tmp_path / split / "images" / f"{stem}.jpg"),
                    np.full((40, 40, 3), 128, np.uint8),
                )
                np.save(tmp_path / split / "annotations" / f"{stem}_exp.npy", np.array(str(label)))
    cv2.imwrite(
        str(tmp_path / "train_set" / "images" / "orphan.jpg"), np.zeros((4, 4, 3), np.uint8)
    )
    assert detect_format(tmp_path) == "affectnet2021"
    s = load_splits("affectnet2021", tmp_path, "affectnet8", size=32)
    assert len(s["train"]) == 16 and len(s["val"]) == 8
    assert s["train"].class_counts().tolist() == [2] * 8
    assert s["train"].report.bad["missing or unreadable annotation"] == 1


def test_rafdb_basic(tmp_path):
    (tmp_path / "EmoLabel").mkdir()
    (tmp_path / "Image" / "aligned").mkdir(parents=True)
    lines = []
    for split, n in (("train", 2), ("test", 1)):
        for label in range(1, 8):
            for i in range(n):
                name = f"{split}_{label}{i:04d}.jpg"
                cv2.imwrite(
                    str(tmp_path / "Image" / "aligned" / name.replace(".jpg", "_aligned.jpg")),
                    np.full((100, 100, 3), 10 * label, np.uint8),
                )
                lines.append(f"{name} {label}")
    lines.append("train_9999.jpg 8")  # unknown label
    (tmp_path / "EmoLabel" / "list_patition_label.txt").write_text("\n".join(lines) + "\n")
    assert detect_format(tmp_path) == "rafdb"
    s = load_splits("rafdb", tmp_path, "fer7", size=32)
    assert len(s["train"]) == 14 and len(s["test"]) == 7 and s["val"] is s["test"]
    # RAF-DB 1 = surprise, 4 = happiness, 6 = anger.
    by_value = {
        int(s["train"][i][0][0, 0, 0]) // 10: FER7[int(s["train"][i][1])]
        for i in range(len(s["train"]))
    }
    assert by_value[1] == "surprise" and by_value[4] == "happy" and by_value[6] == "angry"
    assert s["train"].report.bad["unknown label"] == 1


def test_synthetic_dataset_is_balanced_and_deterministic():
    a = load_splits("synthetic", "", "fer7", size=32, n_train=14, n_val=7, n_test=7)
    b = load_splits("synthetic", "", "fer7", size=32, n_train=14, n_val=7, n_test=7)
    assert torch.equal(a["train"].images, b["train"].images)
    assert a["train"].class_counts().tolist() == [2] * 7
    assert not torch.equal(a["val"].images, a["test"].images[:7])  # disjoint seeds per split


def test_wrong_path_and_unknown_layout_fail_clearly(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        load_splits("auto", tmp_path / "nowhere", "fer7")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DatasetError, match="unrecognised data set layout"):
        load_splits("auto", tmp_path, "fer7")
    bad_csv = tmp_path / "other.csv"
    bad_csv.write_text("a,b\n1,2\n")
    with pytest.raises(DatasetError, match="columns"):
        load_splits("fer2013", bad_csv, "fer7")
    with pytest.raises(ValueError, match="unknown data format"):
        load_splits("imagenet", tmp_path, "fer7")


def test_hold_out_carves_a_stratified_validation_split(tmp_path):
    _affectnet_original(tmp_path, rows_per_label=10)
    train = load_splits("affectnet", tmp_path, "affectnet8", size=16)["train"]
    rest, held = hold_out(train, 0.2, seed=0)
    assert len(rest) == 64 and len(held) == 16
    assert held.class_counts().tolist() == [2] * 8
    assert not set(rest.paths) & set(held.paths)
    synthetic = load_splits("synthetic", "", "fer7", size=32, n_train=70, n_val=0, n_test=0)[
        "train"
    ]
    rest, held = hold_out(synthetic, 0.1)
    assert len(held) == 7 and held.images.shape[1:] == (32, 32, 3)
