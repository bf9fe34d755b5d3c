"""`fer-ros run`: start fer_node the way `ros2 launch fer_ros fer.launch.py` does, without launch.

Same params file, same remaps, same Fast DDS profile and allocator settings in the node's
environment. `fer-ros run --print-env` prints those settings as shell exports, for the shell
that starts the camera driver:  eval "$(fer-ros run --print-env)"
"""

import os
import shlex
import sys

from fer_ros.errors import ConfigError
from fer_ros.paths import config_file
from fer_ros.ros.dds import large_image_env, profile_variable


def add_arguments(parser) -> None:
    parser.add_argument(
        "--params-file",
        default=None,
        help="node parameters (default: the shipped config/fer.yaml)",
    )
    parser.add_argument("--image", default="/camera/image_raw", help="camera image topic")
    parser.add_argument("--namespace", default="", help="namespace of the node")
    parser.add_argument(
        "--checkpoint",
        default="",
        help="fer_ros .safetensors checkpoint (default: the params "
        "file's, else the shipped model)",
    )
    parser.add_argument(
        "-p",
        "--param",
        action="append",
        default=[],
        metavar="NAME:=VALUE",
        help="override one parameter (repeatable)",
    )
    parser.add_argument(
        "--print-env",
        action="store_true",
        help="print the environment a camera driver needs as shell exports, and exit",
    )


def node_command(args) -> list[str]:
    params_file = args.params_file or str(config_file("fer.yaml"))
    command = [
        sys.executable,
        "-m",
        "fer_ros.ros.node",
        "--ros-args",
        "--params-file",
        params_file,
        "-r",
        f"image:={args.image}",
        "-r",
        f"image/compressed:={args.image}/compressed",
    ]
    if args.namespace:
        command += ["-r", f"__ns:=/{args.namespace.strip('/')}"]
    if args.checkpoint:
        command += ["-p", f"checkpoint:={args.checkpoint}"]
    for item in args.param:
        if ":=" not in item:
            raise ConfigError(f"-p expects NAME:=VALUE, got {item!r}")
        command += ["-p", item]
    return command


def run(args) -> int:
    if args.print_env:  # what this shell has already chosen stays chosen
        env = large_image_env()
        for key in (profile_variable(), "GLIBC_TUNABLES"):
            print(f"export {key}={shlex.quote(env[key])}")
        return 0
    if args.checkpoint:
        from fer_ros.model.checkpoint import read_meta

        read_meta(
            args.checkpoint
        )  # a missing or corrupt file: one line here, not a node that dies
    if args.params_file and not os.path.isfile(args.params_file):
        raise ConfigError(f"params file not found: {args.params_file}")
    command = node_command(args)
    # exec, so that SIGINT/SIGTERM reach the node itself.
    os.execve(command[0], command, large_image_env())
    return 1
