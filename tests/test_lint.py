"""Static checks of the whole tree, run with the tests: ruff with the rule set in pyproject.toml (pyflakes, style,
bugbear, pyupgrade, no function-level imports; docs/tests-and-benchmarks.md says why each). An undefined name in
a rarely taken branch is a crash waiting for its day: one in core/payments.py was only found this way."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHECKED = ["app", "bots", "config", "core", "handlers", "storage", "jobs", "suppliers", "cli", "locales", "tests",
           "bench", "tools", "examples", "run.py"]


def test_the_code_passes_ruff() -> None:
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "--output-format", "concise", "--no-cache",
                             *CHECKED], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
