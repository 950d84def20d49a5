#!/usr/bin/env python3
"""Verify the live index against its files and the guides:
python scripts/verify_index.py [--content DIR] [--index DIR] [--json].

Exit status: 0 healthy and up to date, 1 missing or damaged, 2 serving but the plain build has work to do
(the content changed, or the query encoder export is damaged).
"""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from kb.cli import verify_main  # noqa: E402

if __name__ == "__main__":
    verify_main()
