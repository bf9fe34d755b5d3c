"""Canonical emotion label lists.

Every dataset is mapped onto these by *name* (datasets disagree on index order), and every
checkpoint stores the list it was trained with, so nothing downstream relies on an index.
"""

# FER2013's order; AffectNet-8 adds contempt at the end so the first seven indices agree.
FER7 = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
AFFECTNET8 = FER7 + ("contempt",)

LABEL_SETS = {"fer7": FER7, "affectnet8": AFFECTNET8}
