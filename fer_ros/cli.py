"""`fer-ros`: one command with a sub-command per job, and the one place their errors are reported.

Sub-commands live in their own modules and are imported only when chosen, so `fer-ros --help`
stays fast and a sub-command that needs torch does not slow one that does not. Each module provides
`add_arguments(parser)` and `run(args) -> int` and raises instead of printing its own errors:

    exit 2   bad input: a FerRosError (missing or corrupt file, unknown setting, bad option), one
    line
    exit 1   the run failed for another reason, one line (FER_ROS_DEBUG=1 shows the traceback)
    exit 130 interrupted (Ctrl-C)
"""

import argparse
import importlib
import os
import sys

# name -> (module, one-line help).
COMMANDS = {
    "run": (
        "fer_ros.ros.run",
        "start fer_node with the shipped parameters (the pip-world `ros2 launch`)",
    ),
    "train": (
        "fer_ros.training.train",
        "train an expression model (FER2013, AffectNet, RAF-DB, synthetic faces)",
    ),
    "evaluate": (
        "fer_ros.training.evaluate",
        "score a checkpoint on a data set: accuracy, macro-F1, confusion matrix",
    ),
    "synth": (
        "fer_ros.synthetic",
        "write synthetic faces as image folders or a FER2013-style CSV",
    ),
    "export": ("fer_ros.model.export", "export a checkpoint to ONNX and check it against PyTorch"),
    "bench": (
        "fer_ros.tools.bench",
        "time the model (paper protocol, batch-1 latency, batch sweep) on cpu/cuda",
    ),
    "bag-eval": (
        "fer_ros.bags.bag_eval",
        "run the node's pipeline over a rosbag2 offline: results bag, CSV, report",
    ),
    "bag-replay": (
        "fer_ros.bags.replay",
        "publish a bag's image topics live, at the recorded rate or scaled",
    ),
    "record": (
        "fer_ros.bags.record",
        "record live topics (default /emotion /emotions) into a rosbag2",
    ),
    "synth-bag": (
        "fer_ros.bags.synth",
        "write a rosbag2 of synthetic faces at 30 Hz with a ground-truth label topic",
    ),
    "images-bag": (
        "fer_ros.bags.folder",
        "turn a labelled image folder (<class>/*.jpg) into a camera bag with "
        "a ground-truth label topic, for bag-eval",
    ),
    "video": (
        "fer_ros.video.analyse",
        "run the node's pipeline over a video file offline: faces.csv, annotated "
        "video, timeline, summary",
    ),
    "camera": (
        "fer_ros.ros.camera",
        "publish a V4L2 camera or a video file as sensor_msgs/Image (no camera driver needed)",
    ),
    "demo": (
        "fer_ros.tools.demo",
        "end to end: synthetic bag -> live fer_node over DDS -> recorded results -> report; "
        "then the shipped model on a real face (fer-ros video)",
    ),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fer-ros", description="Facial expression recognition for ROS 2."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (_module, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] not in COMMANDS:
        build_parser().parse_args(argv)  # prints usage / help and exits
        return 2
    name = argv[0]
    module_name, help_text = COMMANDS[name]
    module = importlib.import_module(module_name)
    parser = argparse.ArgumentParser(prog=f"fer-ros {name}", description=help_text)
    module.add_arguments(parser)
    args = parser.parse_args(argv[1:])
    from fer_ros.errors import FerRosError, one_line

    try:
        return int(module.run(args) or 0)
    except FerRosError as err:
        print(f"fer-ros {name}: error: {one_line(err, 1000)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"fer-ros {name}: interrupted", file=sys.stderr)
        return 130
    except (
        Exception
    ) as err:  # a failure of the run, not of its input: one line unless asked for more
        if os.environ.get("FER_ROS_DEBUG"):
            raise
        print(
            f"fer-ros {name}: error: {type(err).__name__}: {one_line(err, 1000)} "
            "(FER_ROS_DEBUG=1 shows the traceback)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
