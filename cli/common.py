"""What the commands share: the files of codes they read, the times they print."""
from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from core.inventory import looks_binary


def open_codes_file(path: Path, verb: str) -> Any:
    """A file of codes opened for reading, or None after saying why not (missing, empty, binary):
    `codes import` and `codes burn` refuse the same files the same way ("nothing <verb>")."""
    try:
        fh = path.open("rb")
    except OSError as exc:
        print(f"error: cannot read {path}: {exc.strerror}; nothing {verb}", file=sys.stderr)
        return None
    head = fh.read(8192)
    problem = "is empty" if not head else "looks like a binary file, not one code per line" if looks_binary(
        head) else ""
    if problem:
        fh.close()
        print(f"error: {path} {problem}; nothing {verb}", file=sys.stderr)
        return None
    fh.seek(0)
    return fh


def when(value: Any) -> str:
    if value is None:
        return "-"
    at = datetime.fromisoformat(value) if isinstance(value, str) else value
    return f"{at:%Y-%m-%d %H:%M:%S}Z"
