"""rosbag2 tools (through rosbags, no ROS install needed): reading and writing bags, offline
evaluation of the node's pipeline (bag-eval), replay onto a live graph, recording, synthetic and
image-folder bags, and the report they share."""
