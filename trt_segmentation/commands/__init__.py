"""The command-line tools, installed as ``trt_seg_<tool>`` console scripts (``ros2 run trt_segmentation
trt_seg_<tool>`` after ``colcon build``); ``tools/<tool>.py`` in a source checkout runs the same ``main``.

Each module has ``main(argv=None) -> int`` and imports its heavy dependencies (torch, onnx, rclpy, ...) inside
``main``, so that every module imports on a Jetson that has none of them. The modules sit above the layers they
drive; no layer imports them.
"""
