"""How fer_node words what fails, and its debug switch.

A user's error (`FerRosError`: a missing checkpoint, a setting that cannot work, a malformed
frame) is one line: its message is the whole story. Anything else is a bug or a broken backend,
and a maintainer needs its traceback. The switch is `FER_ROS_DEBUG`, the variable `fer-ros`
already honours (any non-empty value, as there): with it, every failure fer_node logs (configure,
the frame worker, the background face search, an executor callback) carries its full traceback;
without it, a failure that may be a bug says how to get one. A failed configure logs a bug's
traceback even without the switch: it happens once, and a report without it cannot be diagnosed.
"""

import os
import traceback

from fer_ros.errors import FerRosError, one_line

VARIABLE = "FER_ROS_DEBUG"
HINT = f"({VARIABLE}=1 logs the traceback)"


def debugging() -> bool:
    return bool(os.environ.get(VARIABLE))


def traceback_text(err: BaseException) -> str:
    return "".join(traceback.format_exception(type(err), err, err.__traceback__)).rstrip()


def summary(err: BaseException) -> str:
    """One line: a user's error by its message, anything else by its type and message."""
    if isinstance(err, FerRosError):
        return one_line(err)
    return f"{type(err).__name__}: {one_line(err)}"


def described(what: str, err: BaseException, always: bool = False) -> str:
    """`what: summary` for a log line. The traceback follows on the next lines when debugging (or
    `always`, for anything but a user's error); else a failure that may be a bug names the
    switch."""
    head = f"{what}: {summary(err)}"
    user_error = isinstance(err, FerRosError)
    if debugging() or (always and not user_error):
        return f"{head}\n{traceback_text(err)}"
    return head if user_error else f"{head} {HINT}"
