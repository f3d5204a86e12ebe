"""Process-wide tuning for a long-running store process.

After start-up the process holds a few hundred thousand long-lived objects (aiogram's and pydantic's models,
SQLAlchemy's tables, the catalogues). CPython's cyclic garbage collector walks all of them on every full
collection: measured in bench/telegram_e2e.py, collections took about a quarter of the CPU under load, with
single pauses near 300 ms, which every customer waiting at that moment felt. `settle_heap()` collects once,
moves what start-up made into the permanent generation (`gc.freeze()`, never scanned again), and lets the
young generation grow larger before it is collected: fewer, cheaper collections. Reference counting still frees
almost everything at once; only cycles wait a little longer.

It also shortens the GIL's switch interval. SQLite runs in aiosqlite's threads, which give up the GIL while
SQLite works and must get it back for every statement (and every row): with the event loop thread busy, each
of those waits up to the interval, 5 ms by default, and a group commit's statements queued behind it.
"""
from __future__ import annotations

import gc
import sys

YOUNG_THRESHOLD = 20_000  # CPython's default is 700 allocations
SWITCH_INTERVAL = 0.0005  # seconds; CPython's default is 0.005


def settle_heap() -> None:
    """Call once the store is built and about to serve (not in tests: they build and drop stores often)."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, older, oldest)
    sys.setswitchinterval(SWITCH_INTERVAL)
