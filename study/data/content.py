"""What a split's audio *is*: a digest of every file's bytes, remembered per file so that it is cheap to ask
again (stage keys include it, so new audio under an old path is new data). Torch-free: the dry run asks too."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from .errors import DataError
from .layouts import LAYOUTS, track_folders


def default_cache_dir() -> Path:
    return Path(os.environ.get("PRIOR_STUDY_CACHE", "~/.cache/prior-study")).expanduser() / "stems"


def file_digest(path: Path, cache_dir: Path) -> str:
    """BLAKE2b of a file's bytes, remembered under ``cache_dir`` per (path, inode, size, change time): a file is
    hashed again once anything rewrote it. The change time (ctime), unlike the modification time, cannot be
    set back by ``cp -p``, ``rsync -a`` or ``touch``."""
    info = path.stat()
    stamp = hashlib.sha256(f"{path.resolve()}|{info.st_ino}|{info.st_size}|{info.st_ctime_ns}".encode()).hexdigest()
    memo = Path(cache_dir) / "digests" / stamp[:32]
    try:
        return memo.read_text()
    except OSError:
        pass
    with open(path, "rb") as file:
        value = hashlib.file_digest(file, "blake2b").hexdigest()
    try:
        memo.parent.mkdir(parents=True, exist_ok=True)
        tmp = memo.with_name(f"{memo.name}.tmp-{os.getpid()}")
        tmp.write_text(value)
        tmp.replace(memo)
    except OSError:
        pass  # a read-only cache only costs hashing again
    return value


def split_digest(root, split: str, sources, layout: str = "stems", cache_dir=None) -> str | None:
    """A digest of a split's content: every file that makes a source, by name and bytes (what stage keys
    include, so that new audio under the same path is new data). None when the split cannot be read: the
    trial then fails on it with the reason when it loads the data."""
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    try:
        tracks = [LAYOUTS[layout](folder, tuple(sources)) for folder in track_folders(Path(root), split)]
        contents = {str(path.relative_to(root)): file_digest(path, cache_dir)
                    for track in tracks for path in track.files()}
    except (DataError, OSError, KeyError):
        return None
    return hashlib.sha256(json.dumps(contents, sort_keys=True).encode()).hexdigest()[:24]
