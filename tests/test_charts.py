"""The report charts (handlers/charts.py): each is a real PNG and SVG of the promised size, Chinese product names
are drawn with real glyphs (no box), a chart takes well under a second, and only report code loads matplotlib."""
from __future__ import annotations

import ast
import io
import subprocess
import sys
import time
import warnings
import xml.etree.ElementTree as ET
from datetime import date, timedelta
from pathlib import Path

import pytest
from PIL import Image

from handlers import charts
from tests.helpers import ROOT

DAYS = [(date(2026, 11, 1) + timedelta(days=i), 1000.0 + 37 * i) for i in range(30)]
FUNNEL = [("商品浏览 product view", 1000), ("下单 invoice", 420), ("已支付 paid", 300), ("已发货 delivered", 297)]
PRODUCTS = [("Steam 充值卡 100元", 12_000.0), ("腾讯视频VIP月卡", 8_000.5), ("爱奇艺黄金会员", 2_400.0),
            ("Game card", 300.0)]
SVG = "{http://www.w3.org/2000/svg}"


def draw_all(style: charts.ChartStyle | None = None) -> list[charts.Chart]:
    return [charts.daily_revenue(DAYS, title="每日收入", unit="CNY", style=style),
            charts.daily_revenue(DAYS * 3, title="90 days", style=style),
            charts.funnel(FUNNEL, title="转化漏斗", style=style),
            charts.top_products(PRODUCTS, title="热销商品", unit="CNY", style=style)]


def glyph_warnings(caught: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in caught if "missing from font" in str(w.message)]


def test_each_chart_is_a_valid_png_and_svg_of_a_readable_size() -> None:
    for chart in draw_all():
        assert chart.png.startswith(b"\x89PNG\r\n\x1a\n")
        with Image.open(io.BytesIO(chart.png)) as img:
            assert (img.format, img.size) == ("PNG", (800, 450))
            img.load()
            colours = {c for _, c in img.convert("RGB").getcolors(maxcolors=1 << 20) or []}
        assert (0x3B, 0x7D, 0xD8) in colours  # the bars (or the line) were drawn, not only the frame
        assert len(colours) > 20  # and text with anti-aliased edges
        root = ET.fromstring(chart.svg.encode())
        assert root.tag == f"{SVG}svg"
        assert root.get("width", "").startswith("576") and root.get("height", "").startswith("324")  # 8 x 4.5 in
        assert root.findall(f".//{SVG}path")


def test_chinese_product_names_have_every_glyph() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        draw_all()
    assert glyph_warnings(caught) == []


def test_without_the_cjk_font_the_same_charts_would_show_boxes() -> None:
    """The check above can fail: drawn with DejaVu Sans alone (no CJK glyphs), matplotlib reports each missing
    glyph — as an error under this suite's filterwarnings."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        charts.top_products(PRODUCTS, title="热销商品", style=charts.ChartStyle("DejaVu Sans"))
    missing = glyph_warnings(caught)
    assert any("CJK UNIFIED IDEOGRAPH-5145" in m and "DejaVu Sans" in m for m in missing), missing  # 充
    with pytest.raises(UserWarning, match=r"Glyph \d+ .* missing from font"):
        charts.funnel(FUNNEL, title="漏斗", style=charts.ChartStyle("DejaVu Sans"))


def test_a_missing_cjk_font_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(charts, "CJK_FAMILY", "No Such CJK Font")
    monkeypatch.setattr(charts, "CJK_FILES", (Path("/nonexistent/font.ttc"),))
    charts.default_style.cache_clear()
    try:
        with pytest.raises(charts.ChartFontMissing, match="fonts-noto-cjk"):
            charts.top_products(PRODUCTS, title="热销商品")
    finally:
        charts.default_style.cache_clear()


def test_a_chart_takes_well_under_a_second() -> None:
    draw_all()  # the first chart of a process loads the font
    for draw in (lambda: charts.daily_revenue(DAYS, title="每日收入", unit="CNY"),
                 lambda: charts.funnel(FUNNEL, title="转化漏斗"),
                 lambda: charts.top_products(PRODUCTS, title="热销商品")):
        start = time.process_time()  # CPU time: other test workers share the cores
        draw()
        assert time.process_time() - start < 1.0


def _loaded_on_import(tree: ast.Module) -> list[ast.stmt]:
    """The statements that run when a module is imported: its top level, without `if TYPE_CHECKING:` blocks
    (a function's own imports run only when it is called)."""
    return [node for node in tree.body
            if not (isinstance(node, ast.If) and ast.unparse(node.test).endswith("TYPE_CHECKING"))]


def test_only_report_code_imports_matplotlib() -> None:
    """The chat's flows never load matplotlib (most of a second to import); only drawing a report does. Importing
    handlers/reports.py (and handlers/admin.py, which routes /report there) loads it neither: the charts module is
    imported on the first report (a function-level import)."""
    handlers_dir = ROOT / "handlers"
    imports: dict[str, set[str]] = {}
    for path in handlers_dir.glob("*.py"):
        names: set[str] = set()
        for node in _loaded_on_import(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                base = node.module if node.level == 0 else f"handlers.{node.module}"
                names |= {base} | {f"{base}.{a.name}" for a in node.names}
            elif isinstance(node, ast.Import):
                names |= {a.name for a in node.names}
        imports[f"handlers.{path.stem}"] = names
    drawing = {"handlers.charts"}
    while grown := {m for m, names in imports.items() if m not in drawing and names & drawing}:
        drawing |= grown
    assert all(not names & {"matplotlib"} and not any(n.startswith("matplotlib") for n in names)
               for m, names in imports.items() if m not in drawing)
    others = sorted(set(imports) - drawing - {"handlers.__init__"})
    assert {"handlers.customer", "handlers.catalog", "handlers.orders", "handlers.router", "handlers.reports",
            "handlers.admin"} <= set(others)
    probe = f"import sys\nfor m in {others!r}: __import__(m)\nprint('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60,
                         check=True)
    assert out.stdout.strip() == "False", (others, out.stderr)
