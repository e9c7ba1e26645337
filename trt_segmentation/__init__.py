"""trt_segmentation: SwiftNet semantic segmentation from PyTorch to calibrated TensorRT engines and a ROS 2 node.

Layers follow the pipeline: models (torch) -> export (onnx) -> precision -> engine -> runtime -> node (rclpy).
Importing this package imports nothing heavy; each layer pulls in its own dependencies.
"""

__version__ = "0.1.0"
