#!/usr/bin/env python3
"""Build or update the search index: python scripts/build_index.py [--content DIR] [--index DIR] [--full]."""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from kb.cli import build_main  # noqa: E402

if __name__ == "__main__":
    build_main()
