"""Reading YAML configurations: safe_load, ``--set key=value`` overrides, and errors that name the field."""
from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ValidationError


class ConfigError(ValueError):
    """A configuration mistake; the message names the field path and what was expected."""


def read_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such file")
    try:
        loaded = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML ({error})") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys, got {type(loaded).__name__}")
    return loaded


def apply_override(tree: dict, assignment: str) -> None:
    """Apply ``a.b.c=value`` (value parsed as YAML) to a nested dict, creating sections as needed."""
    if "=" not in assignment:
        raise ConfigError(f"--set {assignment!r}: expected the form key.path=value")
    key, raw = assignment.split("=", 1)
    parts = key.strip().split(".")
    if not all(parts):
        raise ConfigError(f"--set {assignment!r}: empty part in the key path {key!r}")
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError as error:
        raise ConfigError(f"--set {key}: value {raw!r} is not valid YAML ({error})") from None
    node = tree
    for depth, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"--set {key}: {'.'.join(parts[:depth + 1])} is a value, not a section")
        node = child
    node[parts[-1]] = value


def describe_validation_error(error: ValidationError, prefix: str = "") -> str:
    """One line per problem: ``field.path: message (got value)``."""
    lines = []
    for problem in error.errors():
        path = ".".join(str(p) for p in problem["loc"] if p != "__root__")
        path = f"{prefix}{path}" if path else (prefix.rstrip(".") or "(top level)")
        got = problem.get("input")
        shown = "" if problem["type"] in ("missing",) or isinstance(got, dict) else f" (got {got!r})"
        lines.append(f"{path}: {problem['msg']}{shown}")
    return "\n".join(lines)


def validate(model: type[BaseModel], tree: dict, source: str = "", prefix: str = "") -> BaseModel:
    try:
        return model.model_validate(tree)
    except ValidationError as error:
        where = f"{source}: " if source else ""
        raise ConfigError(f"{where}invalid configuration\n{describe_validation_error(error, prefix)}") from None


def load_config(model: type[BaseModel], path: str | Path, overrides: list[str] = ()) -> BaseModel:
    tree = read_yaml(path)
    for assignment in overrides:
        apply_override(tree, assignment)
    return validate(model, tree, str(path))
