"""The camera I/O process, the node's second program (io_mode ``process``): one per camera, started and restarted by
the inference process (``io_supervisor``), it subscribes to its camera, checks and converts each frame and copies
its pixels once into a shared-memory ring (``frame_ring``), telling the inference process only slot numbers,
headers and counts (``io_messages``); ``io_process`` is its program (``python -m
trt_segmentation.node.camera_io.io_process``). Imports nothing itself, so the inference process's modules can use
the ring without starting anything.
"""
