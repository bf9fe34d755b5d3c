"""Canonical emotion label lists.

Every dataset is mapped onto these by *name* (datasets disagree on index order), and every
checkpoint stores the list it was trained with, so nothing downstream relies on an index.
"""

# FER2013's order; AffectNet-8 adds contempt at the end so the first seven indices agree.
FER7 = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
AFFECTNET8 = FER7 + ("contempt",)

LABEL_SETS = {"fer7": FER7, "affectnet8": AFFECTNET8}

# Names the data sets (and people) use for the canonical classes.
ALIASES = {
    "angry": "angry",
    "anger": "angry",
    "disgust": "disgust",
    "disgusted": "disgust",
    "fear": "fear",
    "fearful": "fear",
    "afraid": "fear",
    "scared": "fear",
    "happy": "happy",
    "happiness": "happy",
    "joy": "happy",
    "sad": "sad",
    "sadness": "sad",
    "surprise": "surprise",
    "surprised": "surprise",
    "neutral": "neutral",
    "contempt": "contempt",
}


def canonical(name: str) -> str | None:
    """The canonical label of a class name as data sets write it ("Anger" -> "angry"), or None."""
    return ALIASES.get(name.strip().lower())
