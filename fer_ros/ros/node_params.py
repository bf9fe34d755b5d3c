"""fer_node's parameters on a live node: declared from `params.PARAMS` with the values given at
start-up, each later change judged before it is applied, and what they describe (the pipeline's
options, the image subscription's QoS).

rclpy refuses an INTEGER for a DOUBLE parameter, yet YAML, `-p max_age_ms:=150` and `ros2 param
set ... 150` all write 150 for 150.0: whole numbers are taken for floating-point parameters, at
start-up here (`declare_all`) and at run time by the node's pre-set callback
(`params.as_declared`).
Only rclpy's public API is used: the value given at start-up is read back through a declaration.
"""

import dataclasses

from rclpy.exceptions import InvalidParameterTypeException
from rclpy.parameter import Parameter
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

from fer_ros.errors import ConfigError
from fer_ros.inference.pipeline import PipelineOptions
from fer_ros.options import from_params
from fer_ros.ros.params import PARAMS, NodeOptions, descriptor
from fer_ros.ros.standard import optional_msgs


def declare_all(node) -> None:
    """Declare every parameter of PARAMS on `node`, with its descriptor and the value given at
    start-up (`-p`, a params file) over its default. A value that does not fit raises rclpy's
    InvalidParameterTypeException / InvalidParameterValueException, as declare_parameter does."""
    for name, spec in PARAMS.items():
        try:
            node.declare_parameter(name, spec.default, descriptor(spec))
        except InvalidParameterTypeException:
            given = whole_number_given(node, name) if type(spec.default) is float else None
            if given is None:
                raise
            node.declare_parameter(name, float(given), descriptor(spec), ignore_override=True)


def whole_number_given(node, name: str) -> int | None:
    """The start-up value of `name` when it is a whole number, else None. rclpy offers no public
    read of a value given at start-up but a declaration that takes it: one of type INTEGER,
    withdrawn at once."""
    try:
        value = node.declare_parameter(name, Parameter.Type.INTEGER).value
    except InvalidParameterTypeException:
        return None
    node.undeclare_parameter(name)
    return value


def refusal(params, configured: bool, hri_mode: bool) -> str | None:
    """Why a change of `params` cannot be applied as it stands, or None: a value out of its spec,
    or a setting that only configure applies while the node is configured."""
    for p in params:
        spec = PARAMS.get(p.name)
        if spec is None:
            continue
        if reason := spec.problem(p.value):
            return reason
        if configured and not spec.live:
            return f"{p.name} applies at configure: deactivate and clean up the node, then set it"
        if p.name == "detector" and configured and (p.value == "hri") != hri_mode:
            return (
                "detector hri (or leaving it) applies at configure: deactivate and clean up "
                "the node, then set it"
            )
    return None


def pipeline_options(values: dict) -> PipelineOptions:
    """The pipeline's options from the node's parameter values. With detector hri the crops come
    from a ROS4HRI detector, so the pipeline's own detector is `none` (its engine and smoothing
    run)."""
    options = from_params(PipelineOptions, values)
    if options.detector != "hri":
        return options
    if optional_msgs("hri_msgs") is None:
        raise ConfigError("detector hri needs hri_msgs (a ROS 2 install's ros-<distro>-hri-msgs)")
    return dataclasses.replace(options, detector="none")


def image_qos(options: NodeOptions) -> QoSProfile:
    """The image subscription's QoS: sensor data (best effort, the newest frame only) unless the
    parameters say otherwise."""
    reliable = options.qos_reliability == "reliable"
    reliability = ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT
    return QoSProfile(
        depth=options.qos_depth, history=HistoryPolicy.KEEP_LAST, reliability=reliability
    )
