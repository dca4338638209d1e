"""Refresh the Temporal web UI screenshots in docs/images/ (linked from the README).

They are what tests/e2e/test_temporal_ui.py sees in headless Chromium; this runs that test with
``UI_SCREENSHOTS`` pointing at docs/images/. Usage: ``.venv/bin/python scripts/ui-screenshots.py``
(after ``scripts/install-browser.sh``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEST = "tests/e2e/test_temporal_ui.py"

if __name__ == "__main__":
    env = {**os.environ, "UI_SCREENSHOTS": str(ROOT / "docs" / "images"), "CI": "1"}  # no skipping
    sys.exit(subprocess.run([sys.executable, "-m", "pytest", "-q", TEST], cwd=ROOT, env=env).returncode)
