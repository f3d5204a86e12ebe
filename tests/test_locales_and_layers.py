"""Every user-facing string exists in both languages, and core/ stays framework-free."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from core.admin import AdminCode
from core.aftersales import AftersalesCode
from core.auditlog import AuditLogCode
from core.cardfaces import CardFaceCode
from core.console import ConsoleCode
from core.coupons import CouponCode
from core.errors import ErrorCode, Refused
from core.groups import GroupCode
from core.images import ImageCode
from core.models import OrderStatus
from core.order_search import SearchCode
from core.payments import Refusal
from core.privacy import PrivacyCode
from core.reports import ReportCode
from core.resellers import ResellerCode
from core.risk import RULE_CODES
from handlers import errors
from locales import Translator

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = {"aiogram", "telegram", "wechatpy", "sqlalchemy", "apscheduler", "aiohttp"}


def test_both_catalogues_carry_the_same_keys_with_the_same_placeholders():
    tr = Translator(("en", "zh_CN"))
    en, zh = tr.catalogs["en"], tr.catalogs["zh_CN"]
    assert set(en) == set(zh)
    for key in en:
        assert set(re.findall(r"{(\w+)}", en[key])) == set(re.findall(r"{(\w+)}", zh[key])), key
        assert en[key] != key


def test_every_message_key_the_code_uses_exists():
    tr = Translator(("en", "zh_CN"))
    used: set[str] = set()
    prefixes: set[str] = set()
    for path in list((ROOT / "handlers").rglob("*.py")) + list((ROOT / "bots").rglob("*.py")):
        src = path.read_text()
        # t(lang, "key", ...) and a handler's turn.t("key", ...)
        used |= set(re.findall(r"""t\(\s*[\w.]+,\s*"([a-z_.]+)""", src))
        used |= set(re.findall(r"""\bturn\.t\(\s*"([a-z_.]+)""", src))
        prefixes |= set(re.findall(r"""t\(\s*[\w.]+,\s*f"([a-z_.]+)\{""", src))
        prefixes |= set(re.findall(r"""\bturn\.t\(\s*f"([a-z_.]+)\{""", src))
    assert used, "no message keys found: the pattern above is out of date"
    assert {"wallet.balance", "catalog.item", "link.intro"} <= used, "handlers' turn.t(...) keys are not found"
    assert used - set(tr.catalogs["en"]) == set()
    for prefix in prefixes:
        assert any(k.startswith(prefix) for k in tr.catalogs["en"]), prefix
    for status in OrderStatus:
        assert f"status.{status.value}" in tr.catalogs["zh_CN"], status


def test_every_refusal_has_its_message_in_every_language():
    """Each member of each refusal enum (handlers/errors.py ROOMS) has its message in en and zh_CN; a refused rule
    says which rule (rules.refused.<code> for every rule), with a message for a refusal that names none."""
    assert set(errors.ROOMS) == {ErrorCode, ResellerCode, GroupCode, AdminCode, CardFaceCode, AftersalesCode,
                                 ReportCode, SearchCode, ConsoleCode, AuditLogCode, Refusal, ImageCode,
                                 CouponCode, PrivacyCode}
    tr = Translator(("en", "zh_CN"))
    missing = [f"{lang}: {errors.ROOMS[enum]}.{code.value}" for lang in ("en", "zh_CN") for enum in errors.ROOMS
               for code in enum if f"{errors.ROOMS[enum]}.{code.value}" not in tr.catalogs[lang]]
    missing += [f"{lang}: rules.refused.{rule}" for lang in ("en", "zh_CN") for rule in RULE_CODES
                if f"rules.refused.{rule}" not in tr.catalogs[lang]]
    assert missing == []
    # Every Refused subclass in core has its enum in the table.
    subclasses: set[type[Refused]] = set()
    todo = [Refused]
    while todo:
        for sub in todo.pop().__subclasses__():
            subclasses.add(sub)
            todo.append(sub)
    assert {sub.codes for sub in subclasses} <= set(errors.ROOMS)


def test_every_command_line_message_is_in_the_catalogue_and_every_cli_key_is_used():
    """The CLI (cli/) words everything through the `cli` room (cli.po): each key it names exists, and each key of
    the room is used (a message left behind in the catalogue is a message the code no longer prints)."""
    tr = Translator(("en", "zh_CN"))
    src = "\n".join(path.read_text() for path in (ROOT / "cli").rglob("*.py"))
    used = set(re.findall(r'"(cli\.[a-z_.]+)"', src))
    prefixes = set(re.findall(r'f"(cli\.[a-z_.]+)\{', src))
    assert used and prefixes, "no CLI message keys found: the pattern above is out of date"
    assert used - set(tr.catalogs["en"]) == set()
    room = {k for k in tr.catalogs["en"] if k.startswith("cli.")}
    assert {k for k in room if k not in used and not any(k.startswith(p) for p in prefixes)} == set()
    for prefix in prefixes:
        assert any(k.startswith(prefix) for k in room), prefix


def test_core_imports_no_framework():
    leaks = []
    for path in (ROOT / "core").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            leaks += [f"{path.name}: {n}" for n in names if n.split(".")[0] in FORBIDDEN]
    assert leaks == []


def _imports(room: str) -> list[tuple[str, str, list[str]]]:
    """(file, module, imported names) of every import in a room, function-level ones included."""
    out = []
    for path in sorted((ROOT / room).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                out += [(str(path.relative_to(ROOT)), a.name, []) for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                out.append((str(path.relative_to(ROOT)), node.module, [a.name for a in node.names]))
    return out


def _core_services() -> set[str]:
    """The classes of core/ that make up the running shop (desks, the order book, the dispatcher, ...): built by
    the composition root (app/bootstrap.py), never by an adapter or a repository."""
    named = {"Shop", "OrderBook", "Guard", "OutboxDispatcher", "GroupCommitter", "SupplierHealth", "StockWatch",
             "DailySummary"}
    found = set()
    for path in (ROOT / "core").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and (node.name.endswith("Desk") or node.name in named):
                found.add(node.name)
    return found


def test_storage_implements_repositories_and_composes_nothing_of_core():
    services = _core_services()
    assert {"Shop", "ResellerDesk", "GroupDesk", "RestockDesk", "StockWatch"} <= services, \
        "the service list is out of date"
    composed = [f"{f}: {m}.{n}" for f, m, names in _imports("storage") if m.startswith("core")
                for n in names if n in services]
    hung = []  # shop.<feature> = ... : a storage module hanging a desk on the shop
    for path in (ROOT / "storage").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                hung += [f"{path.name}: shop.{t.attr}" for t in targets if isinstance(t, ast.Attribute)
                         and isinstance(t.value, ast.Name) and t.value.id == "shop"]
    assert composed + hung == []


def test_every_repository_is_bound_to_the_transaction_of_its_unit_of_work():
    """Core reaches storage only as `uow.<repo>.method(...)`: storage/db.py builds every repository on the
    transaction's connection, so no repository method takes the unit of work, and no code outside the tests reaches
    the connection through another repository (`uow.codes.c`)."""
    takes_uow, shortcuts = [], []
    for room in ("core", "storage", "bots", "handlers", "jobs", "suppliers", "app", "cli"):
        for path in (ROOT / room).rglob("*.py"):
            name = str(path.relative_to(ROOT))
            for node in ast.walk(ast.parse(path.read_text())):
                if room == "storage" and isinstance(node, ast.ClassDef):
                    takes_uow += [f"{name}: {node.name}.{f.name}" for f in node.body
                                  if isinstance(f, ast.FunctionDef | ast.AsyncFunctionDef)
                                  and [a.arg for a in f.args.args[:2]] == ["self", "uow"]]
                if (isinstance(node, ast.Attribute) and node.attr in ("c", "pg")
                        and isinstance(node.value, ast.Attribute) and isinstance(node.value.value, ast.Name)
                        and node.value.value.id == "uow"):
                    shortcuts.append(f"{name}: {ast.unparse(node)}")
    assert takes_uow + shortcuts == []


def test_core_imports_nothing_from_the_rooms_around_it():
    """Core is the middle of the house: the adapters, storage, the scheduler, the flows and the composition root
    call it, never the other way round (their ports are core's Protocols, implemented out there)."""
    outside = {"jobs", "bots", "storage", "app", "handlers", "cli", "suppliers", "run"}
    leaks = [f"{f}: {m}" for f, m, _ in _imports("core") if m.split(".")[0] in outside]
    assert leaks == []


def test_the_lease_engine_needs_no_framework_and_jobs_reach_no_storage():
    """jobs/lease.py (which process runs the jobs, at which tick) is plain Python: storage/jobs.py implements its
    JobStore and imports it without pulling in APScheduler. jobs/ gets its store from the composition root."""
    leaks = [f"{f}: {m}" for f, m, _ in _imports("jobs") if f == "jobs/lease.py" and m.split(".")[0] in FORBIDDEN]
    leaks += [f"{f}: {m}" for f, m, _ in _imports("jobs") if m.split(".")[0] in ("storage", "sqlalchemy", "handlers")]
    leaks += [f"{f}: {m}" for f, m, _ in _imports("storage") if m.split(".")[0] == "jobs" and m != "jobs.lease"]
    assert leaks == []


def test_core_reads_no_configuration():
    """The settings schema is wiring (config/): the composition root hands core the values it needs."""
    leaks = [f"{f}: {m}" for f, m, _ in _imports("core") if m.split(".")[0] == "config"]
    assert leaks == []


def test_jobs_and_suppliers_import_no_adapter():
    leaks = [f"{f}: {m}" for room in ("jobs", "suppliers") for f, m, _ in _imports(room)
             if m.split(".")[0] == "bots"]
    assert leaks == []


def test_handlers_import_no_adapter_storage_or_framework():
    """Flows are channel-neutral: they reach the outside world only through core and the Screens they return."""
    outside = {"bots", "storage", "suppliers", "jobs", "app", "cli", "run"} | FORBIDDEN
    leaks = [f"{f}: {m}" for f, m, _ in _imports("handlers") if m.split(".")[0] in outside]
    assert leaks == []


def test_only_the_entry_points_import_the_composition_root():
    """app/ builds everything and cli/ runs it; nothing they build reaches back up to them."""
    leaks = [f"{f}: {m}" for room in ("core", "storage", "handlers", "bots", "jobs", "suppliers", "locales")
             for f, m, _ in _imports(room) if m.split(".")[0] in ("app", "cli", "run")]
    assert leaks == []


def test_no_adapter_writes_into_the_shops_tables_or_hooks():
    """Notifiers, gateways and hooks are registered by the composition root through the shop's typed calls
    (add_notifier, add_gateway, on_paid, on_refunded, attach_topups), never by writing into core's own state. (An
    adapter fills its own ChannelParts, `parts`, and hands that back.)"""
    tables = ("notifiers", "gateways", "paid_hooks", "refunded_hooks")

    def core_state(attr: ast.expr) -> bool:
        return isinstance(attr, ast.Attribute) and attr.attr in tables and not ast.unparse(attr.value).endswith(
            "parts")

    writes = []
    for room in ("bots", "storage", "handlers", "jobs", "suppliers", "app", "cli"):
        for path in (ROOT / room).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(
                    node, ast.AugAssign | ast.AnnAssign) else []
                writes += [f"{path.name}: {ast.unparse(t)} =" for t in targets
                           if isinstance(t, ast.Subscript) and core_state(t.value)
                           or isinstance(t, ast.Attribute) and t.attr in ("topups", *tables)]
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in (
                        "append", "setdefault", "update") and core_state(node.func.value):
                    writes.append(f"{path.name}: {ast.unparse(node.func)}(...)")
    assert writes == []


def test_money_is_shown_the_way_each_language_writes_it():
    assert Translator.money(1234, "CNY", "zh_CN") == "¥12.34"
    assert Translator.money(1234, "CNY", "en") == "CN¥12.34"
    assert Translator.money(500, "JPY", "en") == "¥500"
    assert Translator.money(70, "XTR", "en") == "⭐70"


def test_a_key_in_two_catalogue_files_is_refused_with_both_named(tmp_path):
    """Each room has its own .po file; the same key in two of them would make one text win silently."""
    folder = tmp_path / "en" / "LC_MESSAGES"
    folder.mkdir(parents=True)
    (folder / "messages.po").write_text('msgid "menu.title"\nmsgstr "Shop"\n')
    (folder / "risk.po").write_text('msgid "risk.x"\nmsgstr "X"\n\nmsgid "menu.title"\nmsgstr "Other"\n')

    with pytest.raises(ValueError, match="menu.title"):
        Translator(("en",), directory=tmp_path)
    (folder / "risk.po").write_text('msgid "risk.x"\nmsgstr "X"\n')
    assert Translator(("en",), directory=tmp_path).t("en", "risk.x") == "X"


def _module_imports(rooms: tuple[str, ...]) -> dict[str, set[str]]:
    """module -> the modules of these rooms it imports: function-level imports count (a late import only hides a
    cycle), imports under `if TYPE_CHECKING:` do not (annotations only, never run)."""
    modules = {}
    for room in rooms:
        for path in (ROOT / room).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text())
        typing_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
                       and ast.unparse(node.test).endswith("TYPE_CHECKING") for n in ast.walk(node)}
        targets = set()
        for node in ast.walk(tree):
            if id(node) in typing_only:
                continue
            if isinstance(node, ast.Import):
                targets |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets.add(node.module)
                targets |= {f"{node.module}.{a.name}" for a in node.names}  # `from handlers import errors`
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def test_no_module_of_the_flows_adapters_or_wiring_imports_itself_back():
    """handlers/, bots/ and the wiring around them (app, cli, config, suppliers, jobs) form no import cycle, not even
    one dodged by an import inside a function: code two modules share goes to a third both import
    (handlers/merchant.py, bots/telegram/wiring.py for the runtimes)."""
    graph = _module_imports(("handlers", "bots", "app", "cli", "config", "suppliers", "jobs"))
    cycles, seen = [], set()

    def back_to(start: str, node: str, path: list[str]) -> None:
        for nxt in sorted(graph[node]):
            if nxt == start:
                cycles.append(" -> ".join([*path, start]))
            elif nxt not in path and nxt not in seen:
                back_to(start, nxt, [*path, nxt])

    for start in sorted(graph):
        back_to(start, start, [start])
        seen.add(start)  # every cycle through it is found by now
    assert cycles == [], cycles
