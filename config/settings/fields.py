"""What every settings section is built from: the one error the loader raises (ConfigError, every problem named
by its dotted key), `fail` for a validator to report problems at exact keys, and the field types (secrets, 32-byte
keys, per-language text)."""
from __future__ import annotations

import base64
import binascii
import typing
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, SecretStr
from pydantic_core import PydanticCustomError

Loc = tuple[str | int, ...]


# --------------------------------------------------------------------------- errors


class ConfigError(Exception):
    """The settings are unusable.

    ``str(err)`` lists every problem as ``dotted.path: what is wrong``;
    ``err.errors`` holds the same as ``(path, message)`` pairs and
    ``err.source`` the settings file (or ``None``).
    """

    def __init__(self, errors: list[tuple[str, str]], source: str | None = None) -> None:
        self.errors = list(errors)
        self.source = source
        where = f" in {source}" if source else ""
        lines = "\n".join(f"  {path}: {msg}" if path else f"  {msg}" for path, msg in self.errors)
        super().__init__(f"invalid settings{where}:\n{lines}")


def format_loc(loc: Loc) -> str:
    """``('catalog', 2, 'price')`` -> ``'catalog[2].price'``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


ERRORS_TYPE = "config_errors"


def fail(*problems: tuple[Loc, str]) -> typing.NoReturn:
    """Raise one or more problems from inside a validator.

    Each problem's location is relative to the model (or field) being
    validated; ``_convert_validation_error`` (loading.py) appends it to pydantic's
    location so the final message names the exact key.
    """
    summary = "; ".join(f"{format_loc(loc)}: {msg}" if loc else msg for loc, msg in problems)
    raise PydanticCustomError(ERRORS_TYPE, "{summary}", {"summary": summary, "problems": list(problems)})


# --------------------------------------------------------------------------- field types


def num_to_str(value: Any) -> Any:
    # YAML turns `secret: 12345` into an int; a secret is still a string.
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return value


Secret = Annotated[SecretStr, BeforeValidator(num_to_str)]


def decode_key(text: str) -> bytes | None:
    text = text.strip()
    for altchars in (None, b"-_"):
        try:
            return base64.b64decode(text, altchars=altchars, validate=True)
        except (binascii.Error, ValueError):
            continue
    return None


def _check_key32(value: SecretStr) -> SecretStr:
    raw = decode_key(value.get_secret_value())
    if raw is None:
        raise ValueError("must be base64 (it does not decode)")
    if len(raw) != 32:
        raise ValueError(f"must be base64 of exactly 32 bytes (it decodes to {len(raw)} bytes)")
    return value


Key32 = Annotated[SecretStr, BeforeValidator(num_to_str), AfterValidator(_check_key32)]


def _to_localized(value: Any) -> Any:
    """A plain string becomes ``{"*": text}``; a mapping is kept (values checked by pydantic)."""
    value = num_to_str(value)
    if value is None:
        return {}
    if isinstance(value, str):
        return {"*": value}
    if isinstance(value, Mapping):
        return {(num_to_str(k)): num_to_str(v) for k, v in value.items()}
    raise ValueError("must be a string or a mapping of language code to string")


Localized = Annotated[dict[str, str], BeforeValidator(_to_localized)]
