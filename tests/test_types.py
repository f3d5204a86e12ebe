"""Static types of core/ and storage/, checked with the tests: mypy at the strictness in pyproject.toml's
[tool.mypy] (near-strict; why: docs/tests-and-benchmarks.md). A port a repository no longer fits, an Optional
used without a check, a function left untyped: each fails here before it fails in a store."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_core_and_storage_type_check_clean() -> None:
    result = subprocess.run([sys.executable, "-m", "mypy", "--no-error-summary", "--no-color-output"],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
