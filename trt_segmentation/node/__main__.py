"""``python -m trt_segmentation.node``: the segmentation node (ros_node.main)."""

import sys

from .ros_node import main

if __name__ == "__main__":
    sys.exit(main())
