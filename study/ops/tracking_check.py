"""Offline warnings about where a cluster's tracking server keeps the study, and who can reach it.

For a Ray cluster-launcher YAML: every ``mlflow server`` its commands start must keep runs in a database
that outlives the head (not sqlite or a folder on the head's disk, which ``ray down`` deletes), must run
the basic-auth app, and must not bind to every interface. For Kubernetes manifests (infra/mlflow.yaml,
infra/kuberay.yaml): the MLflow Deployment runs basic-auth over a database whose data is on a persistent
volume claim, the Service that trials are pointed at exists, and the RayJob's pods carry credentials.
"""
from __future__ import annotations

import re
import shlex

LOCAL_STORES = ("sqlite:", "file:", "./", "/", "~")  # backend stores that live on the server's own disk
TRACKING_URI = re.compile(r"--tracking-uri[= ]+(\S+)")
CREDENTIALS = {"MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"}


def _words(command: str) -> list[str]:
    try:
        return shlex.split(command)
    except ValueError:
        return command.split()


def _option(words: list[str], name: str) -> str | None:
    for i, word in enumerate(words):
        if word == name and i + 1 < len(words):
            return words[i + 1]
        if word.startswith(name + "="):
            return word.split("=", 1)[1]
    return None


def server_arguments(command: str) -> list[str] | None:
    """The arguments after ``mlflow server`` when ``command`` starts one (not when it merely names it, as
    ``pkill -f 'mlflow server'`` does); None otherwise."""
    words = _words(command)
    for i, word in enumerate(words[:-1]):
        if (word == "mlflow" or word.endswith("/mlflow")) and words[i + 1] == "server":
            return words[i + 2:]
    return None


def server_warnings(words: list[str], where: str) -> list[str]:
    """Warnings about the arguments of one ``mlflow server``."""
    store = _option(words, "--backend-store-uri")
    warnings = []
    if store is None or store.startswith(LOCAL_STORES):
        warnings.append(f"{where}: the MLflow backend store {store or '(default ./mlruns)'} lives on the server's "
                        "own disk and dies with it (`ray down` deletes the study); use PostgreSQL outside the "
                        "cluster (infra/tracking.env.example)")
    if _option(words, "--app-name") != "basic-auth":
        warnings.append(f"{where}: the MLflow server has no authentication; add --app-name basic-auth "
                        "(README 'Tracking that outlives the cluster')")
    if _option(words, "--host") in ("0.0.0.0", "::"):
        warnings.append(f"{where}: the MLflow server listens on every interface; bind it to the private "
                        "address (or 127.0.0.1 behind a tunnel)")
    return warnings


def launcher_warnings(config: dict) -> list[str]:
    """Warnings for a Ray cluster-launcher config (its setup and start commands)."""
    warnings = []
    for section in ("initialization_commands", "setup_commands", "head_setup_commands", "head_start_ray_commands"):
        for i, command in enumerate(config.get(section) or []):
            arguments = server_arguments(command) if isinstance(command, str) else None
            if arguments is not None:
                warnings += server_warnings(arguments, f"{section}[{i}]")
    return warnings


# --- Kubernetes ----------------------------------------------------------------------------------------------
def _objects(document: dict) -> list[dict]:
    return list(document.get("items") or []) if document.get("kind") == "List" else [document]


def _pod_templates(obj: dict) -> list[tuple[str, dict]]:
    """(name, pod spec) of every pod an object creates (Deployments, StatefulSets, RayJob head and workers)."""
    spec = obj.get("spec") or {}
    name = (obj.get("metadata") or {}).get("name", "?")
    if obj.get("kind") in ("Deployment", "StatefulSet"):
        return [(name, (spec.get("template") or {}).get("spec") or {})]
    if obj.get("kind") == "RayJob":
        cluster = spec.get("rayClusterSpec") or {}
        pods = [(f"{name} head", ((cluster.get("headGroupSpec") or {}).get("template") or {}).get("spec") or {})]
        pods += [(f"{name} {group.get('groupName', '?')}", (group.get("template") or {}).get("spec") or {})
                 for group in cluster.get("workerGroupSpecs") or []]
        return pods
    return []


def _container_command(container: dict) -> str:
    return " ".join(str(part) for part in [*(container.get("command") or []), *(container.get("args") or [])])


def kubernetes_warnings(documents: list[dict]) -> list[str]:
    """Warnings for Kubernetes manifests checked together (e.g. infra/mlflow.yaml with infra/kuberay.yaml)."""
    objects = [obj for document in documents for obj in _objects(document)]
    services = {((o.get("metadata") or {}).get("name"), (o.get("metadata") or {}).get("namespace", "default"))
                for o in objects if o.get("kind") == "Service"}
    warnings = []
    for obj in objects:
        for pod_name, pod in _pod_templates(obj):
            volumes = {v.get("name"): v for v in pod.get("volumes") or []}
            claim_volumes = {name for name, v in volumes.items() if "persistentVolumeClaim" in v}
            claim_volumes |= {(t.get("metadata") or {}).get("name")
                              for t in (obj.get("spec") or {}).get("volumeClaimTemplates") or []}
            for container in pod.get("containers") or []:
                arguments = server_arguments(_container_command(container))
                where = f"{obj.get('kind')} {pod_name}"
                if arguments is not None:
                    warnings += server_warnings(arguments, where)
                if str(container.get("image", "")).split(":")[0].endswith("postgres"):
                    mounts = {m.get("name") for m in container.get("volumeMounts") or []}
                    if not mounts & claim_volumes:
                        warnings.append(f"{where}: PostgreSQL's data is not on a persistent volume claim; it dies "
                                        "with the pod")
                if obj.get("kind") == "RayJob":
                    names = {e.get("name") for e in container.get("env") or []}
                    if not CREDENTIALS <= names:
                        warnings.append(f"{where}: no {' / '.join(sorted(CREDENTIALS - names))} in the container's "
                                        "environment, so its trials cannot log to an authenticated server")
        if obj.get("kind") == "RayJob":
            match = TRACKING_URI.search(str((obj.get("spec") or {}).get("entrypoint", "")))
            host = re.match(r"https?://([^:/]+)", match.group(1)) if match else None
            parts = host.group(1).split(".") if host else []
            if len(parts) >= 3 and parts[2] == "svc" and services and (parts[0], parts[1]) not in services:
                warnings.append(f"RayJob: its tracking URI names Service {parts[0]!r} in namespace {parts[1]!r}, "
                                "which the checked manifests do not define")
    return warnings
