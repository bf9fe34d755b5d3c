"""rosbags type store that knows fer_ros's messages, read from the installed .msg files.

rosbags (pure Python) then writes and reads our messages in rosbag2 files byte-for-byte as
rclpy serialises them, and with the same type hashes, so a real `ros2 bag` can read them too.
"""

from functools import lru_cache

from rosbags.typesys import Stores, get_types_from_msg, get_typestore

from fer_ros.paths import share_dir

MESSAGES = ("EmotionStamped", "EmotionArray")


@lru_cache(maxsize=1)
def typestore():
    store = get_typestore(Stores.ROS2_KILTED)
    types = {}
    for name in MESSAGES:
        text = (share_dir() / "msg" / f"{name}.msg").read_text()
        types.update(get_types_from_msg(text, f"fer_ros/msg/{name}"))
    store.register(types)
    return store
