"""fer_node's parameters: the inference options' own fields plus the node's, as ROS parameters.

Nothing here restates a setting. The engine's (`EngineOptions`) and the pipeline's
(`PipelineOptions`) dataclass fields are the parameters, under their own names, defaults, ranges
and descriptions; `NodeOptions` adds what only a ROS node has (subscription QoS, rate cap,
diagnostics). config/fer.yaml and docs/parameters.md's table are checked against this list by the
tests.
"""

from __future__ import annotations

from dataclasses import dataclass

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.parameter import Parameter

from fer_ros.imagecheck import DecodeOptions
from fer_ros.inference.engine import EngineOptions
from fer_ros.inference.pipeline import PipelineOptions
from fer_ros.options import Checked, Spec, option, specs

RELIABILITY = ("best_effort", "reliable")


TRANSPORTS = ("raw", "compressed")
FACE_IMAGES = ("cropped", "aligned")  # REP-155's per-face images (detector hri)


@dataclass(frozen=True)
class NodeOptions(Checked):
    image_transport: str = option(
        "raw",
        "Subscribe to sensor_msgs/Image on image (raw) or sensor_msgs/"
        "CompressedImage on image/compressed (compressed)",
        choices=TRANSPORTS,
        live=False,
    )
    qos_depth: int = option(
        1,
        "Frames kept waiting, in the image subscription and the worker's mailbox (1: only the "
        "newest frame matters; more: a replay is answered frame by frame)",
        1,
        100,
        live=False,
    )
    qos_reliability: str = option(
        "best_effort",
        "Image subscription reliability: best_effort (sensor data) or reliable",
        choices=RELIABILITY,
        live=False,
    )
    max_rate: float = option(
        0.0, "Process at most this many frames per second; 0 = as fast as possible", 0.0, 1000.0
    )
    # 1: the background search then takes one core and leaves the other to the frames; with all
    # cores it finishes sooner but slows every frame it overlaps (benchmarks/node_latency.py).
    detect_threads: int = option(
        1,
        "OpenCV threads for face detection; 0 = OpenCV's default (all cores)",
        0,
        256,
        live=False,
    )
    max_age_ms: float = option(
        0.0,
        "Drop a frame rather than answer it when its result would be older than this "
        "(image stamp to publish, on the node's clock: cameras on this machine's clock); "
        "0 = off",
        0.0,
        60000.0,
    )
    publish_debug_image: bool = option(
        True,
        "Publish an annotated image on ~/debug_image and ~/debug_image/"
        "compressed (only while someone subscribes)",
    )
    publish_detections: bool = option(
        True,
        "Publish vision_msgs/Detection2DArray on ~/detections and LabelInfo "
        "on ~/label_info (when vision_msgs is installed)",
        live=False,
    )
    hri: bool = option(
        False,
        "ROS4HRI: publish /humans/faces/tracked and /humans/faces/<id>/roi and "
        "/expression (when hri_msgs is installed)",
        live=False,
    )
    hri_face_image: str = option(
        "cropped",
        "detector hri: classify each ROS4HRI face's /humans/faces/<id>/cropped or /aligned image",
        choices=FACE_IMAGES,
        live=False,
    )
    # Each followed face costs a subscription and a publisher (DDS entities, discovery traffic):
    # a peer's IdsList of 10,000 ids made the node deaf for minutes before this bound.
    hri_max_faces: int = option(
        32,
        "detector hri: follow at most this many tracked faces "
        "(those followed first, then in the list's order); further ids "
        "are ignored with a warning",
        1,
        1024,
        live=False,
    )
    diagnostics_period: float = option(1.0, "Seconds between /diagnostics messages", 0.1, 60.0)
    stale_after: float = option(
        5.0,
        "Diagnostics ERROR when active and no frame arrived for this many seconds; 0 = off",
        0.0,
        3600.0,
    )
    expected_rate: float = option(
        0.0, "Diagnostics WARN when fewer frames per second are processed; 0 = off", 0.0, 1000.0
    )
    max_latency_ms: float = option(
        0.0, "Diagnostics WARN when the latency p95 exceeds this; 0 = off", 0.0, 60000.0
    )
    autostart: bool = option(True, "Configure and activate at start-up", live=False)


# Model, then faces and results, then input and load: the order of config/fer.yaml.
_ORDER = (
    "checkpoint",
    "device",
    "allow_cpu_fallback",
    "precision",
    "backend",
    "threads",
    "cpu_spin",
    "detector",
    "yunet_model",
    "detect_scale",
    "detect_every",
    "min_face_size",
    "max_faces",
    "face_crop",
    "face_margin",
    "haar_scale_factor",
    "haar_min_neighbors",
    "smoothing",
    "smoothing_alpha",
    "smoothing_window",
    "track_iou",
    "track_timeout",
    "confidence_threshold",
    "min_classify_size",
)
_GROUPS = (EngineOptions, PipelineOptions, NodeOptions, DecodeOptions)
PARAMS: dict[str, Spec] = {s.name: s for group in _GROUPS for s in specs(group)}
PARAMS = {name: PARAMS[name] for name in (*_ORDER, *(n for n in PARAMS if n not in _ORDER))}
assert len(PARAMS) == sum(len(specs(group)) for group in _GROUPS), "an option name is used twice"


def descriptor(spec: Spec) -> ParameterDescriptor:
    text = spec.doc + (f" ({', '.join(spec.choices)})" if spec.choices else "")
    d = ParameterDescriptor(name=spec.name, description=text, read_only=False)
    if spec.low is not None:
        if isinstance(spec.default, int) and not isinstance(spec.default, bool):
            d.integer_range = [
                IntegerRange(from_value=int(spec.low), to_value=int(spec.high), step=1)
            ]
        else:
            d.floating_point_range = [
                FloatingPointRange(from_value=float(spec.low), to_value=float(spec.high), step=0.0)
            ]
    return d


def as_declared(param: Parameter) -> Parameter:
    """A whole number given for a floating-point parameter, as the float it means (YAML, `-p` and
    `ros2 param set` write 150 for 150.0, and rclpy would refuse the INTEGER); others unchanged."""
    spec = PARAMS.get(param.name)
    if spec is not None and type(spec.default) is float and param.type_ == Parameter.Type.INTEGER:
        return Parameter(param.name, Parameter.Type.DOUBLE, float(param.value))
    return param
