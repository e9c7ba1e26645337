"""The ROS 2 segmentation node: camera images in, per-pixel trainId labels (+ colour/overlay) and diagnostics out.

Modules, by process and by what passes between them:

- ``ros_node``: the inference process's rclpy side (parameters, topics, diagnostics timer) and ``main``;
  ``startup`` (model file, checks, engine build, backend) and ``params`` run before it subscribes.
- ``frame_worker`` (one camera) / ``batch_worker`` (several cameras, one batch-N model) on ``worker_threads``:
  newest-frame choice, converter and collector threads; ``frames`` is what they keep per frame.
- ``diagnostics`` and ``latency``: the reports and the statistics behind them.
- ``camera_io``: the node's second program, one camera I/O process per camera (io_mode ``process``), its
  supervisor in the inference process, the shared-memory frame ring and the messages between the two.

Run: ``python -m trt_segmentation.node --ros-args --params-file config/segmentation.yaml``.
"""

from .frame_worker import FrameWorker
from .frames import Frame, Pending
from .ros_node import NODE_NAME, SegmentationNode, main

__all__ = ["NODE_NAME", "Frame", "FrameWorker", "Pending", "SegmentationNode", "main"]
