"""The errors a user can cause, as one family.

Everything a person hands to fer_ros (a checkpoint, a data set, a bag, a config value, a camera
frame) is checked where it is used, and a problem raises a `FerRosError` whose message is one line
saying what is wrong and what to do. `fer-ros` (fer_ros.cli) catches them in one place: one line on
stderr, exit code 2. Anything else that escapes a command is a failure of the run, not of its
input: one line, exit code 1 (FER_ROS_DEBUG=1 shows the traceback).

They are ValueErrors too: a bad input is a bad value, and callers that catch ValueError keep
working.
"""


class FerRosError(ValueError):
    """Something the user gave cannot be used; the message is the whole story."""


class ConfigError(FerRosError):
    """A setting (training config, node parameter, command option) that is unknown or out of
    range."""


class CheckpointError(FerRosError):
    """A checkpoint or weights file that cannot be used; the message names the file and why."""


class DatasetError(FerRosError):
    """A data set that cannot be read as the format it claims to be."""


class BagError(FerRosError):
    """A bag, or a bag tool's option, that cannot be used."""


class FrameError(FerRosError):
    """A camera frame that cannot be turned into an image; the node drops it and logs why."""


def one_line(err: BaseException, limit: int = 300) -> str:
    """An exception's message folded onto one line (library errors often span several)."""
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) < limit else text[: limit - 3] + "..."
