"""Reading a settings file: YAML, `${VAR}` / `${VAR:-default}` from the environment, validation against the
Settings model, and pydantic's errors turned into ConfigError's `dotted.key: what is wrong` lines (never a
value: they may be secrets)."""
from __future__ import annotations

import difflib
import os
import re
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from config.settings.fields import ERRORS_TYPE, ConfigError, Loc, format_loc
from config.settings.model import Settings

# --------------------------------------------------------------------------- interpolation

_VAR = re.compile(
    r"\$\$\{"  # escaped literal ${
    r"|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}"
    r"|\$\{"  # anything else starting with ${ is malformed
)


def _interpolate(data: Any, env: Mapping[str, str]) -> tuple[Any, list[tuple[str, str]]]:
    problems: list[tuple[str, str]] = []

    def sub(text: str, loc: Loc) -> str:
        def repl(m: re.Match[str]) -> str:
            token = m.group(0)
            if token == "$${":
                return "${"
            name = m.group("name")
            if name is None:
                problems.append((format_loc(loc), "malformed ${...} reference (use ${NAME} or ${NAME:-default}; "
                                                  "write $${ for a literal ${)"))
                return token
            default = m.group("default")
            value = env.get(name)
            if default is not None:
                return value if value else default
            if value is None:
                problems.append((format_loc(loc),
                                 f"environment variable {name} is not set (referenced as ${{{name}}})"))
                return ""
            return value

        return _VAR.sub(repl, text)

    def walk(node: Any, loc: Loc) -> Any:
        if isinstance(node, str):
            return sub(node, loc)
        if isinstance(node, dict):
            return {k: walk(v, loc + (k,)) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v, loc + (i,)) for i, v in enumerate(node)]
        return node

    return walk(data, ()), problems


# --------------------------------------------------------------------------- validation errors


def _model_at(loc: Loc) -> type[BaseModel] | None:
    """The model class that holds the key at ``loc`` (for "did you mean" hints)."""
    cls: type[BaseModel] = Settings
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = cls.model_fields.get(part) if isinstance(part, str) else None
        if field is None:
            return None
        found = _find_model(field.annotation)
        if found is None:
            return None
        cls = found
    return cls


def _find_model(tp: Any) -> type[BaseModel] | None:
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return tp
    for arg in typing.get_args(tp):
        found = _find_model(arg)
        if found is not None:
            return found
    return None


def _clean_message(msg: str) -> str:
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            return msg[len(prefix):]
    return msg


def _convert_validation_error(exc: ValidationError) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for err in exc.errors(include_url=False, include_input=False, include_context=True):
        loc: Loc = tuple(err["loc"])
        etype = err["type"]
        if etype == ERRORS_TYPE:
            for sub_loc, msg in err["ctx"]["problems"]:
                out.append((format_loc(loc + tuple(sub_loc)), msg))
            continue
        if etype == "extra_forbidden":
            msg = "unknown key"
            model = _model_at(loc)
            if model is not None and isinstance(loc[-1], str):
                close = difflib.get_close_matches(loc[-1], list(model.model_fields), n=1)
                if close:
                    msg += f" (did you mean {close[0]!r}?)"
        elif etype == "missing":
            msg = "required key is missing"
        else:
            msg = _clean_message(err["msg"])
        out.append((format_loc(loc), msg))
    # keep order, drop repeats
    return list(dict.fromkeys(out))


# --------------------------------------------------------------------------- entry points


def _parse(data: Any, base_dir: Path, env: Mapping[str, str] | None, source: str | None) -> Settings:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError([("", "the top level must be a mapping of sections (store:, database:, ...)")], source)
    data, problems = _interpolate(data, os.environ if env is None else env)
    if problems:
        raise ConfigError(problems, source)
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        # `from None`: the pydantic error would print input values (secrets).
        raise ConfigError(_convert_validation_error(exc), source) from None
    settings._config_dir = Path(base_dir).expanduser().resolve()
    problems = settings.card_face_file_problems()
    if problems:
        raise ConfigError(problems, source)
    return settings


def parse_settings(data: dict, base_dir: Path, env: Mapping[str, str] | None = None) -> Settings:
    """Validate already-parsed settings; relative paths resolve against ``base_dir``."""
    return _parse(data, base_dir, env, None)


def load_settings(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> Settings:
    """Read, interpolate (from ``env``, default ``os.environ``) and validate a YAML settings file."""
    file = Path(path)
    source = str(file)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([("", f"settings file {source} does not exist")], source) from None
    except IsADirectoryError:
        raise ConfigError([("", f"settings path {source} is a directory, not a file")], source) from None
    except UnicodeDecodeError:
        raise ConfigError([("", f"settings file {source} is not valid UTF-8")], source) from None
    except OSError as exc:
        raise ConfigError([("", f"cannot read settings file {source}: {exc.strerror or exc}")], source) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError([("", _yaml_message(exc))], source) from None
    return _parse(data, file.parent, env, source)


def _yaml_message(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    context_mark = getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or "could not parse"
    context = getattr(exc, "context", None)
    what = f"{context}, {problem}" if context else problem
    if context_mark is not None and mark is not None and context_mark.line != mark.line:
        what += f" (the construct started at line {context_mark.line + 1})"
    if mark is not None:
        return f"YAML syntax error at line {mark.line + 1}, column {mark.column + 1}: {what}"
    return f"YAML syntax error: {what}"
