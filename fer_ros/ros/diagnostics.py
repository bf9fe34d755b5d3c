"""fer_node's health as a diagnostic_msgs/DiagnosticStatus, in diagnostic_updater's conventions.

The status is named `<node>: emotion recognition` and carries the device as hardware_id. Levels are
used as diagnostic_updater's FrequencyStatus and TimeStampStatus use them: ERROR when nothing is
arriving (or the node could not be configured), WARN when it arrives but not as expected (too slow,
too late, malformed), OK otherwise. Several problems are all named, the worst level wins.
"""

from __future__ import annotations

from dataclasses import dataclass

from diagnostic_msgs.msg import DiagnosticStatus

TASK = "emotion recognition"


@dataclass
class Health:
    """What the node knows at one diagnostics tick."""

    configure_error: str = ""  # why the last configure failed ("" if it did not)
    active: bool = False
    seconds_since_frame: float | None = None  # since the last frame arrived (since activation if none yet)
    processed_rate: float = 0.0  # frames per second processed over the last period
    full_period: bool = False  # the rate covers a whole period (not the first moments after activation)
    latency_p95_ms: float = 0.0
    latency_samples: int = 0
    bad_frames: int = 0  # malformed frames dropped in the last period
    stale_frames: int = 0  # frames dropped in the last period for being older than max_age_ms


def assess(health: Health, stale_after: float, expected_rate: float, max_latency_ms: float) -> tuple[int, str]:
    """(level, message) of the node's state; 0 disables the stale, rate and latency checks."""
    if health.configure_error:
        return DiagnosticStatus.ERROR, f"configure failed: {health.configure_error}"
    if not health.active:
        return DiagnosticStatus.WARN, "inactive"
    problems: list[tuple[int, str]] = []
    if stale_after > 0 and health.seconds_since_frame is not None and health.seconds_since_frame >= stale_after:
        problems.append((DiagnosticStatus.ERROR, f"no frames received for {health.seconds_since_frame:.1f} s"))
    elif expected_rate > 0 and health.full_period and health.processed_rate < expected_rate:
        problems.append((DiagnosticStatus.WARN, f"processed rate {health.processed_rate:.1f} Hz below the expected "
                                                f"{expected_rate:g} Hz"))
    if max_latency_ms > 0 and health.latency_samples and health.latency_p95_ms > max_latency_ms:
        problems.append((DiagnosticStatus.WARN, f"latency p95 {health.latency_p95_ms:.1f} ms above "
                                                f"{max_latency_ms:g} ms"))
    if health.bad_frames:
        problems.append((DiagnosticStatus.WARN, f"{health.bad_frames} malformed frames dropped"))
    if health.stale_frames:
        problems.append((DiagnosticStatus.WARN, f"{health.stale_frames} frames dropped as too old"))
    if not problems:
        return DiagnosticStatus.OK, "running"
    return max(level for level, _ in problems), "; ".join(text for _, text in problems)


def status(node_name: str, health: Health, values: dict[str, str], hardware_id: str, stale_after: float,
           expected_rate: float, max_latency_ms: float):
    from diagnostic_msgs.msg import KeyValue

    level, message = assess(health, stale_after, expected_rate, max_latency_ms)
    return DiagnosticStatus(level=level, name=f"{node_name}: {TASK}", message=message, hardware_id=hardware_id,
                            values=[KeyValue(key=k, value=v) for k, v in values.items()])
