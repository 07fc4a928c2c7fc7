"""Which audio files make each source of a track, in the two multitrack layouts the study reads.

- ``stems`` (MUSDB18-HQ and any folder like it): ``<root>/<split>/<track>/<source>.wav``, one file per source.
- ``slakh`` (Slakh2100, the dataset MSDM reports on): ``<root>/<split>/<Track>/stems/<Sxx>.flac`` and
  ``<Track>/metadata.yaml``, which gives each stem's ``inst_class``, ``program_num``, ``is_drum`` and
  ``audio_rendered``. A source is the sum of the track's rendered stems whose instrument class is its name
  (case-insensitive; ``drums`` also takes every ``is_drum`` stem). A track without any stem of a class has
  silence there, and the silence policy then skips its crops.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from study.config.reading import ConfigError, read_yaml

from .errors import DataError

TOY_SOURCES = ("sin", "square", "saw", "triangle")  # the generated oscillators of study.data.toy
MUSDB_SOURCES = ("drums", "bass", "other", "vocals")
SLAKH_SOURCES = ("bass", "drums", "guitar", "piano")  # MSDM's four
CHORALE_VOICES = ("soprano", "alto", "tenor", "bass")  # the stems study.data.chorales renders


@dataclass(frozen=True)
class TrackFiles:
    """One track: the files summed into each source (none: the source is silent in this track), and a file
    whose length is the track's."""

    folder: Path
    sources: dict[str, tuple[Path, ...]]
    length_reference: Path

    def files(self) -> list[Path]:
        return sorted({path for paths in self.sources.values() for path in paths} | {self.length_reference})


def musdb_track(folder: Path, sources) -> TrackFiles:
    files = {source: (folder / f"{source}.wav",) for source in sources}
    for (path,) in files.values():
        if not path.is_file():
            raise DataError(path, "missing stem file")
    return TrackFiles(folder, files, files[sources[0]][0])


def slakh_stem_classes(folder: Path) -> dict[str, tuple[str, bool]]:
    """``{stem id: (instrument class, is_drum)}`` of the rendered stems in ``folder/metadata.yaml``."""
    path = folder / "metadata.yaml"
    if not path.is_file():
        raise DataError(path, "missing Slakh metadata file")
    try:
        stems = read_yaml(path).get("stems")
    except ConfigError as error:
        raise DataError(path, str(error).removeprefix(f"{path}: ")) from None
    if not isinstance(stems, dict):
        raise DataError(path, "no 'stems' mapping of stem ids to their instruments")
    classes = {}
    for stem, info in stems.items():
        if not isinstance(info, dict) or not isinstance(info.get("inst_class"), str):
            raise DataError(path, f"stem {stem!r} has no inst_class")
        if info.get("audio_rendered", True):
            classes[str(stem)] = (info["inst_class"].strip().lower(), bool(info.get("is_drum", False)))
    return classes


def slakh_track(folder: Path, sources) -> TrackFiles:
    rendered = slakh_stem_classes(folder)
    audio = {stem: folder / "stems" / f"{stem}.flac" for stem in rendered}
    for stem, path in audio.items():
        if not path.is_file():
            raise DataError(path, f"missing stem file (metadata.yaml says {stem} was rendered)")
    files = {source: tuple(audio[stem] for stem, (inst_class, is_drum) in sorted(rendered.items())
                           if inst_class == source.lower() or (source.lower() == "drums" and is_drum))
             for source in sources}
    reference = next(iter(sorted(audio.values())), folder / "mix.flac")
    if not reference.is_file():
        raise DataError(folder, "no rendered stems and no mix.flac to take the track's length from")
    return TrackFiles(folder, files, reference)


LAYOUTS = {"stems": musdb_track, "slakh": slakh_track}
DEFAULT_SOURCES = {"stems": MUSDB_SOURCES, "slakh": SLAKH_SOURCES}


def source_names(cfg) -> tuple[str, ...]:
    """The sources a :class:`study.config.schema.DataConfig` names, or its kind's default ones."""
    if cfg.sources:
        return tuple(cfg.sources)
    return TOY_SOURCES if cfg.kind == "toy" else DEFAULT_SOURCES[cfg.kind]


def track_folders(root: Path, split: str) -> list[Path]:
    split_dir = Path(root) / split
    if not split_dir.is_dir():
        raise DataError(split_dir, f"split folder {split!r} does not exist")
    tracks = sorted(p for p in split_dir.iterdir() if p.is_dir())
    if not tracks:
        raise DataError(split_dir, "no track folders")
    return tracks


def missing_data(cfg) -> str | None:
    """Why the folders a :class:`study.config.schema.DataConfig` reads are not there, in one line naming the path (and,
    for the chorales' voices, the command that renders them); None when every split has tracks with audio.
    Reads file names and sizes only (no audio, no torch), so a sweep can ask before Ray starts."""
    if cfg.kind == "toy":
        return None
    root, sources = Path(cfg.root).expanduser(), source_names(cfg)
    try:
        if not root.is_dir():
            raise DataError(root, "dataset root does not exist")
        for split in dict.fromkeys((cfg.train_split, cfg.test_split)):
            for folder in track_folders(root, split):
                files = [folder / f"{source}.wav" for source in sources] if cfg.kind == "stems" else [
                    folder / "metadata.yaml", *sorted((folder / "stems").glob("*.flac"))[:1]]
                for path in files:
                    if not path.is_file() or path.stat().st_size == 0:
                        raise DataError(path, "missing" if not path.exists() else "empty file")
                if cfg.kind == "slakh" and len(files) < 2:
                    raise DataError(folder / "stems", "no .flac stems")
    except DataError as error:
        render = (f"; render it with: python -m study.data.chorales --out {cfg.root}"
                  if tuple(sources) == CHORALE_VOICES else "")
        return f"{error}{render}"
    return None
