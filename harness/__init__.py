"""Harness for tests, the demo and the node benchmark, run from a source checkout (not installed with the package):
start the node as launch/segmentation.launch.py would (launch_emulation), listen to its topics (topic_probe),
time it end to end against a raw-CDR relay (node_benchmark; several cameras: multi_camera_benchmark; where the
GIL is held: gil_profiler)."""
