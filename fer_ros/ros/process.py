"""fer_node as a process (its `main`): start-up, the spin loop, and a shutdown that always
completes.

SIGINT and SIGTERM only set a flag; the loop then stops the node's worker and frees its engine. A
second signal while that runs (a terminal's Ctrl-C reaches both `ros2 launch` and the node, and
launch forwards its own) changes nothing, so cleanup always completes with exit code 0. A bad
parameter value given at start-up is one line and exit code 2; a failed autostart exit code 1.
"""

import signal
import sys
import threading

import rclpy
from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.signals import SignalHandlerOptions

from fer_ros.errors import one_line
from fer_ros.ros.dds import tune_allocator
from fer_ros.ros.failures import described


def spin_once(executor, node) -> None:
    """One turn of the executor. A callback that raises (a peer's message that no check foresaw)
    is logged, throttled, and the node runs on: nothing from the network ends the process."""
    try:
        executor.spin_once(timeout_sec=0.1)
    except ExternalShutdownException:
        raise
    except Exception as err:  # see the docstring
        node.get_logger().error(
            described("a callback failed, the node runs on", err), throttle_duration_sec=5.0
        )


def autostart(node) -> int:
    """Configure and activate `node`; the exit code: 0, or 1 when a transition failed (the node
    has logged why)."""
    if node.trigger_configure() != TransitionCallbackReturn.SUCCESS:
        return 1
    if node.trigger_activate() != TransitionCallbackReturn.SUCCESS:
        return 1
    return 0


def run(make_node, args=None) -> int:
    """Run the FerNode `make_node()` builds until a signal arrives; returns the exit code."""
    tune_allocator()
    # Signals only set a flag: the loop below cleans up, and a second signal cannot cut it short.
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        node = make_node()
    except (InvalidParameterTypeException, InvalidParameterValueException) as err:
        # A bad value on the command line or in a params file: one line, not a traceback.
        print(f"fer_node: {one_line(err)}", file=sys.stderr)
        rclpy.try_shutdown()
        return 2
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        code = autostart(node) if node.param("autostart") else 0
        while code == 0 and not stop.is_set() and rclpy.ok():
            spin_once(executor, node)
    finally:
        node.stop_worker()
        node.release_engine()
        executor.shutdown(timeout_sec=1.0)
        node.destroy_node()
        # Cleanup is done; only exiting remains. rclpy's shutdown "uninstalls" its signal handlers
        # even when none were installed, and Python's own finalisation puts Python-level handlers
        # back to the default action, so a late second Ctrl-C would kill the process (exit -2).
        # Ignoring at the OS level survives both.
        rclpy.try_shutdown()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)
    return code
