"""`ros2 launch fer_ros fer.launch.py` for real, and the real ros2 CLI against the launched node.

The upstream launch, launch_ros and ros2cli (not wheels) come from the throw-away layer that
conftest's `ros_layer` builds from ../shared/vendor/ros2; without it these tests skip, saying why.
fer_ros itself is the one `make install` put into this venv: `pip install .` puts its executables
under <prefix>/lib/fer_ros/, where launch_ros looks for them.
"""

import os
import signal
import subprocess
import time
from pathlib import Path

import cv2
import numpy as np
import skimage.data
from live import publish_until_answered

REPO = Path(__file__).resolve().parents[2]
CHECKPOINT = (
    REPO / "models" / "fer_synthetic_mit_b0.safetensors"
)  # small and fast; any checkpoint will do


def astronaut_frame():
    frame = np.zeros((480, 640, 3), np.uint8)
    frame[:, 80:560] = cv2.resize(
        skimage.data.astronaut(), (480, 480), interpolation=cv2.INTER_AREA
    )
    return frame


class Launch:
    """`ros2 launch ...` in its own process group, as a terminal runs it; output in a file."""

    def __init__(self, layer, tmp_path: Path, *arguments: str):
        self.layer, self.log_path = layer, tmp_path / "launch.log"
        env = dict(layer.env, PYTHONUNBUFFERED="1")
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [str(layer.prefix / "bin" / "ros2"), "launch", "fer_ros", "fer.launch.py", *arguments],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for(self, text: str, timeout: float = 120.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            if text in self.output():
                return True
            time.sleep(0.2)
        return text in self.output()

    def ctrl_c(self, times: int = 1, gap: float = 0.1, timeout: float = 60.0) -> int:
        """SIGINT to the whole process group (launch and the node), `times` times: a terminal's
        Ctrl-C."""
        for _ in range(times):
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGINT)
            time.sleep(gap)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            code = self.proc.wait()
        self.log.close()
        return code


def ros2(layer, *args, timeout=60.0) -> str:
    """Run the real `ros2` CLI; its exit code is not trusted (param set exits 0 on refusal): the
    text is."""
    done = layer.ros2(*args, timeout=timeout)
    return done.stdout + done.stderr


def test_ros2_launch_runs_the_node_and_the_ros2_cli_sees_it(ros_layer, ros, tmp_path):
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image

    from fer_ros.msg import EmotionArray
    from fer_ros.ros.images import fill_image

    launch = Launch(ros_layer, tmp_path, "image:=/probe/image", f"checkpoint:={CHECKPOINT}")
    try:
        assert launch.wait_for("listening on /probe/image"), launch.output()
        # A real photo in, results out.
        tester = ros.create_node("launch_tester")
        answers = []
        tester.create_subscription(EmotionArray, "/emotions", answers.append, 10)
        pub = tester.create_publisher(Image, "/probe/image", qos_profile_sensor_data)
        msg = fill_image(Image(), astronaut_frame(), "rgb8")
        publish_until_answered(ros, tester, pub, msg, answers, period=0.5)
        tester.destroy_node()
        assert answers and len(answers[0].faces) == 1, launch.output()

        topics = ros2(ros_layer, "topic", "list", "-t", "--no-daemon", "--spin-time", "5")
        for line in (
            "/emotions [fer_ros/msg/EmotionArray]",
            "/emotion [fer_ros/msg/EmotionStamped]",
            "/diagnostics [diagnostic_msgs/msg/DiagnosticArray]",
            "/fer_node/detections "
            "[vision_msgs/msg/Detection2DArray]",  # vision_msgs is in the layer
            "/fer_node/label_info [vision_msgs/msg/LabelInfo]",
        ):
            assert line in topics, topics
        assert "String value is: auto" in ros2(
            ros_layer, "param", "get", "/fer_node", "detector", "--no-daemon", "--timeout", "10"
        )
        assert "Set parameter successful" in ros2(
            ros_layer,
            "param",
            "set",
            "/fer_node",
            "detect_every",
            "2",
            "--no-daemon",
            "--timeout",
            "10",
        )
        assert "Integer value is: 2" in ros2(
            ros_layer,
            "param",
            "get",
            "/fer_node",
            "detect_every",
            "--no-daemon",
            "--timeout",
            "10",
        )
        refused = ros2(
            ros_layer,
            "param",
            "set",
            "/fer_node",
            "detect_every",
            "0",
            "--no-daemon",
            "--timeout",
            "10",
        )
        assert "Setting parameter failed" in refused, refused
        assert "active [3]" in ros2(
            ros_layer, "lifecycle", "get", "/fer_node", "--no-daemon", "--spin-time", "5"
        )
    finally:
        code = launch.ctrl_c()
    assert code == 0, launch.output()


def test_namespaced_launch_and_a_double_ctrl_c_shut_down_cleanly(ros_layer, tmp_path):
    launch = Launch(
        ros_layer,
        tmp_path,
        "namespace:=robot1",
        "image:=/probe/image",
        f"checkpoint:={CHECKPOINT}",
    )
    try:
        assert launch.wait_for("listening on /probe/image; publishing /robot1/emotions"), (
            launch.output()
        )
        topics = ros2(ros_layer, "topic", "list", "--no-daemon", "--spin-time", "5")
        assert "/robot1/emotions" in topics and "/robot1/fer_node/diagnostics" not in topics, (
            topics
        )
        assert "active [3]" in ros2(
            ros_layer, "lifecycle", "get", "/robot1/fer_node", "--no-daemon", "--spin-time", "5"
        )
    finally:
        code = launch.ctrl_c(
            times=2, gap=0.05
        )  # Ctrl-C pressed twice: a second signal during cleanup
    output = launch.output()
    assert code == 0, output
    assert "process has finished cleanly" in output and "has died" not in output, output
    assert "Traceback" not in output and "KeyboardInterrupt" not in output, output
