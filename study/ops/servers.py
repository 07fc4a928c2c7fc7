"""Tracking services on one machine: a PostgreSQL cluster in a folder, and an ``mlflow server`` in front of a
backend store, both bound to 127.0.0.1. The tests and the tracking load benchmark run these real servers.
A single workstation can run them too, when it wants PostgreSQL-backed tracking without an administrator.

PostgreSQL comes from the system (Debian's ``postgresql`` package: ``initdb``, ``pg_ctl``). It refuses to
run as root, so as root the cluster is owned and run by the ``postgres`` user, in a folder that user can
reach.
"""
from __future__ import annotations

import glob
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from study.config.reading import excerpt

SYSTEM_USER = "postgres"
START_TIMEOUT = 120



def write_private(path: Path, text: str) -> None:
    """Write a file that holds a secret readable by its owner only from the moment it exists."""
    path.unlink(missing_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(text)

class ServiceError(RuntimeError):
    """A local service could not start; the message ends with the tail of its log."""


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def postgres_binary(name: str) -> str:
    """``initdb``/``pg_ctl``/``postgres`` from PATH or Debian's versioned folder."""
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)),
                                       None)
    if found is None:
        raise ServiceError(f"PostgreSQL's {name} is not installed (Debian: apt-get install postgresql)")
    return found


def tail(path: Path, chars: int = 2000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return "(no log)"


class LocalPostgres:
    """A PostgreSQL cluster in ``folder`` (created on first start, reused after), listening on 127.0.0.1 only,
    with password (SCRAM) authentication for ``user`` and one database ``database``.

    Stopping and starting again keeps every row: the data lives in ``folder``.
    """

    def __init__(self, folder: Path | None = None, port: int | None = None, user: str = "mlflow",
                 password: str | None = None, database: str = "mlflow"):
        self.as_system_user = os.geteuid() == 0
        # as root the folder must be reachable by the postgres user, so it cannot live under a 0700 tmp dir
        self.folder = Path(folder) if folder is not None else Path(tempfile.mkdtemp(prefix="prior-study-pg-"))
        self.port, self.user, self.database = port or free_port(), user, database
        self.password = password or secrets.token_urlsafe(16)
        self.data, self.log = self.folder / "data", self.folder / "postgres.log"

    @property
    def uri(self) -> str:
        return self.uri_of(self.database)

    def _run(self, *command: str) -> None:
        prefix = ["runuser", "-u", SYSTEM_USER, "--"] if self.as_system_user else []
        done = subprocess.run([*prefix, *command], capture_output=True, text=True, timeout=START_TIMEOUT)
        if done.returncode != 0:
            raise ServiceError(f"{Path(command[0]).name} failed: {excerpt(done.stderr or done.stdout, 1500)}\n"
                               f"{tail(self.log)}")

    def start(self) -> "LocalPostgres":
        self.folder.mkdir(parents=True, exist_ok=True)
        if self.as_system_user:
            shutil.chown(self.folder, SYSTEM_USER, SYSTEM_USER)
        first = not (self.data / "PG_VERSION").is_file()
        if first:
            secret = self.folder / "password"
            write_private(secret, self.password + "\n")
            if self.as_system_user:
                shutil.chown(secret, SYSTEM_USER, SYSTEM_USER)
            self._run(postgres_binary("initdb"), "-D", str(self.data), "-U", self.user, f"--pwfile={secret}",
                      "--auth-host=scram-sha-256", "--auth-local=scram-sha-256", "-E", "UTF8", "--no-instructions")
            secret.unlink()
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.folder} -c max_connections=200"
        self._run(postgres_binary("pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o", options, "-w",
                  "-t", str(START_TIMEOUT), "start")
        if first:
            self.create_database(self.database)
        return self

    def uri_of(self, database: str) -> str:
        return f"postgresql://{self.user}:{self.password}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """Create database ``name`` (e.g. a second one for MLflow's auth tables); returns its URI."""
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=self.port, user=self.user, password=self.password,
                             dbname="postgres", autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.uri_of(name)

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run(postgres_binary("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


class MlflowServer:
    """``mlflow server`` on 127.0.0.1 over ``backend_uri``, serving artifacts into ``artifacts``.

    With ``auth_config`` (the path of an ini file, see :func:`write_auth_config`) it runs MLflow's basic-auth
    app, and clients authenticate with ``MLFLOW_TRACKING_USERNAME`` and ``MLFLOW_TRACKING_PASSWORD``.
    """

    def __init__(self, backend_uri: str, artifacts: Path, log: Path, port: int | None = None, workers: int = 2,
                 auth_config: Path | None = None):
        self.backend_uri, self.artifacts, self.log = backend_uri, Path(artifacts), Path(log)
        self.port, self.workers, self.auth_config = port or free_port(), workers, auth_config
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "MlflowServer":
        command = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", self.backend_uri,
                   "--artifacts-destination", str(self.artifacts), "--host", "127.0.0.1", "--port", str(self.port),
                   "--workers", str(self.workers)]
        env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
        if self.auth_config is not None:
            command += ["--app-name", "basic-auth"]
            env["MLFLOW_AUTH_CONFIG_PATH"] = str(self.auth_config)
            # CSRF protection of the auth app's forms; every worker must share it
            env.setdefault("MLFLOW_FLASK_SERVER_SECRET_KEY", secrets.token_urlsafe(32))
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=open(self.log, "a"), env=env,
                                        start_new_session=True)  # its own group: stop() takes its workers too
        deadline = time.time() + START_TIMEOUT
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as response:
                    if response.status == 200:
                        return self
            except (OSError, urllib.error.URLError):
                if time.time() > deadline or self.process.poll() is not None:
                    self.stop()
                    raise ServiceError(f"mlflow server did not start:\n{tail(self.log)}") from None
                time.sleep(0.5)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def write_auth_config(path: Path, database_uri: str, admin_password: str, admin_username: str = "admin",
                      default_permission: str = "NO_PERMISSIONS") -> Path:
    """MLflow's basic-auth settings: users live in ``database_uri``; the admin is created on first start.
    ``NO_PERMISSIONS`` by default: a user sees only what they created or were granted."""
    write_private(path, "[mlflow]\n"
                        f"default_permission = {default_permission}\n"
                        f"database_uri = {database_uri}\n"
                        f"admin_username = {admin_username}\n"
                        f"admin_password = {admin_password}\n"
                        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n")
    return path


AUTH_SETTINGS = {"database_uri": "MLFLOW_AUTH_DATABASE_URI", "admin_password": "MLFLOW_AUTH_ADMIN_PASSWORD"}


def main(argv=None) -> int:
    """``python -m study.servers auth-config PATH``: write the basic-auth ini of the cluster's MLflow server
    from the environment (``MLFLOW_AUTH_DATABASE_URI``, ``MLFLOW_AUTH_ADMIN_PASSWORD``, optionally
    ``MLFLOW_AUTH_ADMIN_USERNAME``; see infra/tracking.env.example), so no secret is ever committed."""
    import argparse

    parser = argparse.ArgumentParser(description="Local tracking services and their settings.")
    sub = parser.add_subparsers(dest="command", required=True)
    auth = sub.add_parser("auth-config", help="write MLflow's basic-auth ini from the environment")
    auth.add_argument("path", type=Path)
    args = parser.parse_args(argv)
    missing = [name for name in AUTH_SETTINGS.values() if not os.environ.get(name)]
    if missing:
        print(f"error: set {', '.join(missing)} (see infra/tracking.env.example)", file=sys.stderr)
        return 2
    if os.environ["MLFLOW_AUTH_ADMIN_PASSWORD"] == "password1234":
        print("error: MLFLOW_AUTH_ADMIN_PASSWORD is MLflow's published default; choose another", file=sys.stderr)
        return 2
    args.path.parent.mkdir(parents=True, exist_ok=True)
    write_auth_config(args.path, os.environ["MLFLOW_AUTH_DATABASE_URI"], os.environ["MLFLOW_AUTH_ADMIN_PASSWORD"],
                      os.environ.get("MLFLOW_AUTH_ADMIN_USERNAME", "admin"))
    print(f"wrote {args.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
