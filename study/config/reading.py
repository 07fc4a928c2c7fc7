"""Reading YAML configurations: one loading path for trial and sweep files, ``--set key=value`` overrides, and
errors that name the field.

The loader is ``yaml.SafeLoader`` made total and bounded: files are capped in size and must be UTF-8,
duplicate keys are errors (PyYAML silently keeps the last), aliases may not expand a document past
:data:`MAX_EXPANDED_NODES` nodes (the "billion laughs" file is tiny but expands to 10⁹ nodes, which hangs
anything that walks it), and floats are read as YAML 1.2 does (``1e-3`` is a number, not a string).
Every message is bounded too: a value is shown by a short excerpt, never in full.
"""
from __future__ import annotations

import copy
import difflib
import re
import typing
from pathlib import Path

import yaml
from pydantic import BaseModel, ValidationError

MAX_FILE_BYTES = 1 << 20  # a sweep file is a page of text; anything larger is a mistake
MAX_EXPANDED_NODES = 100_000  # the largest tree a config may denote once aliases are expanded
MAX_SHOWN_CHARS = 120  # longest excerpt of a value in an error message
MAX_MESSAGE_LINES = 40


class ConfigError(ValueError):
    """A configuration mistake; the message names the field path and what was expected."""


def excerpt(value, limit: int = MAX_SHOWN_CHARS) -> str:
    """``repr(value)``, cut to ``limit`` characters. Bounded in time too: containers are summarised before
    repr walks them, so a value that aliases expand to 10⁹ nodes is not printed."""
    if isinstance(value, (dict, list, tuple)):
        return f"<{type(value).__name__} of {len(value)} items>"
    shown = repr(value)
    return shown if len(shown) <= limit else shown[: limit - 3] + "..."


def bounded(message: str) -> str:
    lines = message.splitlines()
    if len(lines) > MAX_MESSAGE_LINES:
        lines = lines[:MAX_MESSAGE_LINES] + [f"... and {len(lines) - MAX_MESSAGE_LINES} more problems"]
    return "\n".join(line if len(line) <= 400 else line[:397] + "..." for line in lines)


# --- the loader ----------------------------------------------------------------------------------------------
class StudyLoader(yaml.SafeLoader):
    """SafeLoader with duplicate keys rejected and YAML 1.2 floats (see the module docstring)."""

    def construct_mapping(self, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, (str, int, float, bool)) and key is not None:
                raise yaml.constructor.ConstructorError(None, None, "a mapping key must be a plain value",
                                                        key_node.start_mark)
            if key in seen:
                raise ConfigError(f"line {key_node.start_mark.line + 1}: duplicate key {excerpt(key)} (first at "
                                  f"line {seen[key] + 1}); each key may appear once")
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


StudyLoader.add_implicit_resolver(  # YAML 1.2 floats such as 1e-3 and 5E+2, which YAML 1.1 reads as strings
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"))


def expanded_size(root: yaml.Node, limit: int = MAX_EXPANDED_NODES) -> int:
    """Number of nodes the document denotes with every alias expanded, computed on the shared graph (so in
    time proportional to the file, however far it expands). Raises ConfigError past ``limit`` or on a cycle."""
    sizes: dict[int, int] = {}
    in_progress: set[int] = set()

    def size(node: yaml.Node) -> int:
        if id(node) in sizes:
            return sizes[id(node)]
        if id(node) in in_progress:
            raise ConfigError(f"line {node.start_mark.line + 1}: an alias refers to the node that contains it")
        in_progress.add(id(node))
        if isinstance(node, yaml.MappingNode):
            total = 1 + sum(size(k) + size(v) for k, v in node.value)
        elif isinstance(node, yaml.SequenceNode):
            total = 1 + sum(size(item) for item in node.value)
        else:
            total = 1
        in_progress.discard(id(node))
        if total > limit:
            raise ConfigError(f"aliases expand the document past {limit:,} values (at line "
                              f"{node.start_mark.line + 1}); write the values out or use fewer aliases")
        sizes[id(node)] = total
        return total

    return size(root)


def parse_yaml(text: str):
    """One YAML document through :class:`StudyLoader`, its expansion checked before it is built."""
    loader = StudyLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        expanded_size(node)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def read_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such file")
    if path.stat().st_size > MAX_FILE_BYTES:
        raise ConfigError(f"{path}: {path.stat().st_size:,} bytes; a configuration is at most {MAX_FILE_BYTES:,}")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path}: not a UTF-8 text file (byte {error.start}); is this the YAML file?") from None
    loaded = parse_yaml_said(text, str(path), "not valid YAML")
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys, got {type(loaded).__name__}")
    return loaded


# --- dotted paths: one setter for --set and for a sweep's space ---------------------------------------------
def deep_merge(tree: dict, update: dict) -> dict:
    merged = copy.deepcopy(tree)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def set_path(tree: dict, dotted: str, value, where: str) -> None:
    """tree[a][b][c] = value for ``a.b.c``, creating missing sections.

    Merge semantics (the same for ``--set`` and a sweep's ``space``): a mapping assigned to a key that holds a
    mapping is merged into it, recursively, so ``prior={name: wavenet}`` keeps the other prior settings; any
    other value replaces what was there. ``where`` names the setting in errors (e.g. ``--set a.b``).
    """
    parts = dotted.split(".")
    if not all(part.strip() for part in parts):
        raise ConfigError(f"{where}: empty part in the key path {dotted!r}")
    node = tree
    for depth, part in enumerate(parts[:-1]):
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{where}: {'.'.join(parts[:depth + 1])} is a value, not a section")
    leaf = parts[-1]
    if isinstance(value, dict) and isinstance(node.get(leaf), dict):
        node[leaf] = deep_merge(node[leaf], value)
    else:
        node[leaf] = copy.deepcopy(value)


def apply_override(tree: dict, assignment: str) -> None:
    """Apply ``a.b.c=value`` (value parsed as YAML, by the same loader as files) to a nested dict."""
    if "=" not in assignment:
        raise ConfigError(f"--set {excerpt(assignment)}: expected the form key.path=value")
    key, raw = assignment.split("=", 1)
    key = key.strip()
    value = parse_yaml_said(raw, f"--set {key}", f"value {excerpt(raw)} is not valid YAML")
    set_path(tree, key, value, where=f"--set {key}")


def parse_yaml_said(text: str, where: str, invalid: str):
    """:func:`parse_yaml`, every failure one ConfigError line that starts with ``where``."""
    try:
        return parse_yaml(text)
    except ConfigError as error:
        raise ConfigError(f"{where}: {error}") from None
    except yaml.YAMLError as error:
        raise ConfigError(bounded(f"{where}: {invalid} ({error})")) from None
    except RecursionError:
        raise ConfigError(f"{where}: nested too deeply") from None


def load_tree(path: str | Path, overrides: list[str] = ()) -> dict:
    """The YAML file with the ``--set`` overrides applied: what trial and sweep configs are validated from."""
    tree = read_yaml(path)
    for assignment in overrides:
        apply_override(tree, assignment)
    return tree


# --- validation ---------------------------------------------------------------------------------------------
def fields_at(model: type[BaseModel] | None, loc) -> list[str]:
    """The setting names of the config section that ``loc`` (a field path) lies in; [] when unknown."""
    for part in loc:
        field = model.model_fields.get(str(part)) if model is not None else None
        if field is None:
            return []
        kinds = [field.annotation, *typing.get_args(field.annotation)]
        model = next((kind for kind in kinds if isinstance(kind, type) and issubclass(kind, BaseModel)), None)
    return list(model.model_fields) if model is not None else []


def did_you_mean(word: str, options) -> str:
    """``; did you mean 'training'?`` for a misspelt name among ``options``, or nothing."""
    close = difflib.get_close_matches(str(word), list(options), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def describe_validation_error(error: ValidationError, prefix: str = "", model: type[BaseModel] | None = None) -> str:
    """One line per problem: ``field.path: message (got value)``, each bounded in length; an unknown setting
    close to a known one of ``model`` gets a suggestion."""
    lines = []
    for problem in error.errors():
        path = ".".join(str(p) for p in problem["loc"] if p != "__root__")
        path = f"{prefix}{path}" if path else (prefix.rstrip(".") or "(top level)")
        got = problem.get("input")
        shown = "" if problem["type"] in ("missing",) or isinstance(got, dict) else f" (got {excerpt(got)})"
        message = problem["msg"].removeprefix("Value error, ")
        if problem["type"] == "extra_forbidden":
            message += did_you_mean(problem["loc"][-1], fields_at(model, problem["loc"][:-1]))
        lines.append(f"{path}: {message}{shown}")
    return bounded("\n".join(lines))


def validate(model: type[BaseModel], tree: dict, source: str = "", prefix: str = "") -> BaseModel:
    try:
        return model.model_validate(tree)
    except ValidationError as error:
        where = f"{source}: " if source else ""
        raise ConfigError(f"{where}invalid configuration\n{describe_validation_error(error, prefix, model)}") from None


def load_config(model: type[BaseModel], path: str | Path, overrides: list[str] = ()) -> BaseModel:
    return validate(model, load_tree(path, overrides), str(path))
