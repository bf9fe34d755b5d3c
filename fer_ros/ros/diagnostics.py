"""fer_node's health as a diagnostic_msgs/DiagnosticStatus, in diagnostic_updater's conventions.

The status is named `<fully qualified node name>: emotion recognition` (two nodes in two namespaces
are two statuses to an aggregator) and carries the device as hardware_id. Levels are
used as diagnostic_updater's FrequencyStatus and TimeStampStatus use them: ERROR when nothing is
arriving (or the node could not be configured), WARN when it arrives but not as expected (too slow,
too late, malformed, a face search failing), OK otherwise. Several problems are all named, the
worst level wins. `Reporter` publishes what the node knows at each tick.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.clock import Clock, ClockType

from fer_ros.ros.dds import active_profile
from fer_ros.ros.failures import described
from fer_ros.ros.params import NodeOptions

TASK = "emotion recognition"
ERROR, WARN = DiagnosticStatus.ERROR, DiagnosticStatus.WARN


@dataclass
class Health:
    """What the node knows at one diagnostics tick."""

    configure_error: str = ""  # why the last configure failed ("" if it did not)
    active: bool = False
    seconds_since_frame: float | None = (
        None  # since the last frame arrived (since activation if none yet)
    )
    processed_rate: float = 0.0  # frames per second processed over the last period
    full_period: bool = (
        False  # the rate covers a whole period (not the first moments after activation)
    )
    latency_p95_ms: float = 0.0
    latency_samples: int = 0
    bad_frames: int = 0  # malformed frames dropped in the last period
    stale_frames: int = 0  # frames dropped in the last period for being older than max_age_ms
    clock_started: bool = True  # False under use_sim_time until /clock runs (the node's time is 0)
    matched_publishers: int = 0  # publishers of the images (ROS4HRI: of the followed faces)
    transport: str = (
        ""  # the subscription's QoS and this process's Fast DDS profile, for the hint below
    )
    search_failures: int = 0  # background face searches that failed in the last period


def silent_publishers(health: Health, stale_after: float) -> str | None:
    """Why frames may be missing when a publisher is matched yet nothing arrives, or None."""
    if not (
        health.active
        and health.matched_publishers
        and stale_after > 0
        and health.seconds_since_frame is not None
        and health.seconds_since_frame >= stale_after
    ):
        return None
    return (
        f"{health.matched_publishers} publisher(s) matched but no frame arrived: frames larger "
        "than the publishing process's Fast DDS shared-memory segment are lost with best-effort "
        "QoS; load config/fastdds_large_images.xml in the camera's process "
        "(FASTDDS_DEFAULT_PROFILES_FILE, FASTRTPS_ on Humble/Jazzy) or set qos_reliability "
        f"reliable ({health.transport})"
    )


def assess(
    health: Health, stale_after: float, expected_rate: float, max_latency_ms: float
) -> tuple[int, str]:
    """(level, message) of the node's state; 0 disables the stale, rate and latency checks."""
    if health.configure_error:
        return ERROR, f"configure failed: {health.configure_error}"
    if not health.active:
        return WARN, "inactive"
    problems = flow_problems(health, stale_after, expected_rate, max_latency_ms)
    problems += loss_problems(health)
    if not problems:
        return DiagnosticStatus.OK, "running"
    return max(level for level, _ in problems), "; ".join(text for _, text in problems)


def flow_problems(
    health: Health, stale_after: float, expected_rate: float, max_latency_ms: float
) -> list[tuple[int, str]]:
    """Frames that stopped arriving, are processed too slowly, or answered too late."""
    problems = []
    since, rate, p95 = health.seconds_since_frame, health.processed_rate, health.latency_p95_ms
    if stale_after > 0 and since is not None and since >= stale_after:
        hint = silent_publishers(health, stale_after)
        although = f" although {hint}" if hint else ""
        problems.append((ERROR, f"no frames received for {since:.1f} s{although}"))
    elif expected_rate > 0 and health.full_period and rate < expected_rate:
        problems.append(
            (WARN, f"processed rate {rate:.1f} Hz below the expected {expected_rate:g} Hz")
        )
    if max_latency_ms > 0 and health.latency_samples and p95 > max_latency_ms:
        problems.append((WARN, f"latency p95 {p95:.1f} ms above {max_latency_ms:g} ms"))
    return problems


def loss_problems(health: Health) -> list[tuple[int, str]]:
    """What the last period lost, and a clock that has not started."""
    counted = (
        (health.bad_frames, "malformed frames dropped"),
        (health.stale_frames, "frames dropped as too old"),
        (health.search_failures, "background face searches failed (new faces may be missed)"),
    )
    problems = [(WARN, f"{count} {text}") for count, text in counted if count]
    if not health.clock_started:
        problems.append(
            (
                WARN,
                "the node's clock has not started (use_sim_time without /clock): "
                "latency_ms is NaN and max_age_ms is not applied",
            )
        )
    return problems


def status(
    node_name: str,
    health: Health,
    values: dict[str, str],
    hardware_id: str,
    stale_after: float,
    expected_rate: float,
    max_latency_ms: float,
):
    from diagnostic_msgs.msg import KeyValue

    level, message = assess(health, stale_after, expected_rate, max_latency_ms)
    return DiagnosticStatus(
        level=level,
        name=f"{node_name}: {TASK}",
        message=message,
        hardware_id=hardware_id,
        values=[KeyValue(key=k, value=v) for k, v in values.items()],
    )


class Reporter:
    """fer_node's /diagnostics from construction on (a node that cannot configure says why): the
    publisher, its timer, and the background face searches failed over the node's life. A tick
    reads the node's public state: its parameters, `stream`, `engine`, `outputs`,
    `subscriptions_`, `hri_faces` and `configure_error`."""

    def __init__(self, node, period: float):
        self.node = node
        self.pub = node.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.timer = self.start_timer(period)
        self.search_failures = 0

    def start_timer(self, period: float):
        """On the steady clock: a timer on the node's clock stands still under use_sim_time until
        /clock runs, and diagnostics are what must say that it does not."""
        steady = Clock(clock_type=ClockType.STEADY_TIME)
        return self.node.create_timer(period, self.publish, clock=steady)

    def restart(self, period: float) -> None:
        self.node.destroy_timer(self.timer)
        self.timer = self.start_timer(period)

    def publish(self) -> None:
        node, stream = self.node, self.node.stream
        options = node.options(NodeOptions)
        failed = self.count_search_failures(stream.pipeline)
        window = stream.close_window()
        since, hri = window.seconds_since_frame, node.hri_faces
        if hri is None:
            images = sum(s.get_publisher_count() for s in node.subscriptions_)
        else:
            images = hri.image_publishers()
            if since is not None and hri.last_tracked is not None:
                # A detector that tracks nobody still sends its list: the input is alive.
                since = min(since, time.monotonic() - hri.last_tracked)
        health = Health(
            configure_error=node.configure_error,
            active=stream.running,
            seconds_since_frame=since,
            processed_rate=window.processed_rate,
            full_period=window.seconds >= 0.9 * options.diagnostics_period,
            latency_p95_ms=window.latency_p95_ms,
            latency_samples=window.latency_samples,
            bad_frames=window.bad,
            stale_frames=window.stale,
            search_failures=failed,
            clock_started=node.get_clock().now().nanoseconds > 0,
            matched_publishers=images,
            transport=f"this node: qos_reliability {options.qos_reliability}, "
            f"Fast DDS profile {active_profile()}",
        )
        if hint := silent_publishers(health, options.stale_after):
            node.get_logger().warning(hint, throttle_duration_sec=10.0)
        values = self.values(window, health, node.engine, stream.pipeline, node.outputs)
        msg = DiagnosticArray(
            status=[
                status(
                    values["node"],
                    health,
                    values,
                    values.get("device", ""),
                    options.stale_after,
                    options.expected_rate,
                    options.max_latency_ms,
                )
            ]
        )
        msg.header.stamp = node.get_clock().now().to_msg()
        self.pub.publish(msg)

    def values(self, window, health: Health, engine, pipeline, outputs) -> dict[str, str]:
        values = {
            "node": self.node.get_fully_qualified_name(),
            **window.values,
            "face_search_failures": str(self.search_failures),
            # Matched on the subscription's side: a camera this node will hear (0 while inactive).
            "image_publishers": str(health.matched_publishers),
            "clock": "started"
            if health.clock_started
            else "not started (latency and max_age_ms skipped)",
            **(
                outputs.subscribers()
                if outputs is not None
                else {"emotions_subscribers": "0", "emotion_subscribers": "0"}
            ),
        }
        if engine is not None:
            values.update(device=engine.device, backend=engine.backend, model=engine.model_id)
        if pipeline is not None:
            values.update(detector=pipeline.detector_name, face_crop=pipeline.options.face_crop)
        return values

    def count_search_failures(self, pipeline) -> int:
        """Background face searches failed since the last tick: counted and logged (throttled:
        a detector that always fails would otherwise log every tick)."""
        failed, error = pipeline.take_search_failures() if pipeline is not None else (0, None)
        if failed:
            self.search_failures += failed
            self.node.get_logger().warning(
                described(f"{failed} background face searches failed", error),
                throttle_duration_sec=10.0,
            )
        return failed
