"""How every long-running test process ends: spin until Ctrl-C or shutdown, then leave cleanly."""

import rclpy
from rclpy.executors import ExternalShutdownException


def spin_until_stopped(node) -> None:
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    rclpy.try_shutdown()
