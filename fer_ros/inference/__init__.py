"""From pixels to expressions, without ROS: preprocessing, the inference engine (ONNX Runtime on
the CPU, PyTorch with CUDA graphs on a GPU), face detection and cropping, tracking and smoothing,
and the one frame pipeline that the node, the bag tools, the demo and the benchmarks all call."""
