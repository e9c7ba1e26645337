"""trt_segmentation: SwiftNet semantic segmentation from PyTorch to calibrated TensorRT engines and a ROS 2 node.

Layers follow the pipeline: models (torch) -> export (onnx) -> precision -> engine -> runtime -> node (rclpy);
apps/ composes them and commands/ are the tools (test/test_layering.py holds the whole tower).
Importing this package imports nothing heavy; each layer pulls in its own dependencies.
"""

__version__ = "0.1.0"
