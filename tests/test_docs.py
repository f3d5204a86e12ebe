"""The docs a reader follows: the configuration reference says what the settings model says, and links lead
somewhere."""
from __future__ import annotations

import importlib.util
import re
from pathlib import Path

from core.risk import RULE_KEYS

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def _reference_tool():
    spec = importlib.util.spec_from_file_location("config_reference", ROOT / "tools" / "config_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_configuration_reference_is_what_the_settings_model_generates():
    # given the settings model as it is now
    tool = _reference_tool()
    # when the reference is generated in memory
    generated = tool.render()
    # then the committed file is exactly that, so a reader never meets a key, default or type the store lacks
    committed = (DOCS / "configuration.md").read_text(encoding="utf-8")
    assert committed == generated, "docs/configuration.md is stale: run `make docs` (tools/config_reference.py " \
                                   "--write) and commit the result"


def test_every_setting_has_a_description_and_every_section_says_what_it_is_for():
    tool = _reference_tool()
    undocumented = [f"{path}.{name}" if path else name for path, name, field in tool.all_fields()
                    if not (field.description or "").strip()]
    assert not undocumented, ("settings without Field(description=...) in config/settings/: "
                              + ", ".join(undocumented))
    bare = [path or "Settings" for path, model in tool.walk() if not (model.__doc__ or "").strip()]
    assert not bare, "settings models without a class docstring: " + ", ".join(bare)


def test_the_reference_names_every_key_with_its_default():
    # given a setting with a known default and a required one
    text = (DOCS / "configuration.md").read_text(encoding="utf-8")
    # then both appear as rows a reader can find by their dotted key
    assert "| `store.hold_minutes` | integer 1–1440 | `15` | how long stock is held for an unpaid order |" in text
    assert "| `catalog[].price` | integer ≥ 0 | **required** |" in text
    assert "| `suppliers.<name>.answer.ok` | list of string | `['0']` |" in text


def test_every_product_rule_is_in_the_rules_table():
    # given the rule keys core/risk/rules.py accepts under catalog[].rules (not a pydantic model, so not generated)
    text = (DOCS / "rules-and-risk.md").read_text(encoding="utf-8")
    table = text.split("## Product rules", 1)[1].split("\n## ", 1)[0]
    first_cells = [line.split("|")[1] for line in table.splitlines() if line.startswith("| `")]
    documented = {key for cell in first_cells for key in re.findall(r"`([a-z_]+)", cell)}
    # then each has a row in docs/rules-and-risk.md
    missing = [key for key in RULE_KEYS if key not in documented]
    assert not missing, "rules missing from docs/rules-and-risk.md 'Product rules': " + ", ".join(missing)


# --------------------------------------------------------------------------- links


def _github_anchors(markdown: str) -> set[str]:
    """The anchors GitHub gives a file's headings: lower case, punctuation dropped, spaces as '-', repeats -1, -2."""
    anchors: set[str] = set()
    seen: dict[str, int] = {}
    for heading in re.findall(r"^#{1,6} +(.+?) *#*$", _without_fences(markdown), flags=re.M):
        text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading: its text
        slug = re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        anchors.add(slug if n == 0 else f"{slug}-{n}")
    for explicit in re.findall(r'<a (?:id|name)="([^"]+)"', markdown):
        anchors.add(explicit)
    return anchors


def _without_fences(markdown: str) -> str:
    return re.sub(r"^```.*?^```", "", markdown, flags=re.M | re.S)


def _links(markdown: str) -> list[str]:
    text = _without_fences(markdown)
    text = re.sub(r"`[^`\n]*`", "x", text)  # code spans are not links (but may be a link's text)
    return re.findall(r"\]\(([^)\s]+)\)", text)


def test_links_between_the_docs_lead_to_files_and_headings_that_exist():
    pages = [ROOT / "README.md", *sorted(DOCS.glob("*.md")), ROOT / "examples" / "README.md",
             ROOT / "bench" / "README.md"]
    broken = []
    for page in pages:
        for target in _links(page.read_text(encoding="utf-8")):
            if re.match(r"^[a-z]+:", target):  # https:, mailto:
                continue
            path, _, anchor = target.partition("#")
            file = (page.parent / path).resolve() if path else page
            where = f"{page.relative_to(ROOT)} -> {target}"
            if not file.exists():
                broken.append(f"{where} (no such file)")
            elif anchor and file.suffix == ".md" and anchor not in _github_anchors(file.read_text(encoding="utf-8")):
                broken.append(f"{where} (no such heading)")
    assert not broken, "broken links:\n" + "\n".join(broken)
