"""The crash matrix: buyers race for a small pool through the real Telegram storefront in polling mode while
the store process is SIGKILLed at random moments and started again, with the Stars reconciliation running as
configured. After the last restart and a reconciliation pass, every payment the fake Bot API handed out must
have been delivered or refunded, and no code sold twice.

    .venv/bin/python bench/crash.py [--buyers 100] [--codes 60] [--kills 20] [--library aiogram|ptb] [--seed N]

The fake Bot API (tests/fake_bot_api/) runs in this process; the store is `run.py` as a child process on a
SQLite file. Kills come in three kinds, spread over the run: at a random instant; right after a
`successful_payment` update was queued (between update and record); right after a code message reached the
fake (between send and mark sent). Buyers whose step got no answer (the store was down, or the update was
confirmed but not yet handled when it died) ask again, as a person tapping again would.

Figures: `paid` (successful payments handed out), `delivered` (paying buyers who got their code), `refunded`
(charges refunded through refundStarPayment), `lost_paid` (paid, neither), `double_sold` (a code sent to two
buyers), `resent` (a code message sent again after a crash between send and record: allowed, counted),
`kills`, `seconds`. Target: `lost_paid` = 0, `double_sold` = 0, `paid` = `delivered` + `refunded`.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

from bench.common import emit, log, temp_dir  # noqa: E402
from tests.fake_bot_api import FakeBotAPI  # noqa: E402

TOKEN = "555:CRASH"
SPOILER = re.compile(r"<tg-spoiler><code>([^<]+)</code></tg-spoiler>")
STEP_TIMEOUT = 8.0  # a step with no answer this long is asked again
STARS = 10


class KillableAPI(FakeBotAPI):
    """The fake Bot API, telling the bench when a code message went out (to kill right after it)."""

    def __init__(self, *a, **kw) -> None:  # noqa: ANN002, ANN003
        super().__init__(*a, **kw)
        self.on_code_sent = None

    def _notify(self) -> None:
        super()._notify()
        calls = self._calls
        if calls and self.on_code_sent is not None:
            last = calls[-1]
            if last.method == "sendMessage" and last.status == 200 and "tg-spoiler" in last.params.get("text", ""):
                self.on_code_sent()


class Store:
    """run.py as a child process, killed and started again."""

    def __init__(self, api: KillableAPI, cfg: Path, log_path: Path) -> None:
        self.api, self.cfg, self.log_path = api, cfg, log_path
        self.proc: subprocess.Popen | None = None
        self.kills = 0
        self.up = asyncio.Event()

    async def start(self) -> None:
        mark = self.api.mark()
        with self.log_path.open("ab") as out:
            self.proc = subprocess.Popen([sys.executable, "run.py", "--config", str(self.cfg)], cwd=ROOT,
                                         stdout=out, stderr=subprocess.STDOUT)
        await self.api.wait_for("getUpdates", since=mark, timeout=120)
        self.up.set()

    def kill(self) -> bool:
        if self.proc is None or self.proc.poll() is not None or not self.up.is_set():
            return False
        self.up.clear()
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        self.kills += 1
        return True

    async def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            await asyncio.to_thread(self.proc.wait, 60)


class Buyer:
    def __init__(self, api: KillableAPI, store: Store, n: int, product_id: int) -> None:
        self.api, self.store, self.n, self.pid = api, store, n, product_id
        self.uid = 200_000 + n
        self.user = api.user(self.uid, f"B{n}", "en")
        self.charge: str | None = None
        self.sold_out = False

    async def patience(self) -> float:
        """A person waits while the shop is down (they see no answer yet) and taps again only after that."""
        await self.store.up.wait()
        return time.monotonic() + STEP_TIMEOUT

    async def run(self, paid: list[str]) -> None:
        chat = {"id": self.uid, "type": "private"}
        invoice = None
        for _ in range(12):
            mark = self.api.mark()
            self.api.push_update(self.api.callback_update(
                self.user, f"buy:{self.pid}:1", {"message_id": 1, "chat": chat, "date": 0}))
            got = await self._first_of(mark)
            if got == "sold_out":
                self.sold_out = True
                return
            if got is not None:
                invoice = got
                break
        if invoice is None:
            return
        payload, amount = invoice.params["payload"], invoice.params["prices"][0]["amount"]
        for _ in range(12):
            mark = self.api.mark()
            pcq = self.api.pre_checkout_update(self.user, payload, amount)
            qid = pcq["pre_checkout_query"]["id"]
            self.api.push_update(pcq)
            ans = None
            deadline = await self.patience()
            while ans is None and time.monotonic() < deadline:
                ans = next((c for c in self.api.calls_since(mark, "answerPreCheckoutQuery")
                            if c.params.get("pre_checkout_query_id") == qid), None)
                if ans is None:
                    await asyncio.sleep(0.05)
                    if not self.store.up.is_set():
                        deadline = await self.patience()
            if ans is None:
                continue
            if ans.params.get("ok") is not True:
                return
            break
        else:
            return
        self.charge = f"charge-{self.n}"
        paid.append(self.charge)
        self.api.push_update(self.api.successful_payment_update(self.user, payload, amount, self.charge))

    async def _first_of(self, mark: int):  # noqa: ANN202
        deadline = await self.patience()
        while time.monotonic() < deadline:
            if not self.store.up.is_set():
                deadline = await self.patience()
            for c in self.api.calls_since(mark):
                if c.params.get("chat_id") != self.uid or c.status != 200:
                    continue
                if c.method == "sendInvoice":
                    return c
                if c.method == "sendMessage" and "not enough stock" in c.params.get("text", "").lower():
                    return "sold_out"
            await asyncio.sleep(0.05)
        return None


def write_config(directory: Path, api: KillableAPI, codes: int, library: str) -> Path:
    cfg = directory / "config.yaml"
    cfg.write_text(yaml.safe_dump({
        "store": {"name": "Crash shop", "default_language": "en", "hold_minutes": 60, "max_open_holds": 3},
        "database": {"url": f"sqlite+aiosqlite:///{directory / 'store.db'}"},
        "vault": {"key_file": str(directory / "vault.key")},
        "logging": {"level": "WARNING"},
        "telegram": {"token": TOKEN, "api_base": api.base, "library": library},
        # reconciliation as configured for this run: often, and a short scheduler lease so a restarted
        # process takes the jobs over soon after its killed predecessor
        "jobs": {"reconcile_stars_seconds": 2, "lease_seconds": 3, "dispatch_outbox_seconds": 2},
        "catalog": [{"sku": "CRASH", "title": "Crash card", "price": 100, "stars": STARS, "max_qty": 1}],
    }))
    path = directory / "codes.txt"
    path.write_text("".join(f"CRASH-{i:04d}\n" for i in range(codes)))
    subprocess.run([sys.executable, "run.py", "--config", str(cfg), "codes", "import", "CRASH", str(path)],
                   cwd=ROOT, check=True, capture_output=True, timeout=300)
    return cfg


async def bench(args: argparse.Namespace) -> dict[str, object]:
    rng = random.Random(args.seed)
    t0 = time.perf_counter()
    with temp_dir("crash-") as directory:
        async with KillableAPI(token=TOKEN) as api:
            cfg = write_config(directory, api, args.codes, args.library)
            store = Store(api, cfg, directory / "store.log")
            await store.start()
            buyers = [Buyer(api, store, n, 1) for n in range(args.buyers)]
            paid: list[str] = []
            kinds = ["random", "after_payment", "after_send"]
            plan = [kinds[i % 3] for i in range(args.kills)]
            rng.shuffle(plan)
            armed: asyncio.Event = asyncio.Event()

            kinds_done: Counter[str] = Counter()

            def kill_after_send() -> None:
                if armed.is_set() and store.kill():
                    armed.clear()
                    kinds_done["after_send"] += 1
                    log(f"kill {store.kills}: after a code message was sent")

            api.on_code_sent = lambda: asyncio.get_running_loop().call_soon(kill_after_send)

            async def killer() -> None:
                for kind in plan:
                    await asyncio.sleep(rng.uniform(0.3, 1.5))
                    if kind == "random":
                        if store.kill():
                            kinds_done["random"] += 1
                            log(f"kill {store.kills}: at a random moment")
                    elif kind == "after_payment":
                        before = len(paid)
                        for _ in range(200):  # the next payment update queued
                            if len(paid) > before:
                                break
                            await asyncio.sleep(0.01)
                        await asyncio.sleep(rng.uniform(0.0, 0.03))
                        if store.kill():
                            kinds_done["after_payment"] += 1
                            log(f"kill {store.kills}: right after a successful_payment was queued")
                    else:
                        armed.set()
                        for _ in range(1000):  # up to 10 s for the next code message
                            if not armed.is_set():
                                break
                            await asyncio.sleep(0.01)
                        if armed.is_set():  # no code message came: kill now instead, counted as random
                            armed.clear()
                            if store.kill():
                                kinds_done["random"] += 1
                                log(f"kill {store.kills}: at a random moment (no code message to wait for)")
                    if not store.up.is_set():
                        await store.start()

            async def shoppers() -> None:
                sem = asyncio.Semaphore(20)

                async def one(b: Buyer) -> None:
                    async with sem:
                        await b.run(paid)

                await asyncio.gather(*(one(b) for b in buyers))

            await asyncio.gather(killer(), shoppers())
            if not store.up.is_set():
                await store.start()
            log(f"buyers done: {len(paid)} paid, {store.kills} kills; waiting for deliveries and reconciliation")

            def outcome() -> tuple[dict[int, list[str]], set[str]]:
                codes: dict[int, list[str]] = {}
                for c in api.calls("sendMessage"):
                    if c.status == 200:
                        found = SPOILER.findall(c.params.get("text", ""))
                        if found:
                            codes.setdefault(c.params["chat_id"], []).extend(found)
                refunded = {cid for cid, ch in api._charges.items() if ch["refunded"]}  # noqa: SLF001
                return codes, refunded

            deadline = time.monotonic() + args.settle
            while time.monotonic() < deadline:
                codes, refunded = outcome()
                open_ = [b for b in buyers if b.charge and b.uid not in codes and b.charge not in refunded]
                if not open_:
                    break
                await asyncio.sleep(0.5)
            await asyncio.sleep(5)  # one more reconciliation pass (every 2 s), then stop
            await store.stop()
            codes, refunded = outcome()
    paying = [b for b in buyers if b.charge]
    delivered = sum(1 for b in paying if b.uid in codes)
    refunded_n = sum(1 for b in paying if b.charge in refunded)
    lost = sum(1 for b in paying if b.uid not in codes and b.charge not in refunded)
    owners: dict[str, set[int]] = {}
    for uid, cs in codes.items():
        for c in cs:
            owners.setdefault(c, set()).add(uid)
    double_sold = sum(1 for u in owners.values() if len(u) > 1)
    resent = sum(len(cs) - len(set(cs)) for cs in codes.values())
    figures = {"bench": "crash", "library": args.library, "buyers": args.buyers, "codes": args.codes,
               "kills": store.kills, "kill_kinds": dict(kinds_done), "paid": len(paying), "delivered": delivered,
               "refunded": refunded_n,
               "lost_paid": lost, "double_sold": double_sold, "resent": resent,
               "sold_out_buyers": sum(1 for b in buyers if b.sold_out), "seconds": round(time.perf_counter() - t0, 1)}
    figures["ok"] = (lost == 0 and double_sold == 0 and len(paying) == delivered + refunded_n
                     and store.kills >= args.kills * 2 // 3)
    return figures


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--buyers", type=int, default=100)
    p.add_argument("--codes", type=int, default=60)
    p.add_argument("--kills", type=int, default=20)
    p.add_argument("--library", choices=["aiogram", "ptb"], default="aiogram")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--settle", type=float, default=90.0, help="seconds to wait for the last deliveries")
    args = p.parse_args()
    figures = asyncio.run(bench(args))
    emit(figures)
    return 0 if figures["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
