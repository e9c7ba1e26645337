#!/usr/bin/env python3
"""trt_seg_prune from a source checkout: the same arguments, see --help (code: trt_segmentation/commands/prune.py)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trt_segmentation.commands.prune import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
