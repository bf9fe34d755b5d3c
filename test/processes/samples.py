"""Known message contents shared by the publishing process and the tests that check them."""

from builtin_interfaces.msg import Time
from sensor_msgs.msg import RegionOfInterest
from std_msgs.msg import Header

from fer_ros.labels import FER7
from fer_ros.msg import EmotionArray, EmotionStamped

PROBS = [0.05, 0.05, 0.1, 0.6, 0.1, 0.05, 0.05]


def sample_emotion(face_id: int = 7, x: int = 120) -> EmotionStamped:
    msg = EmotionStamped()
    msg.header = Header(stamp=Time(sec=1_700_000_123, nanosec=456_789), frame_id="camera_optical")
    msg.face = RegionOfInterest(x_offset=x, y_offset=80, width=96, height=110)
    msg.face_id = face_id
    msg.labels = list(FER7)
    msg.probabilities = PROBS
    msg.label, msg.confidence = "happy", 0.6
    msg.latency_ms, msg.processing_ms = 23.5, 17.25
    msg.model = "test-model@0123456789ab"
    return msg


def sample_array() -> EmotionArray:
    first = sample_emotion()
    return EmotionArray(header=first.header, faces=[first, sample_emotion(face_id=8, x=300)])
