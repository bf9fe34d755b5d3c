"""Face expression data sets, each mapped by class *name* onto a canonical label list.

Every loader returns {split: dataset}. A dataset yields uint8 images (H, W, C) with C = 1 (grey) or
3 (RGB) and a target (class index into `classes`, or for FER+ probabilities a vote distribution).
Augmentation, resizing to the model input and normalisation happen later, on whole batches
(`fer_ros.training.augment`).

Formats (`data.format`):
  fer2013        fer2013.csv (emotion,pixels,Usage): Training / PublicTest / PrivateTest -> train
  / val / test,
                 decoded once into one uint8 tensor
  fer2013_folder folder copies: <root>/<split>/<class name>/*.png, classes matched by name
  ferplus        fer2013new.csv (FER+ votes) with fer2013.csv beside it; target majority or
  probability
  affectnet      original release: training.csv / validation.csv with face boxes, labels 8-10
  excluded
  affectnet2021  {train_set,val_set}/images/<id>.jpg + annotations/<id>_exp.npy
  rafdb          RAF-DB basic: EmoLabel/list_patition_label.txt + Image/aligned/*_aligned.jpg
  synthetic      procedurally drawn faces (fer_ros.synthetic)
  auto           whichever of the above the root looks like

AffectNet-7 / -8 is the choice of label set (`data.labels` fer7 / affectnet8): contempt rows are
excluded from a 7-class set. Rows that cannot be used are never dropped silently: each loader
counts them by reason in `dataset.report` (bad rows: wrong pixel count, unknown label, missing or
unreadable image; excluded rows: labels outside the label set, FER+ ties), and training prints the
counts.

One file per family (fer2013, ferplus, folder, affectnet, rafdb, synthetic); `sets` holds the two
kinds of data set they return, `report` the counts, `common` what the loaders share and `formats`
the names above, format detection and `load_splits`.
"""

from fer_ros.errors import DatasetError
from fer_ros.training.datasets.affectnet import AFFECTNET_ORDER, load_affectnet, load_affectnet2021
from fer_ros.training.datasets.common import SPLIT_ALIASES, canonical_index, label_set
from fer_ros.training.datasets.fer2013 import FER2013_USAGE, load_fer2013
from fer_ros.training.datasets.ferplus import (
    FERPLUS_TARGETS,
    FERPLUS_VOTES,
    ferplus_winner,
    load_ferplus,
)
from fer_ros.training.datasets.folder import load_folder
from fer_ros.training.datasets.formats import FORMATS, detect_format, load_splits
from fer_ros.training.datasets.rafdb import RAFDB_ORDER, load_rafdb
from fer_ros.training.datasets.report import Report, all_reports
from fer_ros.training.datasets.sets import (
    ArrayDataset,
    ImageFileDataset,
    cpu_count,
    describe,
    hold_out,
    pick_split,
    split_names,
    subset,
)
from fer_ros.training.datasets.synthetic import load_synthetic

__all__ = [
    "AFFECTNET_ORDER",
    "FER2013_USAGE",
    "FERPLUS_TARGETS",
    "FERPLUS_VOTES",
    "FORMATS",
    "RAFDB_ORDER",
    "SPLIT_ALIASES",
    "ArrayDataset",
    "DatasetError",
    "ImageFileDataset",
    "Report",
    "all_reports",
    "canonical_index",
    "cpu_count",
    "describe",
    "detect_format",
    "ferplus_winner",
    "hold_out",
    "label_set",
    "load_affectnet",
    "load_affectnet2021",
    "load_fer2013",
    "load_ferplus",
    "load_folder",
    "load_rafdb",
    "load_splits",
    "load_synthetic",
    "pick_split",
    "split_names",
    "subset",
]
