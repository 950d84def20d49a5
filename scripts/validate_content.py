#!/usr/bin/env python3
"""Check guides before they are merged:
python scripts/validate_content.py [PATHS...] [--changed-only] [--format json|github].

Prints `path:line:col: level: message (fix: ...)` per problem; exit status 0 when there are no errors.
"""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from kb.cli import check_main  # noqa: E402

if __name__ == "__main__":
    check_main()
