"""`fer-ros camera --topic`: a name rcl would refuse is one line and exit 2, naming the topic,
before the camera or video opens and before DDS starts (it was exit 1 with rclpy's
InvalidTopicNameException)."""

import pytest

from fer_ros.cli import main as fer_ros

MISSING = "/nonexistent/fer_ros_test/missing.mp4"  # checked after the topic: never opened


@pytest.mark.parametrize(
    "topic, rule",
    [
        ("/a/1b", "token must not start with a number"),
        ("bad topic", "must not contain characters other than alphanumerics"),
        ("/a//b", "must not contain repeated '/'"),
        ("/camera/", "must not end with a forward slash"),
        ("", "must not be empty string"),
    ],
)
def test_a_bad_topic_is_one_line_and_exit_2_before_anything_starts(capsys, topic, rule):
    assert fer_ros(["camera", "--video", MISSING, "--topic", topic]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("fer-ros camera: error: "), err
    assert f"--topic {topic!r} is not a valid ROS topic name" in err[0] and rule in err[0], err


@pytest.mark.parametrize(
    "topic, full",
    [
        ("/camera/image_raw", "/camera/image_raw"),
        ("cam/image", "/cam/image"),
        ("~/image", "/fer_camera/image"),
    ],
)
def test_good_topics_pass_the_check_as_the_publisher_will_name_them(topic, full):
    from fer_ros.ros.camera import check_topic

    assert check_topic(topic) == full
