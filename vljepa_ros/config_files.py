"""YAML config files read with errors that name the file (issue 11, fault 12):
a missing file, bad YAML, a key that means nothing, a value of the wrong type.
Used by the data generator (config/sim_*.yaml) and vljepa-train
(config/train_*.yaml); the ROS parameter files are read by ros/launch_support."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    """A config file is unusable; the message names the file and what is wrong."""


def read_yaml(path: str | Path) -> dict:
    """The top-level mapping of a YAML file ({} for an empty file)."""
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as e:
        raise ConfigError(f"{path}: cannot read it ({e.strerror})") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping (key: value), not {type(data).__name__}")
    return data


def check_keys(path, mapping: dict, allowed, where: str = "") -> None:
    """ConfigError naming the file and the keys of ``mapping`` not in ``allowed``
    (a misspelt key is an error, not silently the default)."""
    unknown = sorted(set(map(str, mapping)) - set(allowed))
    if unknown:
        raise ConfigError(f"{path}: unknown key{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}"
                          f"{f' under {where!r}' if where else ''} (known: {', '.join(sorted(allowed))})")


def dataclass_from(cls, path, mapping: dict, where: str = ""):
    """``cls(**mapping)`` for a dataclass whose defaults fix the field types:
    unknown keys, values of another type (an integer is fine for a float) and
    values the class refuses are ConfigErrors naming the file and the key."""
    check_fields(cls, path, mapping, where)
    try:
        return cls(**mapping)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{path}: {e}") from None


def check_fields(cls, path, mapping: dict, where: str = "") -> None:
    """The keys of ``mapping`` are fields of the dataclass ``cls`` and each value
    is of its default's kind; else ConfigError naming the file and the key."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    check_keys(path, mapping, fields, where)
    for key, value in mapping.items():
        f = fields[key]
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
        if default is not None and value is not None and not _same_kind(default, value):
            raise ConfigError(f"{path}: {where + '.' if where else ''}{key}: {value!r} is not "
                              f"{_kind(default)} like its default {default!r}")


def _same_kind(default: Any, value: Any) -> bool:
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(default, bool) and isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float))
    if isinstance(default, (list, tuple)):
        return isinstance(value, (list, tuple))
    return isinstance(value, type(default))


def _kind(default: Any) -> str:
    return {bool: "true/false", int: "an integer", float: "a number", str: "a string", dict: "a mapping",
            list: "a list", tuple: "a list"}.get(type(default), type(default).__name__)
