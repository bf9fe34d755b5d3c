"""The MiT-fusion model and everything that stores or converts its weights: the architecture (mit),
ImageNet encoder import (weights), the fer_ros checkpoint file (checkpoint), ONNX export (export)
and the compute count (macs). Knows nothing of ROS."""
