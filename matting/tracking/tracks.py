"""TrackStore: which instance of each frame is which person, and the GUI's edits on it.

The network runs once; fixing identities afterwards (merge two tracks that are one person,
split a track where it jumped to someone else, delete a false one, rename) only rewrites
this record. Payloads (an alpha array, a file path, ...) are stored opaquely per
(frame, track), so the GUI can keep alphas on disk and move nothing when ids change.

Decisions: ids are the associator's small integers and stay stable through edits (no
renumbering; a split gets a fresh id above every id ever used). Adding a record that exists
replaces it (re-processing a frame). Names default to `person_01`-style, as the export
folders; they must be unique and non-empty. Every user-caused problem raises UsageError.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass

from vidmatte.models.errors import UsageError

MERGE_POLICIES = ("error", "score", "keep")


@dataclass
class TrackInfo:
    id: int
    name: str
    first: int
    last: int
    frames: int
    mean_score: float


def default_name(track_id: int) -> str:
    return f"person_{track_id:02d}"


class TrackStore:
    """Per-frame record of which instance of frame f is which track; payloads (e.g. a path or
    array per (frame, track)) are stored opaquely so the GUI can keep alphas on disk."""

    def __init__(self) -> None:
        self._records: dict[int, dict[int, tuple[float, object]]] = {}  # id -> frame -> rec
        self._names: dict[int, str] = {}
        self._next_id = 1

    # -- recording ---------------------------------------------------------------------
    def add(self, frame_index: int, track_id: int, score: float, payload: object = None) -> None:
        """Record that `track_id` is present in `frame_index` (replaces an existing record)."""
        if not isinstance(track_id, int) or track_id < 1:
            raise UsageError(f"track ids are positive integers, got {track_id!r}")
        if frame_index < 0:
            raise UsageError(f"frame index must be >= 0, got {frame_index}")
        if track_id not in self._records:
            self._records[track_id] = {}
            self._names.setdefault(track_id, self._free_name(track_id))
        self._records[track_id][frame_index] = (float(score), payload)
        self._next_id = max(self._next_id, track_id + 1)

    def add_frame(
        self,
        frame_index: int,
        track_ids: Iterable[int | None],
        scores: Iterable[float],
        payloads: Iterable[object] | None = None,
    ) -> None:
        """Record one frame from an Assignment's `track_ids` (None entries are skipped)."""
        ids, sc = list(track_ids), list(scores)
        pl = list(payloads) if payloads is not None else [None] * len(ids)
        if not len(ids) == len(sc) == len(pl):
            raise UsageError("track_ids, scores and payloads must have one entry per instance")
        for t, s, p in zip(ids, sc, pl, strict=True):
            if t is not None:
                self.add(frame_index, t, s, p)

    # -- reading -----------------------------------------------------------------------
    def __contains__(self, track_id: object) -> bool:
        return track_id in self._records

    def __len__(self) -> int:
        return len(self._records)

    def ids(self) -> list[int]:
        return sorted(self._records)

    def tracks(self) -> list[TrackInfo]:
        out = []
        for tid in sorted(self._records):
            recs = self._records[tid]
            frames = sorted(recs)
            out.append(
                TrackInfo(
                    id=tid,
                    name=self._names[tid],
                    first=frames[0],
                    last=frames[-1],
                    frames=len(frames),
                    mean_score=sum(r[0] for r in recs.values()) / len(recs),
                )
            )
        return out

    def frame(self, frame_index: int) -> dict[int, object]:
        """track_id -> payload of every track present in this frame."""
        return {t: r[frame_index][1] for t, r in sorted(self._records.items()) if frame_index in r}

    def payloads(self, track_id: int) -> dict[int, object]:
        """frame -> payload of one track, frames in order (export, or cleaning up files)."""
        recs = self._get(track_id)
        return {f: recs[f][1] for f in sorted(recs)}

    def scores(self, track_id: int) -> dict[int, float]:
        recs = self._get(track_id)
        return {f: recs[f][0] for f in sorted(recs)}

    def name(self, track_id: int) -> str:
        self._get(track_id)
        return self._names[track_id]

    def to_manifest(self) -> list[dict]:
        """[{id, name, first, last, frames, mean_score}] for manifest.json."""
        return [
            {
                "id": t.id,
                "name": t.name,
                "first": t.first,
                "last": t.last,
                "frames": t.frames,
                "mean_score": round(t.mean_score, 4),
            }
            for t in self.tracks()
        ]

    def copy(self) -> TrackStore:
        """An independent copy of the record (payload objects shared), e.g. for undo."""
        other = TrackStore()
        other._records = {t: dict(r) for t, r in self._records.items()}
        other._names = copy.copy(self._names)
        other._next_id = self._next_id
        return other

    # -- edits -------------------------------------------------------------------------
    def merge(self, keep: int, other: int, on_conflict: str = "error") -> None:
        """Move every frame of `other` into `keep`; `other` disappears, `keep` keeps its name.

        Where both tracks are present in the same frame they cannot be one person in one
        frame, so by default this raises UsageError (nothing changed). on_conflict="score"
        keeps the higher-scoring record of each such frame, "keep" keeps `keep`'s.
        """
        if on_conflict not in MERGE_POLICIES:
            raise UsageError(f"on_conflict must be one of {', '.join(MERGE_POLICIES)}")
        if keep == other:
            raise UsageError(f"cannot merge track {keep} with itself")
        a, b = self._get(keep), self._get(other)
        both = sorted(set(a) & set(b))
        if both and on_conflict == "error":
            raise UsageError(
                f"cannot merge track {other} into {keep}: both are in {len(both)} frame(s), "
                f"first at frame {both[0]}"
            )
        for f, rec in b.items():
            if f not in a or (on_conflict == "score" and rec[0] > a[f][0]):
                a[f] = rec
        del self._records[other]
        del self._names[other]

    def split(self, track_id: int, at_frame: int) -> int:
        """Frames >= at_frame move to a new track; returns its id (above every id used)."""
        recs = self._get(track_id)
        later = {f: r for f, r in recs.items() if f >= at_frame}
        if not later or len(later) == len(recs):
            first, last = min(recs), max(recs)
            raise UsageError(
                f"cannot split track {track_id} at frame {at_frame}: it spans frames "
                f"{first}-{last}; split at a frame after {first} and at most {last}"
            )
        new_id = self._next_id
        self._next_id += 1
        for f in later:
            del recs[f]
        self._records[new_id] = later
        self._names[new_id] = self._free_name(new_id)
        return new_id

    def delete(self, track_id: int) -> None:
        """Remove a track and its records (get its payloads first to clean files up)."""
        self._get(track_id)
        del self._records[track_id]
        del self._names[track_id]

    def rename(self, track_id: int, name: str) -> None:
        self._get(track_id)
        name = (name or "").strip()
        if not name:
            raise UsageError("a track name cannot be empty")
        clash = [t for t, n in self._names.items() if n == name and t != track_id]
        if clash:
            raise UsageError(f"name {name!r} is already used by track {clash[0]}")
        self._names[track_id] = name

    # -- helpers -----------------------------------------------------------------------
    def _get(self, track_id: int) -> dict[int, tuple[float, object]]:
        try:
            return self._records[track_id]
        except KeyError:
            raise UsageError(f"no track with id {track_id}") from None

    def _free_name(self, track_id: int) -> str:
        name = default_name(track_id)
        used = set(self._names.values())
        n = 2
        base = name
        while name in used:
            name = f"{base}_{n}"
            n += 1
        return name
