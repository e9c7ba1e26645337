#!/usr/bin/env python3
"""trt_seg_build_on_target from a source checkout: the same arguments, see --help (code: trt_segmentation/commands/build_on_target.py)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trt_segmentation.commands.build_on_target import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
