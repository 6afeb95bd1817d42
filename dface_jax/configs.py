"""Experiment configs: one ml_collections file per experiment, with command-line overrides.

A config file defines ``get_config(arg: str | None = None) -> ml_collections.ConfigDict``.
``path.py:arg`` passes ``arg`` (big_vision style, e.g. ``pretrain_synthetic.py:tiny``).
Overrides are ``--config.a.b=value`` strings; the value is parsed as the type of the field
it replaces (so a typo in a field name or a wrong type is an error, not a silent new key).
"""

from __future__ import annotations

import ast
import dataclasses
import importlib.util
import json
import os
import pathlib
from typing import Any

import ml_collections

from data_pipelines import storage
from data_pipelines.errors import InputError

CONFIG_DIR = pathlib.Path(__file__).resolve().parent.parent / "experiments" / "configs"


class ConfigError(InputError, ValueError):
    """A config file, variant or override is not what the experiment files define."""


def resolve_config_path(spec: str) -> tuple[pathlib.Path, str | None]:
    """Splits ``path.py[:arg]`` and finds the file (as given, or by name in experiments/configs)."""
    path_str, _, arg = spec.partition(":")
    path = pathlib.Path(path_str)
    if not path.exists() and (CONFIG_DIR / path.name).exists():
        path = CONFIG_DIR / path.name
    if not path.exists():
        available = sorted(p.name for p in CONFIG_DIR.glob("*.py") if p.name != "__init__.py")
        raise ConfigError(
            f"{path_str}: config file not found; expected a path to a .py file with "
            f"get_config(), or one of {available} in {CONFIG_DIR}")
    return path, (arg or None)


def load_config(spec: str, overrides: list[str] | tuple[str, ...] = ()) -> ml_collections.ConfigDict:
    """Loads ``spec`` (``path.py[:arg]``) and applies ``--config.field=value`` overrides."""
    path, arg = resolve_config_path(spec)
    module_spec = importlib.util.spec_from_file_location(f"dface_config_{path.stem}", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    if not hasattr(module, "get_config"):
        raise ConfigError(f"{path}: defines no get_config(arg=None)")
    try:
        config = module.get_config(arg) if arg is not None else module.get_config()
    except ValueError as err:  # an unknown variant
        raise ConfigError(f"{path}: {err}") from None
    return apply_overrides(config, overrides)


def _parse_value(text: str, current):
    if isinstance(current, bool):
        lowered = text.lower()
        if lowered not in ("true", "false", "1", "0"):
            raise ValueError(f"expected a boolean, got {text!r}")
        return lowered in ("true", "1")
    if isinstance(current, int) and not isinstance(current, bool):
        return int(text)
    if isinstance(current, float):
        return float(text)
    if isinstance(current, str) or current is None:
        if current is None:
            try:
                return ast.literal_eval(text)
            except (ValueError, SyntaxError):
                return text
        return text
    if isinstance(current, (tuple, list)):
        value = ast.literal_eval(text)
        if not isinstance(value, (tuple, list)):
            value = (value,)
        return type(current)(value)
    return ast.literal_eval(text)


def apply_overrides(config: ml_collections.ConfigDict, overrides) -> ml_collections.ConfigDict:
    """Applies ``--config.a.b=value`` (or ``a.b=value``) strings to ``config`` in place."""
    for item in overrides:
        text = item[2:] if item.startswith("--") else item
        if not text.startswith("config.") or "=" not in text:
            raise ConfigError(f"override {item!r} is not of the form --config.field=value")
        key, _, raw = text[len("config."):].partition("=")
        parent = config
        *parents, leaf = key.split(".")
        for name in parents:
            if name not in parent:
                raise ConfigError(f"override {item!r}: config has no field {name!r}")
            parent = parent[name]
        if leaf not in parent:
            raise ConfigError(f"override {item!r}: config has no field {key!r}; "
                              f"fields here are {sorted(parent.keys())}")
        try:
            value = _parse_value(raw, parent[leaf])
        except (ValueError, SyntaxError) as err:
            raise ConfigError(f"override {item!r}: {err}") from None
        parent[leaf] = value
    return config


def save_config(config: ml_collections.ConfigDict, path: str | os.PathLike) -> None:
    """Writes the config as JSON, so a workdir can be loaded without the config file.
    Atomically (``storage.write_text_atomic``): a job killed mid-write leaves the previous
    config whole; ``path`` may be local or ``gs://``."""
    storage.write_text_atomic(path, config.to_json_best_effort(indent=2, sort_keys=True))


def read_config(path: str | os.PathLike) -> ml_collections.ConfigDict:
    """Reads a config written by :func:`save_config` (lists come back as tuples)."""
    def tuples(obj):
        if isinstance(obj, dict):
            return {k: tuples(v) for k, v in obj.items()}
        if isinstance(obj, list):
            return tuple(tuples(v) for v in obj)
        return obj
    return ml_collections.ConfigDict(tuples(json.loads(storage.as_path(path).read_text())))


def section(cls, *, exclude: tuple[str, ...] = (), **changes: Any) -> ml_collections.ConfigDict:
    """A config section with every field of the dataclass ``cls`` at its default (but the
    ``exclude`` d ones, which the code fills in), then ``changes`` (a name ``cls`` lacks is an
    error naming it).

    Config files build their sections with it, so each default lives in one place (the
    dataclass) and a file lists only what its experiment changes, while every field can
    still be overridden on the command line."""
    fields = {field.name: field for field in dataclasses.fields(cls) if field.name not in exclude}
    unknown = sorted(set(changes) - set(fields))
    if unknown:
        raise KeyError(f"{cls.__name__} has no field(s) {unknown}; fields are {sorted(fields)}")
    values = {name: field.default for name, field in fields.items()
              if field.default is not dataclasses.MISSING}
    return ml_collections.ConfigDict({**values, **changes})


def dataclass_from_dict(cls, values) -> Any:
    """Builds the frozen dataclass ``cls`` from a (config sub-)dict; unknown keys are an error
    naming them, so a misspelt config field never silently falls back to a default."""
    fields = {field.name for field in dataclasses.fields(cls)}
    values = dict(values)
    unknown = sorted(set(values) - fields)
    if unknown:
        raise ConfigError(f"{cls.__name__} has no field(s) {unknown}; fields are {sorted(fields)}")
    try:
        return cls(**values)
    except ValueError as err:  # a value its __post_init__ refuses
        raise ConfigError(f"{cls.__name__}: {err}") from None
