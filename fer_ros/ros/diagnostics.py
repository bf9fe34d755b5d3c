"""fer_node's health as a diagnostic_msgs/DiagnosticStatus, in diagnostic_updater's conventions.

The status is named `<fully qualified node name>: emotion recognition` (two nodes in two namespaces
are two statuses to an aggregator) and carries the device as hardware_id. Levels are
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
    clock_started: bool = True  # False under use_sim_time until /clock runs (the node's time is 0)
    matched_publishers: int = 0  # publishers matched with the image subscription
    transport: str = ""  # the subscription's QoS and this process's Fast DDS profile, for the hint below


def silent_publishers(health: Health, stale_after: float) -> str | None:
    """Why frames may be missing when a publisher is matched yet nothing arrives, or None."""
    if not (health.active and health.matched_publishers and stale_after > 0 and health.seconds_since_frame is not None
            and health.seconds_since_frame >= stale_after):
        return None
    return (f"{health.matched_publishers} publisher(s) matched but no frame arrived: frames larger than the "
            "publishing process's Fast DDS shared-memory segment are lost with best-effort QoS; load "
            "config/fastdds_large_images.xml in the camera's process (FASTDDS_DEFAULT_PROFILES_FILE, "
            f"FASTRTPS_ on Humble/Jazzy) or set qos_reliability reliable ({health.transport})")


def assess(health: Health, stale_after: float, expected_rate: float, max_latency_ms: float) -> tuple[int, str]:
    """(level, message) of the node's state; 0 disables the stale, rate and latency checks."""
    if health.configure_error:
        return DiagnosticStatus.ERROR, f"configure failed: {health.configure_error}"
    if not health.active:
        return DiagnosticStatus.WARN, "inactive"
    problems: list[tuple[int, str]] = []
    if stale_after > 0 and health.seconds_since_frame is not None and health.seconds_since_frame >= stale_after:
        hint = silent_publishers(health, stale_after)
        problems.append((DiagnosticStatus.ERROR, f"no frames received for {health.seconds_since_frame:.1f} s"
                                                 + (f" although {hint}" if hint else "")))
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
    if not health.clock_started:
        problems.append((DiagnosticStatus.WARN, "the node's clock has not started (use_sim_time without /clock): "
                                                "latency_ms is NaN and max_age_ms is not applied"))
    if not problems:
        return DiagnosticStatus.OK, "running"
    return max(level for level, _ in problems), "; ".join(text for _, text in problems)


def status(node_name: str, health: Health, values: dict[str, str], hardware_id: str, stale_after: float,
           expected_rate: float, max_latency_ms: float):
    from diagnostic_msgs.msg import KeyValue

    level, message = assess(health, stale_after, expected_rate, max_latency_ms)
    return DiagnosticStatus(level=level, name=f"{node_name}: {TASK}", message=message, hardware_id=hardware_id,
                            values=[KeyValue(key=k, value=v) for k, v in values.items()])
