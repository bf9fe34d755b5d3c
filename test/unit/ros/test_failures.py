"""How fer_node words a failure (ros/failures.py) and the background face search that reports
its failures instead of an empty face list: no node, no DDS."""

import threading

import numpy as np
import pytest

from fer_ros.errors import CheckpointError
from fer_ros.inference.faces import DetectorOptions
from fer_ros.inference.pipeline import BackgroundSearch
from fer_ros.ros.failures import HINT, VARIABLE, described


def raised(err: Exception) -> Exception:
    """`err` with a traceback, as an except clause holds it."""
    try:
        raise err
    except Exception as caught:  # the point
        return caught


@pytest.fixture
def debugging(monkeypatch):
    monkeypatch.setenv(VARIABLE, "1")


@pytest.fixture(autouse=True)
def not_debugging(monkeypatch):
    monkeypatch.delenv(VARIABLE, raising=False)


def test_a_users_error_is_one_line_naming_nothing_else():
    text = described(
        "configure failed", raised(CheckpointError("no checkpoint at /x")), always=True
    )
    assert text == "configure failed: no checkpoint at /x"


def test_a_bug_is_one_line_naming_the_switch_or_its_traceback_when_always():
    bug = raised(KeyError("oops"))
    assert described("dropped a frame", bug) == f"dropped a frame: KeyError: 'oops' {HINT}"
    lines = described("configure failed", bug, always=True).splitlines()
    assert lines[0] == "configure failed: KeyError: 'oops'"
    assert lines[1] == "Traceback (most recent call last):" and lines[-1] == "KeyError: 'oops'"


@pytest.mark.usefixtures("debugging")
def test_the_switch_adds_every_traceback():
    for err in (raised(KeyError("oops")), raised(CheckpointError("no checkpoint at /x"))):
        lines = described("dropped a frame", err).splitlines()
        assert lines[1] == "Traceback (most recent call last):" and "in raised" in lines[-3], lines


def test_a_failed_background_search_is_counted_not_an_empty_face_list():
    search = BackgroundSearch(DetectorOptions(detector="haar"))
    done = threading.Event()

    def broken(rgb, sizes=None):
        done.set()
        raise RuntimeError("cascade exploded")

    search.detector = broken
    for _ in range(2):
        done.clear()
        assert search.submit(np.zeros((48, 64, 3), np.uint8))
        assert done.wait(5.0)
        search.close()
    assert search.take() is None  # no result: the faces followed so far stay
    failed, error = search.take_failures()
    assert failed == 2 and isinstance(error, RuntimeError) and error.__traceback__ is not None
    assert search.take_failures() == (0, None)  # counted once
