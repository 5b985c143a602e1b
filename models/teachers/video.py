"""The whole-video teacher: a forward/backward pass over the clip on top of per-frame results.

Offline distillation may look at past *and* future frames (paper V-B); the student still
infers one frame at a time, so none of this costs anything at inference. Two stages:

1. Per frame (`frame_record`): the ensemble teacher (ensemble.py) on labelled frames, its
   light setting on the others, and DIS optical flow to the previous frame in both
   directions. Each record is self-contained, so a caller can cache it (resume).
2. Over the clip (`video_pass`):
   * **Association over all frames.** Each track's mask is carried to the next frame by the
     flow (warped every frame, also while it is missed) and matched to that frame's people
     by mask IoU (Hungarian); unmatched people start tracks; a track survives `max_gap`
     missed frames, and tracks with fewer than `min_hits` detections are dropped (one-off
     false positives).
   * **Gap filling from both sides.** Where a track is missed (or its mask is much smaller
     than its neighbours': a weak, partial detection), its last mask is warped forward
     frame by frame and its next mask backward, and the two are blended by temporal
     distance. Gaps longer than `max_fill` frames are filled only `max_fill // 2` frames
     deep from each side.
   * **Voting along the flow.** A track's mask at frame t is the weighted mean of its masks
     at t-V..t+V warped onto t, each neighbour weighted by distance, by kind (ensemble >
     light > filled) and per pixel by photometric agreement exp(-|I_t - warp(I_j)| / σ), so
     a neighbour whose flow is wrong where it matters does not vote there.
   * **Confidence -> ignore.** The vote v in [0, 1] is the members' agreement; pixels with
     `ignore_low` < v < `ignore_high` are marked uncertain, and the pseudo-trimap gives them
     the ignore value (models/trimap.py), so the student is not taught noise.
   * Pixels claimed by several tracks go to the highest vote.

Masks are stored as uint8 (0..255 probability) at the working resolution; association runs
on masks reduced by `assoc_scale`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from vidmatte.models.flow import dis_flow


@dataclass(frozen=True)
class VideoConfig:
    #: DIS preset for the per-pair flows, and the scale they are stored at (memory: a long
    #: clip holds two flows per frame; masks are warped with the flow upsampled again)
    flow_preset: str = "fast"
    flow_scale: float = 0.5
    #: association: reduced-mask scale and IoU gate of a propagated track against a person
    assoc_scale: float = 0.25
    match_iou: float = 0.25
    #: a person this much inside an already matched one (of the smaller's area) is a
    #: duplicate or a part, not a birth
    birth_max_overlap: float = 0.6
    #: a person of a frame this much inside a stronger one of the same frame is dropped
    duplicate_contain: float = 0.8
    #: a track starting within this many sizes of where another ended continues it
    stitch_distance: float = 1.0
    birth_score: float = 0.5
    max_gap: int = 45
    min_hits: int = 3
    #: gap filling
    max_fill: int = 24
    #: a detection smaller than this fraction of the fill at its frame is weak
    weak_ratio: float = 0.6
    #: frames a track is extended beyond its first/last detection (flow-warped)
    extend: int = 2
    #: voting
    vote_radius: int = 2
    vote_decay: float = 0.6
    weight_strong: float = 2.0
    weight_light: float = 1.0
    weight_fill: float = 0.5
    photo_sigma: float = 12.0
    ignore_low: float = 0.3
    ignore_high: float = 0.7
    min_area: int = 64


@dataclass
class FrameRecord:
    """Stage-1 output for one frame (all arrays at the working resolution H×W)."""

    masks: np.ndarray  # (N, H, W) uint8 probability ×255
    scores: np.ndarray  # (N,) float32
    boxes: np.ndarray  # (N, 4) float32 xyxy
    strong: bool  # the full ensemble ran on this frame
    #: flow this frame -> previous and previous -> this frame (float16, pixels of the working
    #: resolution, stored at `flow_scale` of it; `to_prev()`/`from_prev()` give H×W×2), None
    #: at t = 0
    flow_to_prev: np.ndarray | None = None
    flow_from_prev: np.ndarray | None = None

    @property
    def size(self) -> tuple[int, int]:
        return int(self.masks.shape[1]), int(self.masks.shape[2])

    def to_prev(self) -> np.ndarray | None:
        return _full_flow(self.flow_to_prev, self.size)

    def from_prev(self) -> np.ndarray | None:
        return _full_flow(self.flow_from_prev, self.size)

    def to_npz(self) -> dict:
        d = {
            "masks": self.masks,
            "scores": self.scores,
            "boxes": self.boxes,
            "strong": np.array(self.strong),
        }
        if self.flow_to_prev is not None:
            d["flow_to_prev"] = self.flow_to_prev
            d["flow_from_prev"] = self.flow_from_prev
        return d

    @classmethod
    def from_npz(cls, z) -> FrameRecord:
        return cls(
            masks=z["masks"],
            scores=z["scores"],
            boxes=z["boxes"],
            strong=bool(z["strong"]),
            flow_to_prev=z.get("flow_to_prev"),
            flow_from_prev=z.get("flow_from_prev"),
        )


@dataclass
class TrackLabel:
    """One person at one frame after the video pass."""

    track_id: int
    mask: np.ndarray  # (H, W) bool
    uncertain: np.ndarray  # (H, W) bool: the teacher's members disagree here
    vote: np.ndarray  # (H, W) float32 in [0, 1]
    score: float
    box: list[float]
    detected: bool  # a per-frame detection was there (False: filled from neighbours)


@dataclass
class _Track:
    tid: int
    small: np.ndarray  # reduced float mask, propagated every frame
    last: np.ndarray  # reduced float mask of the last detection, as it was
    dets: dict[int, int] = field(default_factory=dict)  # frame -> person index
    misses: int = 0
    alive: bool = True


def frame_record(
    people_masks: np.ndarray,
    scores: np.ndarray,
    boxes: np.ndarray,
    strong: bool,
    rgb: np.ndarray,
    prev_rgb: np.ndarray | None,
    preset: str = "fast",
    flow_scale: float = 0.5,
) -> FrameRecord:
    """Pack one frame's teacher result (float masks (N,H,W)) and its flows to the previous."""
    masks = np.clip(np.rint(np.asarray(people_masks, np.float32) * 255), 0, 255).astype(np.uint8)
    rec = FrameRecord(
        masks=masks.reshape(-1, *rgb.shape[:2]),
        scores=np.asarray(scores, np.float32).reshape(-1),
        boxes=np.asarray(boxes, np.float32).reshape(-1, 4),
        strong=strong,
    )
    if prev_rgb is not None:
        rec.flow_to_prev = _store_flow(dis_flow(rgb, prev_rgb, preset), flow_scale)
        rec.flow_from_prev = _store_flow(dis_flow(prev_rgb, rgb, preset), flow_scale)
    return rec


def _store_flow(flow: np.ndarray, scale: float) -> np.ndarray:
    if scale != 1.0:
        h, w = flow.shape[:2]
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        flow = cv2.resize(flow, size, interpolation=cv2.INTER_AREA)
    return flow.astype(np.float16)


def _full_flow(flow: np.ndarray | None, size: tuple[int, int]) -> np.ndarray | None:
    """A stored flow (pixels of the working resolution) resized to H×W (values unchanged)."""
    if flow is None:
        return None
    h, w = size
    f = flow.astype(np.float32)
    if f.shape[:2] != (h, w):
        f = cv2.resize(f, (w, h), interpolation=cv2.INTER_LINEAR)
    return f


def warp(x: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """out(p) = x(p + flow(p)), bilinear, 0 outside (float32 in, float32 out)."""
    h, w = flow.shape[:2]
    gx, gy = _grid(h, w)
    f = flow.astype(np.float32)
    return cv2.remap(
        x.astype(np.float32), gx + f[..., 0], gy + f[..., 1], cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT, borderValue=0,
    )  # fmt: skip


_GRIDS: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}


def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    g = _GRIDS.get((h, w))
    if g is None:
        gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
        g = _GRIDS.setdefault((h, w), (gx, gy))
    return g


def _small_flow(flow: np.ndarray, s: float) -> np.ndarray:
    h, w = flow.shape[:2]
    size = (max(1, round(w * s)), max(1, round(h * s)))
    return cv2.resize(flow.astype(np.float32), size, interpolation=cv2.INTER_AREA) * s


def _small(mask_u8: np.ndarray, s: float) -> np.ndarray:
    h, w = mask_u8.shape
    size = (max(1, round(w * s)), max(1, round(h * s)))
    return cv2.resize(mask_u8.astype(np.float32) / 255.0, size, interpolation=cv2.INTER_AREA)


def _duplicates(bins: list[np.ndarray], scores: np.ndarray, contain: float) -> list[int]:
    """Indices of people of one frame mostly inside a higher-scoring person of that frame."""
    order = np.argsort(-np.asarray(scores))
    out: list[int] = []
    for n, j in enumerate(order):
        for i in order[:n]:
            if (
                i not in out
                and _contained(bins[j], bins[i]) >= contain
                and np.count_nonzero(bins[j]) <= np.count_nonzero(bins[i])
            ):
                out.append(int(j))
                break
    return out


def _contained(a: np.ndarray, b: np.ndarray) -> float:
    """Fraction of the smaller of two bool masks that lies inside the other."""
    small = min(np.count_nonzero(a), np.count_nonzero(b))
    return np.count_nonzero(a & b) / small if small else 0.0


def _bbox(m: np.ndarray) -> np.ndarray | None:
    ys, xs = np.nonzero(m)
    if xs.size == 0:
        return None
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float32)


def _box_iou(a: np.ndarray | None, b: np.ndarray | None) -> float:
    if a is None or b is None:
        return 0.0
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def _side(box: np.ndarray) -> float:
    return float(np.sqrt(max(1.0, (box[2] - box[0]) * (box[3] - box[1]))))


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    inter = np.count_nonzero(a & b)
    union = np.count_nonzero(a | b)
    return inter / union if union else 0.0


class VideoPass:
    """Stage 2 over one clip: `run(records, frames, out_frames) -> {t: [TrackLabel]}`."""

    def __init__(self, config: VideoConfig | None = None) -> None:
        self.cfg = config or VideoConfig()

    # -------------------------------------------------------------- association

    def associate(self, records: list[FrameRecord]) -> list[_Track]:
        from scipy.optimize import linear_sum_assignment

        cfg, s = self.cfg, self.cfg.assoc_scale
        tracks: list[_Track] = []
        next_id = 1
        for t, rec in enumerate(records):
            smalls = [_small(m, s) for m in rec.masks]
            bins = [sm > 0.5 for sm in smalls]
            for j in _duplicates(bins, rec.scores, cfg.duplicate_contain):
                bins[j] = np.zeros_like(bins[j])  # a part of a stronger person: not a person
            live = [k for k in tracks if k.alive]
            if t > 0 and live and rec.flow_to_prev is not None:
                fs = _small_flow(rec.to_prev(), s)
                for k in live:
                    k.small = warp(k.small, fs)
            n, m = len(live), len(smalls)
            matched_t: dict[int, int] = {}
            if n and m:
                sim = np.zeros((n, m), np.float32)
                for i, k in enumerate(live):
                    a, last = k.small > 0.5, k.last > 0.5
                    ba = _bbox(a)
                    for j, b in enumerate(bins):
                        # the flow-carried mask; the last mask as it was (flow can fail on
                        # fast, subsampled motion); boxes of the carried mask (shape change)
                        sim[i, j] = max(
                            _iou(a, b), 0.9 * _iou(last, b), 0.7 * _box_iou(ba, _bbox(b))
                        )
                rows, cols = linear_sum_assignment(-sim)
                for r, c in zip(rows, cols, strict=True):
                    if sim[r, c] >= cfg.match_iou:
                        matched_t[int(c)] = int(r)
            for j, i in matched_t.items():
                k = live[i]
                k.dets[t] = j
                k.small = smalls[j]
                k.last = smalls[j]
                k.misses = 0
            for i, k in enumerate(live):
                if i not in matched_t.values():
                    k.misses += 1
                    if k.misses > cfg.max_gap or not (k.small > 0.5).any():
                        k.alive = False
            taken = [bins[j] for j in matched_t]
            for j, b in enumerate(bins):
                if j in matched_t or rec.scores[j] < cfg.birth_score or not b.any():
                    continue
                if any(_contained(b, o) >= cfg.birth_max_overlap for o in taken):
                    continue  # a duplicate or a part of a person already matched
                tracks.append(_Track(next_id, smalls[j], smalls[j], {t: j}))
                next_id += 1
                taken.append(b)
        tracks = self._stitch(tracks, records)
        kept = [k for k in tracks if len(k.dets) >= cfg.min_hits]
        for new_id, k in enumerate(sorted(kept, key=lambda k: (min(k.dets), k.tid)), 1):
            k.tid = new_id
        return kept

    def _stitch(self, tracks: list[_Track], records: list[FrameRecord]) -> list[_Track]:
        """Join a track that ends to one that starts later near where it ended (a person
        lost for a few frames and found again as a new track): the later track's first box
        centre within `stitch_distance` sizes of the earlier one's last box centre."""
        cfg = self.cfg

        def box(t: int, j: int) -> np.ndarray:
            return records[t].boxes[j]

        order = sorted(tracks, key=lambda k: min(k.dets))
        merged: list[_Track] = []
        for k in order:
            first = min(k.dets)
            b1 = box(first, k.dets[first])
            best, best_gap = None, cfg.max_gap + 1
            for a in merged:
                last = max(a.dets)
                gap = first - last
                if gap <= 0 or gap > cfg.max_gap or gap >= best_gap:
                    continue
                b0 = box(last, a.dets[last])
                size = 0.5 * (_side(b0) + _side(b1))
                c0 = np.array([(b0[0] + b0[2]) / 2, (b0[1] + b0[3]) / 2])
                c1 = np.array([(b1[0] + b1[2]) / 2, (b1[1] + b1[3]) / 2])
                if np.linalg.norm(c1 - c0) <= cfg.stitch_distance * size:
                    best, best_gap = a, gap
            if best is not None:
                best.dets.update(k.dets)
            else:
                merged.append(k)
        return merged

    # -------------------------------------------------------------- members per frame

    def members(
        self, track: _Track, records: list[FrameRecord]
    ) -> tuple[dict[int, np.ndarray], dict[int, float]]:
        """Per frame: the track's mask (float32 H×W) and its voting weight (kind)."""
        cfg = self.cfg
        T = len(records)
        det_frames = sorted(track.dets)
        lo, hi = max(0, det_frames[0] - cfg.extend), min(T - 1, det_frames[-1] + cfg.extend)
        det = {t: records[t].masks[j].astype(np.float32) / 255.0 for t, j in track.dets.items()}
        # forward sweep: last detection carried forward; backward sweep likewise
        fwd: dict[int, tuple[np.ndarray, int]] = {}
        cur, age = None, 0
        for t in range(lo, hi + 1):
            if t in det:
                cur, age = det[t], 0
            elif cur is not None and records[t].flow_to_prev is not None:
                cur, age = warp(cur, records[t].to_prev()), age + 1
            if cur is not None and t not in det:
                fwd[t] = (cur, age)
        bwd: dict[int, tuple[np.ndarray, int]] = {}
        cur, age = None, 0
        for t in range(hi, lo - 1, -1):
            if t in det:
                cur, age = det[t], 0
            elif cur is not None and t + 1 < T and records[t + 1].flow_from_prev is not None:
                cur, age = warp(cur, records[t + 1].from_prev()), age + 1
            if cur is not None and t not in det:
                bwd[t] = (cur, age)
        out: dict[int, np.ndarray] = {}
        weight: dict[int, float] = {}
        half = max(1, cfg.max_fill // 2)
        for t in range(lo, hi + 1):
            f, b = fwd.get(t), bwd.get(t)
            gap_len = (f[1] if f else 0) + (b[1] if b else 0)
            fill = None
            if f and b:
                if gap_len <= cfg.max_fill or min(f[1], b[1]) <= half:
                    if gap_len > cfg.max_fill:  # only the near side
                        fill = f[0] if f[1] <= b[1] else b[0]
                    else:
                        wf, wb = 1.0 / f[1], 1.0 / b[1]
                        fill = (wf * f[0] + wb * b[0]) / (wf + wb)
            elif f and f[1] <= cfg.extend:
                fill = f[0]
            elif b and b[1] <= cfg.extend:
                fill = b[0]
            if t in det:
                m = det[t]
                out[t] = m
                weight[t] = cfg.weight_strong if records[t].strong else cfg.weight_light
            elif fill is not None:
                out[t] = fill
                weight[t] = cfg.weight_fill
        # weak detections: much smaller than what the neighbours predict -> blend with the fill
        for t in det:
            ref = self._neighbour_fill(t, det, records, lo, hi)
            if ref is None:
                continue
            a_det = float((det[t] > 0.5).sum())
            a_ref = float((ref > 0.5).sum())
            if a_ref > 0 and a_det < cfg.weak_ratio * a_ref:
                out[t] = np.maximum(det[t], ref * 0.999)
                weight[t] = cfg.weight_fill
        return out, weight

    def _neighbour_fill(self, t, det, records, lo, hi) -> np.ndarray | None:
        """Mean of the detections at t-1 and t+1 warped onto t (None if neither exists)."""
        parts = []
        if t - 1 in det and records[t].flow_to_prev is not None:
            parts.append(warp(det[t - 1], records[t].to_prev()))
        if t + 1 < len(records) and t + 1 in det and records[t + 1].flow_from_prev is not None:
            parts.append(warp(det[t + 1], records[t + 1].from_prev()))
        if not parts:
            return None
        return sum(parts) / len(parts)

    # -------------------------------------------------------------- voting

    def vote(
        self,
        t: int,
        members: dict[int, np.ndarray],
        weights: dict[int, float],
        records: list[FrameRecord],
        frames: list[np.ndarray] | None,
    ) -> np.ndarray | None:
        cfg = self.cfg
        if t not in members:
            return None
        h, w = members[t].shape
        acc = members[t] * weights[t]
        wsum = np.full((h, w), weights[t], np.float32)
        T = len(records)
        for direction in (-1, 1):
            m = None
            img = None
            flow_chain = []
            for d in range(1, cfg.vote_radius + 1):
                j = t + direction * d
                if j < 0 or j >= T:
                    break
                # flow from t towards j, composed step by step: pull j back onto t
                if direction < 0:
                    step = records[t - d + 1].to_prev()  # (t-d+1) -> (t-d)
                else:
                    step = records[t + d].from_prev()  # (t+d-1) -> (t+d)
                if step is None:
                    break
                flow_chain.append(step)
                if j not in members:
                    continue
                m = members[j]
                img = frames[j].astype(np.float32) if frames is not None else None
                valid = np.ones((h, w), np.float32)
                for f in reversed(flow_chain):
                    m = warp(m, f)
                    valid = warp(valid, f)
                    if img is not None:
                        img = np.stack([warp(img[..., c], f) for c in range(3)], -1)
                wj = weights[j] * cfg.vote_decay**d * (valid > 0.99)
                if img is not None:
                    diff = np.abs(img - frames[t].astype(np.float32)).mean(-1)
                    wj = wj * np.exp(-diff / cfg.photo_sigma)
                acc += wj * m
                wsum += wj
        return acc / np.maximum(wsum, 1e-6)

    # -------------------------------------------------------------- all of it

    def run(
        self,
        records: list[FrameRecord],
        frames: list[np.ndarray] | None,
        out_frames: list[int],
    ) -> dict[int, list[TrackLabel]]:
        cfg = self.cfg
        tracks = self.associate(records)
        out: dict[int, list[TrackLabel]] = {t: [] for t in out_frames}
        if not records:
            return out
        h, w = records[0].masks.shape[1:] if records[0].masks.ndim == 3 else (0, 0)
        if frames is not None and len(frames):
            h, w = frames[0].shape[:2]
        for k in tracks:
            members, weights = self.members(k, records)
            dscores = [float(records[t].scores[j]) for t, j in k.dets.items()]
            score = float(np.mean(dscores)) if dscores else 0.0
            for t in out_frames:
                v = self.vote(t, members, weights, records, frames)
                if v is None:
                    continue
                out[t].append(
                    TrackLabel(
                        track_id=k.tid,
                        mask=v > 0.5,
                        uncertain=(v > cfg.ignore_low) & (v < cfg.ignore_high),
                        vote=v.astype(np.float32),
                        score=score,
                        box=[],
                        detected=t in k.dets,
                    )
                )
        for t in out_frames:
            out[t] = self._resolve(out[t])
        return out

    def _resolve(self, labels: list[TrackLabel]) -> list[TrackLabel]:
        cfg = self.cfg
        if len(labels) > 1:
            votes = np.stack([lab.vote for lab in labels])
            winner = votes.argmax(0)
            for i, lab in enumerate(labels):
                lab.mask = lab.mask & (winner == i)
        kept = []
        for lab in labels:
            if np.count_nonzero(lab.mask) < cfg.min_area:
                continue
            ys, xs = np.nonzero(lab.mask)
            lab.box = [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)]
            kept.append(lab)
        return kept
