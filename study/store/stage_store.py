"""The stage store: finished training stages, evaluations and separations, addressed by content.

    store = StageStore("runs/ray/stages")            # or "s3://bucket/prefix/stages"
    store.write_json(f"{key}/training.json", record)  # atomic: a temporary name, then a rename
    store.mark_complete(key)                          # written last; readers trust nothing before it

Everything goes through pyarrow's filesystem layer, the one Ray Tune uses for ``storage``, so the same code
serves a local folder, NFS and S3 (credentials and endpoints from the usual ``AWS_*`` variables). A folder
counts as finished only once its ``COMPLETE`` marker exists, so a writer killed half way leaves files that
are ignored and overwritten by the next writer, never a truncated result that is trusted.
"""
from __future__ import annotations

import hashlib
import io
import json
import time
import uuid
from pathlib import Path

import pyarrow.fs as pafs

COMPLETE = "COMPLETE"
INVALID = "_invalid"  # where damaged stages are moved, kept for inspection


def digest(data: bytes) -> str:
    """The content digest a sealed folder keeps per file (BLAKE2b, a fast cryptographic hash)."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()


class StoreError(RuntimeError):
    """A stored file is unreadable; the message names it."""


def is_uri(location: str | Path) -> bool:
    """A URI such as ``s3://bucket/prefix`` rather than a local path: the one place that tells them apart."""
    return "://" in str(location)


def resolved(location: str | Path) -> str:
    """A local path made absolute (for processes in other working directories); a URI as it is."""
    return str(location) if is_uri(location) else str(Path(location).expanduser().resolve())


def open_filesystem(uri: str | Path) -> tuple[pafs.FileSystem, str]:
    """(filesystem, root path) for a local path or a URI such as ``s3://bucket/prefix``."""
    if not is_uri(uri):
        return pafs.LocalFileSystem(), resolved(uri)
    return pafs.FileSystem.from_uri(str(uri))


def atomic_write(fs: pafs.FileSystem, path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a reader sees the old file or the whole new one, never a part.

    The bytes go to a unique temporary name first, then are moved into place (a rename on local disks;
    object stores publish an object only when its upload completes).
    """
    parent = path.rsplit("/", 1)[0]
    if parent:
        fs.create_dir(parent, recursive=True)
    tmp = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        with fs.open_output_stream(tmp) as stream:
            stream.write(data)
        fs.move(tmp, path)
    except BaseException:
        try:  # a failed write (disk full, interrupted) leaves nothing behind
            fs.delete_file(tmp)
        except OSError:
            pass
        raise


def write_local(path: str | Path, data: bytes | str) -> None:
    """:func:`atomic_write` for a local file (metrics.json, checkpoints)."""
    atomic_write(pafs.LocalFileSystem(), str(Path(path).resolve()), data.encode() if isinstance(data, str) else data)


def dumps_json(data: dict) -> bytes:
    return json.dumps(data, indent=2, sort_keys=True).encode()


class StageStore:
    """Files under one root, addressed by relative paths such as ``<key>/prior.pt``."""

    def __init__(self, uri: str | Path):
        self.uri = str(uri)
        self.fs, self.root = open_filesystem(uri)

    def __repr__(self) -> str:
        return f"StageStore({self.uri!r})"

    def path(self, relative: str) -> str:
        root = self.root.rstrip("/")
        return f"{root}/{relative}" if relative else root

    def exists(self, relative: str) -> bool:
        return self.fs.get_file_info(self.path(relative)).type != pafs.FileType.NotFound

    def is_complete(self, folder: str) -> bool:
        return self.exists(f"{folder}/{COMPLETE}")

    def mark_complete(self, folder: str) -> None:
        """Seal ``folder``: its marker lists the digest of every file in it, as read back from the store."""
        files = {name: digest(self.read_bytes(f"{folder}/{name}")) for name in self.list(folder)
                 if name != COMPLETE and ".tmp-" not in name and not name.startswith("attempts/")}
        atomic_write(self.fs, self.path(f"{folder}/{COMPLETE}"), dumps_json({"files": files}))

    def damage(self, folder: str) -> str | None:
        """What is wrong with a complete folder's files (one line naming the file), or None when every file
        still has the digest it was sealed with. Folders sealed before digests were kept pass unchecked."""
        raw = self.read_bytes(f"{folder}/{COMPLETE}")
        try:
            files = json.loads(raw)["files"] if raw else {}
        except (ValueError, KeyError, TypeError):
            return f"{self.path(f'{folder}/{COMPLETE}')}: unreadable completion record"
        for name, expected in sorted(files.items()):
            data = self.read_bytes(f"{folder}/{name}")
            if data is None:
                return f"{self.path(f'{folder}/{name}')}: missing"
            if digest(data) != expected:
                return f"{self.path(f'{folder}/{name}')}: content differs from when the stage finished"
        return None

    def set_aside(self, folder: str) -> str:
        """Move ``folder`` out of the way (kept for inspection under ``_invalid/``), its marker first so that
        no reader trusts what is left. Returns where it went."""
        target = f"{INVALID}/{folder}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:4]}"
        for name in [COMPLETE] + [n for n in self.list(folder) if n != COMPLETE]:
            try:
                self.fs.create_dir(self.path(f"{target}/{name}").rsplit("/", 1)[0], recursive=True)
                self.fs.move(self.path(f"{folder}/{name}"), self.path(f"{target}/{name}"))
            except FileNotFoundError:
                pass  # another trial set it aside at the same time
        return self.path(target)

    # --- bytes and JSON ------------------------------------------------------------------------------
    def write_bytes(self, relative: str, data: bytes) -> None:
        atomic_write(self.fs, self.path(relative), data)

    def read_bytes(self, relative: str) -> bytes | None:
        try:
            with self.fs.open_input_stream(self.path(relative)) as stream:
                return stream.read()
        except FileNotFoundError:
            return None

    def write_json(self, relative: str, data: dict) -> None:
        self.write_bytes(relative, dumps_json(data))

    def read_json(self, relative: str) -> dict | None:
        raw = self.read_bytes(relative)
        if raw is None:
            return None
        try:
            return json.loads(raw)
        except ValueError as error:
            raise StoreError(f"{self.path(relative)}: not valid JSON ({error})") from None

    def write_torch(self, relative: str, record) -> None:
        import torch

        buffer = io.BytesIO()
        torch.save(record, buffer)
        self.write_bytes(relative, buffer.getvalue())

    def read_torch(self, relative: str):
        """A checkpoint loaded with ``weights_only=True``; None when absent."""
        import torch

        raw = self.read_bytes(relative)
        if raw is None:
            return None
        try:
            return torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
        except Exception as error:  # noqa: BLE001 - any unpickling failure means a damaged file
            raise StoreError(f"{self.path(relative)}: unreadable checkpoint ({type(error).__name__}: {error})") from None

    def delete(self, relative: str) -> None:
        try:
            self.fs.delete_file(self.path(relative))
        except FileNotFoundError:
            pass

    # --- folders ------------------------------------------------------------------------------------
    def list(self, folder: str) -> list[str]:
        """Relative paths of the files below ``folder`` (recursively), sorted; empty when absent."""
        base = self.path(folder)
        selector = pafs.FileSelector(base, recursive=True, allow_not_found=True)
        for attempt in range(5):
            try:
                infos = self.fs.get_file_info(selector)
                break
            except FileNotFoundError:
                # a folder created or removed by another writer while the tree was walked: walk again
                if attempt == 4:
                    raise
        return sorted(info.path[len(base) + 1:] for info in infos if info.type == pafs.FileType.File)

    def put_folder(self, folder: str, local: Path) -> None:
        """Copy the files of a local folder (recursively) into ``folder``, each atomically."""
        for file in sorted(Path(local).rglob("*")):
            if file.is_file():
                self.write_bytes(f"{folder}/{file.relative_to(local).as_posix()}", file.read_bytes())

    def get_folder(self, folder: str, local: Path) -> None:
        """Copy every file below ``folder`` into the local folder ``local`` (markers and temporaries left out)."""
        for name in self.list(folder):
            if name == COMPLETE or ".tmp-" in name:
                continue
            target = Path(local) / name
            target.parent.mkdir(parents=True, exist_ok=True)
            write_local(target, self.read_bytes(f"{folder}/{name}"))


def default_store_uri(storage: str) -> str:
    """The stage store of a sweep's storage root (a local path or a URI): ``<storage>/stages``."""
    return f"{storage.rstrip('/')}/stages"
