"""fer_node's health rules (ros/diagnostics.py) on their own: no node, no DDS."""

import pytest
from diagnostic_msgs.msg import DiagnosticStatus

from fer_ros.ros.diagnostics import Health, assess, silent_publishers, status

OK, WARN, ERROR = DiagnosticStatus.OK, DiagnosticStatus.WARN, DiagnosticStatus.ERROR


def running(**changes) -> Health:
    """A node that is active and answering: a frame 0.1 s ago, 30 Hz over a whole period."""
    return Health(
        **{
            "active": True,
            "seconds_since_frame": 0.1,
            "processed_rate": 30.0,
            "full_period": True,
            "latency_p95_ms": 12.0,
            "latency_samples": 30,
        }
        | changes
    )


def test_a_healthy_node_is_ok():
    assert assess(running(), stale_after=3.0, expected_rate=30.0, max_latency_ms=50.0) == (
        OK,
        "running",
    )


@pytest.mark.parametrize(
    "health, level, text",
    [
        (
            Health(configure_error="no checkpoint at /x"),
            ERROR,
            "configure failed: no checkpoint at /x",
        ),
        (Health(active=False), WARN, "inactive"),
        (running(seconds_since_frame=5.0), ERROR, "no frames received for 5.0 s"),
        (running(processed_rate=12.0), WARN, "processed rate 12.0 Hz below the expected 30 Hz"),
        (running(latency_p95_ms=80.0), WARN, "latency p95 80.0 ms above 50 ms"),
        (running(bad_frames=3), WARN, "3 malformed frames dropped"),
        (running(stale_frames=2), WARN, "2 frames dropped as too old"),
        (running(clock_started=False), WARN, "the node's clock has not started"),
        (running(search_failures=4), WARN, "4 background face searches failed"),
    ],
)
def test_each_problem_has_its_level_and_names_itself(health, level, text):
    got_level, message = assess(health, stale_after=3.0, expected_rate=30.0, max_latency_ms=50.0)
    assert got_level == level and message.startswith(text), message


def test_the_worst_level_wins_and_every_problem_is_named():
    level, message = assess(
        running(seconds_since_frame=9.0, bad_frames=1, latency_p95_ms=99.0),
        stale_after=3.0,
        expected_rate=30.0,
        max_latency_ms=50.0,
    )
    assert level == ERROR
    assert [part.split(" ")[0] for part in message.split("; ")] == ["no", "latency", "1"]


def test_zero_turns_the_stale_rate_and_latency_checks_off():
    quiet = running(seconds_since_frame=99.0, processed_rate=0.0, latency_p95_ms=999.0)
    assert assess(quiet, stale_after=0.0, expected_rate=0.0, max_latency_ms=0.0) == (OK, "running")


def test_a_slow_rate_is_not_judged_before_a_whole_period_has_passed():
    early = running(processed_rate=1.0, full_period=False)
    assert assess(early, stale_after=3.0, expected_rate=30.0, max_latency_ms=0.0) == (
        OK,
        "running",
    )


def test_silence_with_a_matched_publisher_explains_where_frames_are_lost():
    silent = running(
        seconds_since_frame=4.0, matched_publishers=1, transport="qos best_effort, profile x"
    )
    hint = silent_publishers(silent, stale_after=3.0)
    assert (
        hint.startswith("1 publisher(s) matched but no frame arrived")
        and "qos best_effort, profile x" in hint
    )
    assert "although 1 publisher(s) matched" in assess(silent, 3.0, 0.0, 0.0)[1]
    assert (
        silent_publishers(running(seconds_since_frame=4.0), stale_after=3.0) is None
    )  # nobody publishes


def test_status_carries_the_name_level_device_and_values():
    msg = status(
        "/robot1/fer_node", running(bad_frames=1), {"frames_bad": "1"}, "cpu", 3.0, 30.0, 0.0
    )
    assert (msg.name, msg.level, msg.hardware_id) == (
        "/robot1/fer_node: emotion recognition",
        WARN,
        "cpu",
    )
    assert [(v.key, v.value) for v in msg.values] == [("frames_bad", "1")]
