"""Where ROS starts: fer_node (a thin lifecycle adapter around fer_ros.inference.pipeline), its
parameters, image and message conversion, the Fast DDS settings for camera-sized frames, and
`fer-ros run`."""
