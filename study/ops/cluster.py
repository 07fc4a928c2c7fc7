"""Offline check of a Ray cluster-launcher config: every error at once, before ``ray up`` spends money.

    python -m study.cluster check infra/cluster.yaml
    python -m study.cluster check infra/mlflow.yaml infra/kuberay.yaml

Three layers, all offline: the JSON schema Ray ships (``ray/autoscaler/ray-schema.json``, every violation
listed), cross-field rules the schema cannot express (head type among the node types, min/max workers),
and Ray's own ``prepare_config`` + ``validate_config`` (private API; Ray is pinned to 2.60).
"""
from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path

from study.config.reading import ConfigError, read_yaml
from study.ops.tracking_check import kubernetes_warnings, launcher_warnings


def _schema() -> dict:
    import ray.autoscaler

    return json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())


def _where(path) -> str:
    return ".".join(str(p) for p in path) or "(top level)"


def schema_errors(config: dict) -> list[str]:
    from jsonschema import Draft7Validator

    validator = Draft7Validator(_schema())
    return [f"{_where(e.absolute_path)}: {e.message}"
            for e in sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path)))]


def cross_field_errors(config: dict) -> list[str]:
    errors = []
    types = config.get("available_node_types")
    if not isinstance(types, dict) or not types:
        return ["available_node_types: at least one node type is required"]
    head = config.get("head_node_type")
    if head is None:
        errors.append("head_node_type: required when available_node_types is set")
    elif head not in types:
        errors.append(f"head_node_type: {head!r} is not one of available_node_types {sorted(types)}")
    max_workers = config.get("max_workers")
    for name, spec in types.items():
        if not isinstance(spec, dict):
            continue
        low, high = spec.get("min_workers", 0), spec.get("max_workers")
        if isinstance(low, int) and isinstance(high, int) and low > high:
            errors.append(f"available_node_types.{name}: min_workers {low} > max_workers {high}")
    minimum = sum(s.get("min_workers", 0) for s in types.values() if isinstance(s, dict)
                  and isinstance(s.get("min_workers", 0), int))
    if isinstance(max_workers, int) and minimum > max_workers:
        errors.append(f"max_workers: {max_workers} is below the sum of the node types' min_workers ({minimum})")
    return errors


def ray_errors(config: dict) -> list[str]:
    from ray.autoscaler._private.util import prepare_config, validate_config

    try:
        validate_config(prepare_config(copy.deepcopy(config)))
    except Exception as error:  # Ray raises ValueError, RuntimeError or jsonschema errors
        return [f"ray validate_config: {getattr(error, 'message', None) or error}"]
    return []


def check_cluster_config(path: str | Path) -> list[str]:
    """All problems found in the cluster YAML at ``path`` (empty when it is valid)."""
    try:
        config = read_yaml(path)  # the study's bounded loader: duplicate keys and alias bombs are errors too
    except ConfigError as error:
        return [str(error)]
    return cluster_errors(config)


def cluster_errors(config: dict) -> list[str]:
    errors = schema_errors(config) + cross_field_errors(config)
    if not errors:  # Ray's preparation assumes a schema-valid config
        errors += ray_errors(config)
    return list(dict.fromkeys(errors))


def check(paths: list[Path]) -> tuple[list[str], list[str]]:
    """(errors, warnings) of cluster-launcher configs and Kubernetes manifests, the manifests checked together
    (so a RayJob's tracking URI is matched against the Service another file defines)."""
    errors, warnings, manifests = [], [], []
    for path in paths:
        try:
            config = read_yaml(path)
        except ConfigError as error:
            errors.append(str(error))
            continue
        if "apiVersion" in config:  # a Kubernetes manifest (a single object or a List)
            manifests.append(config)
        else:
            errors += [f"{path}: {e}" for e in cluster_errors(config)]
            warnings += [f"{path}: {w}" for w in launcher_warnings(config)]
    return errors, warnings + kubernetes_warnings(manifests)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Offline checks of Ray cluster-launcher configs and Kubernetes "
                                                 "manifests.")
    sub = parser.add_subparsers(dest="command", required=True)
    command = sub.add_parser("check", help="validate cluster YAMLs / manifests and list every error and warning")
    command.add_argument("configs", type=Path, nargs="+")
    args = parser.parse_args(argv)
    errors, warnings = check(args.configs)
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    shown = " ".join(map(str, args.configs))
    if errors:
        print(f"{shown}: {len(errors)} error(s)", file=sys.stderr)
        for error in errors:
            print(f"  - {error}", file=sys.stderr)
        return 1
    print(f"{shown}: OK, {len(warnings)} warning(s) (cluster configs: Ray's schema, cross-field rules and its own "
          "validation; all: where tracking keeps the study and whether it asks for a password)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
