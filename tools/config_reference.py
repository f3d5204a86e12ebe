"""Write docs/configuration.md from the settings model, so the reference cannot drift from the code.

    python tools/config_reference.py            # print the reference
    python tools/config_reference.py --write    # write docs/configuration.md (what `make docs` runs)
    python tools/config_reference.py --check    # exit 1 when docs/configuration.md is not what the model says

Everything comes from the pydantic models: a section per model (its class docstring), a row per field (the
full dotted key, its type and constraints, its default, its `Field(description=...)`). tests/test_docs.py
regenerates the text in memory and fails when the committed file differs, or when a field has no description.
"""
from __future__ import annotations

import argparse
import inspect
import re
import sys
import typing
from pathlib import Path
from typing import Any, Literal

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere: the store's packages are next to tools/
    sys.path.insert(0, str(ROOT))

import annotated_types as at  # noqa: E402  (pydantic's own dependency: the constraint objects)
import yaml  # noqa: E402
from pydantic import BaseModel, BeforeValidator, SecretStr  # noqa: E402
from pydantic.fields import FieldInfo  # noqa: E402
from pydantic_core import PydanticUndefined  # noqa: E402

from config.settings import Settings  # noqa: E402
from config.settings import fields as settings_module  # noqa: E402  (the field types: per-language text)

OUTPUT = ROOT / "docs" / "configuration.md"
REGENERATE = "make docs"  # what a reader runs (tools/config_reference.py --write)

HEADER = """\
# Configuration reference

<!-- Generated from the settings model (config/settings/) by tools/config_reference.py. Do not edit: change the
     descriptions there and run `make docs`. tests/test_docs.py fails when this file and the model differ. -->
"""


# --------------------------------------------------------------------------- model walk


def _strip_annotated(tp: Any) -> tuple[Any, list[Any]]:
    """``Annotated[X, m1, m2]`` -> ``(X, [m1, m2])``; anything else -> ``(tp, [])``."""
    if typing.get_origin(tp) is typing.Annotated:
        base, *meta = typing.get_args(tp)
        return base, list(meta)
    return tp, []


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _optional_inner(tp: Any) -> Any | None:
    """``X | None`` -> ``X``; anything else -> ``None``."""
    if typing.get_origin(tp) in (typing.Union, __import__("types").UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return args[0]
    return None


def _nested_model(tp: Any) -> tuple[type[BaseModel], str] | None:
    """The model a field holds and the key suffix it adds: ``("", X)``, ``list[X]`` -> ``"[]"``,
    ``dict[str, X]`` -> ``".<name>"``; ``None`` when the field holds no model."""
    tp, _ = _strip_annotated(tp)
    inner = _optional_inner(tp)
    if inner is not None:
        tp = inner
    if _is_model(tp):
        return tp, ""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is list and args and _is_model(_strip_annotated(args[0])[0]):
        return _strip_annotated(args[0])[0], "[]"
    if origin is dict and len(args) == 2 and _is_model(_strip_annotated(args[1])[0]):
        return _strip_annotated(args[1])[0], ".<name>"
    return None


def walk(model: type[BaseModel] = Settings, prefix: str = "",
         seen: tuple[type[BaseModel], ...] = ()) -> list[tuple[str, type[BaseModel]]]:
    """Every (section path, model) in document order: a model, then the models its fields hold, depth first.
    A model already open above (a menu button's sub-buttons) is not opened again."""
    out = [(prefix, model)]
    for name, field in model.model_fields.items():
        nested = _nested_model(field.annotation)
        if nested is None or nested[0] in seen + (model,):
            continue
        child, suffix = nested
        out += walk(child, f"{prefix}.{name}{suffix}" if prefix else f"{name}{suffix}", seen + (model,))
    return out


def all_fields() -> list[tuple[str, str, FieldInfo]]:
    """(section path, field name, field) of every settings field (the test checks each has a description)."""
    return [(path, name, field) for path, model in walk() for name, field in model.model_fields.items()]


# --------------------------------------------------------------------------- rendering


def slug(heading: str) -> str:
    """The anchor GitHub (and most Markdown renderers) give a heading: lower case, punctuation dropped."""
    return re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _yaml(value: Any) -> str:
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json", exclude_defaults=True)
    elif isinstance(value, list):
        value = [v.model_dump(mode="json", exclude_defaults=True) if isinstance(v, BaseModel) else v for v in value]
    elif isinstance(value, SecretStr):
        value = value.get_secret_value()
    if value == "":
        return '""'
    text = yaml.safe_dump(value, default_flow_style=True, allow_unicode=True, width=10_000, sort_keys=False)
    return text.strip().removesuffix("...").strip()


def _num(x: Any) -> str:
    return f"{x:,}" if abs(x) >= 100_000 else f"{x:g}" if isinstance(x, float) else str(x)


def _range(meta: list[Any]) -> str:
    ge = next((m.ge for m in meta if isinstance(m, at.Ge)), None)
    gt = next((m.gt for m in meta if isinstance(m, at.Gt)), None)
    le = next((m.le for m in meta if isinstance(m, at.Le)), None)
    if ge is not None and le is not None:
        return f"{_num(ge)}–{_num(le)}"
    parts = [f"{sign} {_num(v)}" for sign, v in (("≥", ge), (">", gt), ("≤", le)) if v is not None]
    return ", ".join(parts)


def _lengths(meta: list[Any], unit: str) -> str:
    lo = next((m.min_length for m in meta if isinstance(m, at.MinLen)), None)
    hi = next((m.max_length for m in meta if isinstance(m, at.MaxLen)), None)
    if lo and hi:
        return f"{lo}–{hi} {unit}".strip()
    if hi:
        return f"at most {hi} {unit}".strip()
    if lo:
        return f"at least {lo} {unit}".strip()
    return ""


_NAMES = {str: "string", int: "integer", float: "number", bool: "boolean", SecretStr: "secret string"}


def type_text(tp: Any, meta: list[Any] = (), links: dict[type, str] | None = None) -> str:
    """A reader's name for an annotation with its constraints: ``integer, 1–1440``, ``list of string``, ..."""
    links = links or {}
    tp, more = _strip_annotated(tp)
    meta = list(meta) + more
    if any(isinstance(m, BeforeValidator) and m.func is settings_module._to_localized for m in meta):
        return "text or {language: text}"
    inner = _optional_inner(tp)
    if inner is not None:
        return type_text(inner, meta, links) + ", or none"
    if _is_model(tp):
        path = links.get(tp)
        return f"section [`{path}`](#{slug(f'`{path}`')})" if path else "section"
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Literal:
        return " | ".join(f"`{_yaml(a)}`" for a in args)
    if origin is list:
        text = f"list of {type_text(args[0], (), links)}" if args else "list"
        extra = _lengths(meta, "")
        return f"{text} ({extra})" if extra else text
    if origin is dict:
        if args and args[1] is not Any:
            return f"mapping of {type_text(args[0], (), links)} to {type_text(args[1], (), links)}"
        return "mapping"
    text = _NAMES.get(tp, getattr(tp, "__name__", str(tp)))
    extra = [_range(meta)]
    if tp is str or tp is SecretStr:
        extra.append(_lengths(meta, "characters"))
    pattern = next((getattr(m, "pattern", None) for m in meta if getattr(m, "pattern", None)), None)
    if pattern:
        extra.append(f"matching `{pattern}`")
    extra = [e for e in extra if e]
    return f"{text} {', '.join(extra)}" if extra else text


def default_text(field: FieldInfo) -> str:
    if _nested_model(field.annotation) and _is_model(_strip_annotated(field.annotation)[0]):
        return "(its section)"
    if field.default_factory is not None:
        return f"`{_yaml(field.default_factory())}`"
    if field.default is PydanticUndefined:
        return "**required**"
    if field.default is None:
        return "none"
    return f"`{_yaml(field.default)}`"


def docstring(model: type[BaseModel]) -> str:
    return inspect.cleandoc(model.__doc__ or "")


def render() -> str:
    sections = walk()
    links = {}
    for path, model in sections:
        links.setdefault(model, path or None)
    out = [HEADER, docstring(Settings), ""]
    top = [p for p, _ in sections if p and p.count(".") == p.count(".<name>")]
    out.append("Sections: " + " · ".join(f"[`{p}`](#{slug(f'`{p}`')})" for p in top))
    for path, model in sections:
        if not path:
            continue
        depth = path.count(".") - path.count(".<name>") + 2
        out += ["", f"{'#' * min(depth, 4)} `{path}`", ""]
        doc = docstring(model)
        if doc:
            out += [doc, ""]
        out += ["| key | type | default | description |", "|---|---|---|---|"]
        for name, field in model.model_fields.items():
            nested = _nested_model(field.annotation)
            row_links = dict(links)
            if nested is not None and nested[0] is model:  # a model holding itself: point at this section
                row_links[model] = path
            out.append(f"| `{path}.{name}` | {_cell(type_text(field.annotation, field.metadata, row_links))} "
                       f"| {_cell(default_text(field))} | {_cell(field.description or '')} |")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--write", action="store_true", help=f"write {OUTPUT.relative_to(ROOT)}")
    what.add_argument("--check", action="store_true", help=f"exit 1 when {OUTPUT.relative_to(ROOT)} is stale")
    args = parser.parse_args(argv)
    text = render()
    if args.write:
        OUTPUT.write_text(text, encoding="utf-8")
    elif args.check:
        current = OUTPUT.read_text(encoding="utf-8") if OUTPUT.exists() else ""
        if current != text:
            print(f"{OUTPUT.relative_to(ROOT)} is stale: run `{REGENERATE}`", file=sys.stderr)
            return 1
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
