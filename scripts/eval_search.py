#!/usr/bin/env python3
"""Measure search relevance: python scripts/eval_search.py [--beir DIR] [--json] (see --help)."""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from kb.tools.evaluation import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
