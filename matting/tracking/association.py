"""Instance association: give every person found per frame a stable identity through a video.

Per-frame inference has no memory, so identities come from matching each frame's instances
to the live tracks, as the paper does following MaskTrack R-CNN: the similarity between a
track and an instance is a weighted sum of the instance's classification score, the mask
IoU and a location similarity, and one Hungarian assignment
(`scipy.optimize.linear_sum_assignment`) per frame picks the matches.

Decisions worth knowing:

- Similarity = (w_score·score + w_iou·IoU + w_loc·loc) / (w_score + w_iou + w_loc): a
  weighted sum normalised by the total weight, so `min_similarity` stays in [0, 1] whatever
  scale the weights have. The score term is the same for every track; it only decides
  whether a weak instance clears the gate, as the detection score does in MaskTrack R-CNN.
- loc = exp(-d / size): d is the distance between the instance's mass centre and the
  track's *predicted* centre (constant velocity, an EMA of centre displacement per frame),
  size is the mean sqrt(box area) of the two. Masks are also shifted by the predicted
  motion before the IoU, so two people crossing keep their identities.
- IoU is computed on masks reduced so their long side is at most `mask_side` (160 px),
  then thresholded at 0.5: area-averaged on GPU; on CPU sampled at the reduced pixels'
  centres, so the cost no longer grows with the input (4K costs what 160x90 does). Precise
  enough to tell people apart; tracks keep only these small masks.
- Matching is a cascade (as in DeepSORT): tracks matched in the previous update first, then
  lost confirmed tracks (re-identification), then tentative tracks, then births. Recently
  seen tracks thus never lose their instance to a stale one.
- Lost tracks (missed at least once) are gated by distance alone: the instance's centre
  must lie within `reid_distance` track sizes of where the track was last seen or of where
  its motion would have taken it (extrapolated for at most `max_extrapolation` frames).
  This re-identifies a person who reappears near where they left after an occlusion.
- Births: instances with score >= `min_score` that matched nothing start a tentative track
  (unless they overlap an already matched instance by IoU >= `birth_max_overlap`, which
  is a duplicate); a tentative track is confirmed after `confirm_hits` consecutive hits
  and dies at its first miss. Weaker instances may still extend existing tracks.
- IDs are small integers 1, 2, 3, ... given at confirmation; tracks confirmed in the same
  frame are numbered by their first frame, then left to right. IDs are never reused.
- Merge guard: when the detector merges two people into one mask, the track that gets it
  keeps its own shape and coasts on its motion model (see `_merged`), the other is lost
  for a while, and both are re-identified when the people separate.
- Frame indices must increase; a skipped index (dropped frame) counts as a miss.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from vidmatte.models.errors import UsageError
from vidmatte.models.instances import Instances


@dataclass(frozen=True)
class AssociationConfig:
    """Every weight and threshold of association, with its default and why."""

    #: Weights of the similarity terms (normalised by their sum, see the module docstring).
    w_score: float = 0.2
    w_iou: float = 0.5
    w_loc: float = 0.3
    #: Gate for tracks seen in the previous update and tentative tracks: no match below.
    #: 0.3 lets a fully confident instance match without mask overlap up to ~1 size away.
    min_similarity: float = 0.3
    #: Instances scoring below this never start a track (they may still extend one).
    min_score: float = 0.3
    #: k: consecutive hits that confirm a new track (1 = confirm at once).
    confirm_hits: int = 2
    #: Missed frames a confirmed track survives (30 = one second at 30 fps).
    max_age: int = 30
    #: Re-identification gate of lost tracks, in track sizes (sqrt of box area).
    reid_distance: float = 1.5
    #: Long side, in pixels, of the reduced masks used for IoU.
    mask_side: int = 160
    #: How masks are reduced: "area" (average, exact) reads every input pixel, ~5 ms per
    #: person at 1080p on one CPU thread; "nearest" samples only the output pixels (~15x
    #: cheaper on CPU, IoU within a pixel's aliasing). "auto": area on GPU, nearest on CPU.
    mask_reduce: str = "auto"
    #: EMA weight of the old velocity when a track is matched (0 = last step only).
    velocity_momentum: float = 0.5
    #: Frames the constant-velocity prediction is extrapolated for a lost track.
    max_extrapolation: int = 10
    #: An unmatched instance overlapping a matched one by this IoU is a duplicate, not a birth.
    birth_max_overlap: float = 0.7
    #: Merge guard: an instance covering this fraction of its track's and of another
    #: (unmatched) track's predicted masks, and larger than its track by half the other's
    #: area, is the two people merged; its track coasts on its motion model meanwhile.
    merge_cover: float = 0.5
    #: Only instances of the track's class (label) can match it.
    match_labels: bool = True

    def __post_init__(self) -> None:
        weights = (self.w_score, self.w_iou, self.w_loc)
        if min(weights) < 0 or sum(weights) <= 0:
            raise UsageError("association weights must be >= 0 and not all zero")
        if not 0.0 <= self.min_similarity <= 1.0:
            raise UsageError(f"min_similarity must be in [0, 1], got {self.min_similarity}")
        if self.confirm_hits < 1:
            raise UsageError(f"confirm_hits must be >= 1, got {self.confirm_hits}")
        if self.max_age < 0:
            raise UsageError(f"max_age must be >= 0, got {self.max_age}")
        if self.reid_distance < 0:
            raise UsageError(f"reid_distance must be >= 0, got {self.reid_distance}")
        if self.mask_side < 8:
            raise UsageError(f"mask_side must be >= 8, got {self.mask_side}")
        if self.mask_reduce not in ("auto", "area", "nearest"):
            raise UsageError(f"mask_reduce must be auto, area or nearest, got {self.mask_reduce!r}")
        if not 0.0 <= self.velocity_momentum < 1.0:
            raise UsageError("velocity_momentum must be in [0, 1)")


@dataclass
class TrackState:
    """One track's state. Read it; only the Associator changes it."""

    id: int  # public id, 0 while tentative
    first: int  # first frame (tentative hits included)
    last: int  # last frame matched
    hits: int
    misses: int  # frames since `last` when the track was not matched
    scores: list[float]  # score of every hit, in order
    box: tuple[float, float, float, float]  # xyxy, input pixels
    centre: tuple[float, float]  # (x, y), input pixels
    velocity: tuple[float, float] = (0.0, 0.0)  # pixels per frame
    label: int = 0
    mask: Tensor | None = field(default=None, repr=False)  # (h, w) bool, reduced resolution
    hit_log: list[tuple[int, int]] = field(default_factory=list, repr=False)  # tentative hits

    @property
    def confirmed(self) -> bool:
        return self.id > 0

    @property
    def size(self) -> float:
        return _box_size(self.box)

    @property
    def mean_score(self) -> float:
        return sum(self.scores) / len(self.scores) if self.scores else 0.0

    def predicted_centre(self, frame_index: int, max_extrapolation: int) -> tuple[float, float]:
        steps = min(frame_index - self.last, max_extrapolation)
        return (
            self.centre[0] + self.velocity[0] * steps,
            self.centre[1] + self.velocity[1] * steps,
        )


@dataclass
class Assignment:
    """The result of one update."""

    #: Per input instance: its confirmed track id, or None (tentative or ignored).
    track_ids: list[int | None]
    #: Tracks confirmed in this update -> [(frame_index, instance_index), ...] of their
    #: earlier tentative hits (the current one excluded), so a caller that buffers the last
    #: k-1 frames can backfill them.
    confirmed: dict[int, list[tuple[int, int]]] = field(default_factory=dict)
    #: Confirmed tracks dropped in this update (missed more than max_age frames).
    ended: list[int] = field(default_factory=list)


@dataclass
class _Detections:
    scores: list[float]
    labels: list[int]
    boxes: list[tuple[float, float, float, float]]
    centres: list[tuple[float, float]]
    masks: Tensor  # (N, h, w) bool, reduced
    scale: tuple[float, float]  # (sx, sy) reduced / input pixels
    valid: list[bool]


def _box_size(box: tuple[float, float, float, float]) -> float:
    return math.sqrt(max(box[2] - box[0], 0.0) * max(box[3] - box[1], 0.0))


def reduced_size(height: int, width: int, mask_side: int) -> tuple[int, int]:
    """(h, w) of masks whose long side is at most `mask_side`, aspect kept."""
    long = max(height, width)
    if long <= mask_side:
        return height, width
    s = mask_side / long
    return max(1, round(height * s)), max(1, round(width * s))


def reduce_masks(masks: Tensor, mask_side: int, mode: str = "auto") -> Tensor:
    """(N, H, W) probabilities -> (N, h, w) bool on the CPU, long side <= mask_side.

    "area": averaging then > 0.5, a reduced pixel is in when most of its area is.
    "nearest": the input pixel nearest each reduced pixel's centre (cost independent of
    the input size). "auto": area on accelerators, nearest on the CPU.
    """
    n, h, w = masks.shape
    size = reduced_size(h, w, mask_side)
    if mode == "auto":
        mode = "nearest" if masks.device.type == "cpu" else "area"
    if n and size != (h, w):
        if mode == "nearest":
            ys = ((torch.arange(size[0]) + 0.5) * (h / size[0])).long().clamp_max(h - 1)
            xs = ((torch.arange(size[1]) + 0.5) * (w / size[1])).long().clamp_max(w - 1)
            masks = masks[:, ys.to(masks.device)][:, :, xs.to(masks.device)]
        else:
            m = masks if masks.is_floating_point() else masks.float()
            masks = F.interpolate(m[:, None], size=size, mode="area")[:, 0]
    return (masks > 0.5).cpu()


def reduce_instance_masks(inst: Instances, mask_side: int, mode: str = "auto") -> Tensor:
    """`reduce_masks` of an Instances' full-frame masks, reading only each window."""
    h, w = inst.image_size
    size = reduced_size(h, w, mask_side)
    if mode == "auto":
        mode = "nearest" if inst.device.type == "cpu" else "area"
    if len(inst) and size != (h, w) and mode != "nearest":
        return inst.area_masks(size)
    ys = ((torch.arange(size[0]) + 0.5) * (h / size[0])).long().clamp_max(h - 1)
    xs = ((torch.arange(size[1]) + 0.5) * (w / size[1])).long().clamp_max(w - 1)
    if size == (h, w):
        ys, xs = torch.arange(h), torch.arange(w)
    return inst.sampled_masks(ys, xs)


def shift_masks(masks: Tensor, dx: int, dy: int) -> Tensor:
    """Translate (..., h, w) masks by whole pixels, filling with False."""
    if dx == 0 and dy == 0:
        return masks
    h, w = masks.shape[-2:]
    out = torch.zeros_like(masks)
    if abs(dx) >= w or abs(dy) >= h:
        return out
    ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
    xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
    out[..., yd, xd] = masks[..., ys, xs]
    return out


def mask_iou(a: Tensor, b: Tensor) -> Tensor:
    """(A, h, w) x (B, h, w) bool masks -> (A, B) IoU (one matrix product)."""
    if a.shape[0] == 0 or b.shape[0] == 0 or a.shape[-2:] != b.shape[-2:]:
        return torch.zeros(a.shape[0], b.shape[0])
    fa = a.flatten(1).float()
    fb = b.flatten(1).float()
    inter = fa @ fb.T
    union = fa.sum(1)[:, None] + fb.sum(1)[None, :] - inter
    return inter / union.clamp_min(1.0)


class Associator:
    """Online association: feed each frame's Instances in order, get confirmed track ids."""

    def __init__(self, config: AssociationConfig | None = None) -> None:
        self.config = config or AssociationConfig()
        self.reset()

    def reset(self) -> None:
        """Forget every track; ids start again at 1 (a new video)."""
        self._confirmed: dict[int, TrackState] = {}
        self._tentative: list[TrackState] = []
        self._next_id = 1
        self._last_frame: int | None = None
        self._mask_cache: dict[tuple[int, int], tuple[Tensor, Tensor]] = {}

    @property
    def tracks(self) -> dict[int, TrackState]:
        """Confirmed tracks still alive (matched or lost for <= max_age frames), by id."""
        return dict(self._confirmed)

    # -- one frame ---------------------------------------------------------------------
    def update(self, frame_index: int, instances: Instances) -> Assignment:
        cfg = self.config
        if self._last_frame is not None and frame_index <= self._last_frame:
            raise UsageError(
                f"association needs increasing frame indices: got {frame_index} after "
                f"{self._last_frame} (reset() to start again)"
            )
        self._last_frame = frame_index
        self._mask_cache = {}
        dets = self._detections(instances)
        n = len(dets.scores)
        owner: list[TrackState | None] = [None] * n
        free = [i for i in range(n) if dets.valid[i]]

        confirmed = list(self._confirmed.values())
        active = [t for t in confirmed if t.misses == 0]
        lost = [t for t in confirmed if t.misses > 0]
        for tracks, is_lost in ((active, False), (lost, True), (self._tentative, False)):
            for t, i in self._match(tracks, dets, free, frame_index, is_lost):
                owner[i] = t
            free = [i for i in free if owner[i] is None]

        # Bookkeeping of matched tracks (a merged instance only extends its track).
        merged = self._merged(owner, dets, confirmed, frame_index)
        for i, t in enumerate(owner):
            if t is not None:
                self._hit(t, dets, i, frame_index, coast=i in merged)

        # Births from unmatched, confident, non-duplicate instances.
        matched_idx = [i for i in range(n) if owner[i] is not None]
        births = [i for i in free if dets.scores[i] >= cfg.min_score]
        if births and matched_idx:
            overlap = mask_iou(dets.masks[births], dets.masks[matched_idx]).amax(1)
            births = [
                i
                for i, o in zip(births, overlap.tolist(), strict=True)
                if o < cfg.birth_max_overlap
            ]
        new_tentative: list[TrackState] = []
        for i in births:
            t = TrackState(
                id=0,
                first=frame_index,
                last=frame_index,
                hits=0,
                misses=0,
                scores=[],
                box=dets.boxes[i],
                centre=dets.centres[i],
                label=dets.labels[i],
            )
            self._hit(t, dets, i, frame_index)
            owner[i] = t
            new_tentative.append(t)

        # Tentative tracks: confirm, or drop at their first miss.
        survivors = [t for t in self._tentative if t.last == frame_index] + new_tentative
        ready = sorted(
            (t for t in survivors if t.hits >= cfg.confirm_hits),
            key=lambda t: (t.first, t.centre[0]),
        )
        result = Assignment(track_ids=[None] * n)
        for t in ready:
            t.id = self._next_id
            self._next_id += 1
            self._confirmed[t.id] = t
            result.confirmed[t.id] = t.hit_log[:-1]
            t.hit_log = []
        self._tentative = [t for t in survivors if not t.confirmed]

        # Confirmed tracks not matched: age, and drop past max_age.
        for t in list(self._confirmed.values()):
            if t.last != frame_index:
                t.misses = frame_index - t.last
                if t.misses > cfg.max_age:
                    del self._confirmed[t.id]
                    result.ended.append(t.id)

        for i, t in enumerate(owner):
            if t is not None and t.confirmed:
                result.track_ids[i] = t.id
        return result

    # -- helpers -----------------------------------------------------------------------
    def _detections(self, inst: Instances) -> _Detections:
        h, w = inst.image_size
        masks = reduce_instance_masks(inst, self.config.mask_side, self.config.mask_reduce)
        rh, rw = masks.shape[-2:]
        boxes = [tuple(b) for b in inst.boxes.detach().float().cpu().tolist()]
        areas = masks.flatten(1).sum(1).tolist() if len(inst) else []
        return _Detections(
            scores=inst.scores.detach().float().cpu().tolist(),
            labels=inst.labels.detach().cpu().tolist(),
            boxes=boxes,
            centres=[tuple(c) for c in inst.centres.detach().float().cpu().tolist()],
            masks=masks,
            scale=(rw / max(w, 1), rh / max(h, 1)),
            valid=[a > 0 or _box_size(b) > 0 for a, b in zip(areas, boxes, strict=True)],
        )

    def _match(
        self,
        tracks: list[TrackState],
        dets: _Detections,
        free: list[int],
        frame_index: int,
        lost: bool,
    ) -> list[tuple[TrackState, int]]:
        if not tracks or not free:
            return []
        from scipy.optimize import linear_sum_assignment

        sim, allowed = self._similarity(tracks, dets, free, frame_index, lost)
        cost = torch.where(allowed, -sim, torch.full_like(sim, 1e6)).numpy()
        rows, cols = linear_sum_assignment(cost)
        return [(tracks[r], free[c]) for r, c in zip(rows, cols, strict=True) if allowed[r, c]]

    def _similarity(
        self,
        tracks: list[TrackState],
        dets: _Detections,
        free: list[int],
        frame_index: int,
        lost: bool,
    ) -> tuple[Tensor, Tensor]:
        """(T, D) similarity and gate for tracks x free instances."""
        cfg = self.config
        det_masks = dets.masks[free]
        det_centres = torch.tensor([dets.centres[i] for i in free]).reshape(-1, 2)
        det_sizes = torch.tensor([_box_size(dets.boxes[i]) for i in free])
        scores = torch.tensor([dets.scores[i] for i in free])
        labels = torch.tensor([dets.labels[i] for i in free])

        pred = [t.predicted_centre(frame_index, cfg.max_extrapolation) for t in tracks]
        empty = torch.zeros_like(det_masks[0])
        shifted = []
        for t in tracks:
            m = self._predicted_mask(t, frame_index, dets.scale)
            shifted.append(m if m is not None and m.shape == empty.shape else empty)
        iou = mask_iou(torch.stack(shifted), det_masks)
        pred_c = torch.tensor(pred).reshape(-1, 2)
        sizes = 0.5 * (torch.tensor([t.size for t in tracks])[:, None] + det_sizes[None, :])
        sizes = sizes.clamp_min(1.0)
        dist = torch.cdist(pred_c, det_centres) / sizes
        if lost:
            last_c = torch.tensor([t.centre for t in tracks]).reshape(-1, 2)
            dist = torch.minimum(dist, torch.cdist(last_c, det_centres) / sizes)
            unshifted = torch.stack(
                [
                    t.mask if t.mask is not None and t.mask.shape == empty.shape else empty
                    for t in tracks
                ]
            )
            iou = torch.maximum(iou, mask_iou(unshifted, det_masks))
        loc = torch.exp(-dist)
        total = cfg.w_score + cfg.w_iou + cfg.w_loc
        sim = (cfg.w_score * scores[None, :] + cfg.w_iou * iou + cfg.w_loc * loc) / total
        allowed = dist <= cfg.reid_distance if lost else sim >= cfg.min_similarity
        if cfg.match_labels:
            track_labels = torch.tensor([t.label for t in tracks])
            allowed &= track_labels[:, None] == labels[None, :]
        return sim, allowed

    def _predicted_mask(self, t: TrackState, frame_index: int, scale) -> Tensor | None:
        """The track's reduced mask moved by its motion model (cached for this frame)."""
        if t.mask is None:
            return None
        key = (id(t), frame_index)
        cached = self._mask_cache.get(key)
        if cached is not None and cached[0] is t.mask:
            return cached[1]
        p = t.predicted_centre(frame_index, self.config.max_extrapolation)
        dx, dy = round((p[0] - t.centre[0]) * scale[0]), round((p[1] - t.centre[1]) * scale[1])
        out = shift_masks(t.mask, dx, dy)
        self._mask_cache[key] = (t.mask, out)
        return out

    def _merged(
        self,
        owner: list[TrackState | None],
        dets: _Detections,
        confirmed: list[TrackState],
        frame_index: int,
    ) -> set[int]:
        """Instances that are one track's person merged with another, unmatched, track's.

        Such an instance covers most of both tracks' predicted masks and is larger than its
        own track by at least half the other's area. Its track then coasts on its motion
        model instead of adopting the merged shape, whose centre lies between the two people
        (which would make it grab the other person when they separate).
        """
        cfg = self.config
        matched = {id(t) for t in owner if t is not None}
        hidden = [t for t in confirmed if id(t) not in matched and t.misses < cfg.max_extrapolation]
        out: set[int] = set()
        if not hidden:
            return out
        for i, t in enumerate(owner):
            if t is None or not t.confirmed or t.mask is None:
                continue
            d = dets.masks[i]
            own = self._predicted_mask(t, frame_index, dets.scale)
            if own is None or own.shape != d.shape or not own.any():
                continue
            d_area = float(d.sum())
            if float((own & d).sum()) < cfg.merge_cover * float(own.sum()):
                continue
            box = dets.boxes[i]
            for h in hidden:
                hc = h.predicted_centre(frame_index, cfg.max_extrapolation)
                dx, dy = hc[0] - h.centre[0], hc[1] - h.centre[1]
                hb = (h.box[0] + dx, h.box[1] + dy, h.box[2] + dx, h.box[3] + dy)
                if hb[0] >= box[2] or hb[2] <= box[0] or hb[1] >= box[3] or hb[3] <= box[1]:
                    continue  # boxes apart: nothing covered (cheap test first)
                other = self._predicted_mask(h, frame_index, dets.scale)
                if other is None or other.shape != d.shape or not other.any():
                    continue
                o_area = float(other.sum())
                covered = float((other & d).sum()) >= cfg.merge_cover * o_area
                if covered and d_area >= float(own.sum()) + 0.5 * o_area:
                    out.add(i)
                    break
        return out

    def _hit(
        self, t: TrackState, dets: _Detections, i: int, frame_index: int, coast: bool = False
    ) -> None:
        if coast:  # keep shape and velocity, move by the motion model
            mask = self._predicted_mask(t, frame_index, dets.scale)
            p = t.predicted_centre(frame_index, self.config.max_extrapolation)
            dx, dy = p[0] - t.centre[0], p[1] - t.centre[1]
            t.box = (t.box[0] + dx, t.box[1] + dy, t.box[2] + dx, t.box[3] + dy)
            t.centre, t.mask = p, mask
            t.last, t.misses = frame_index, 0
            t.hits += 1
            t.scores.append(dets.scores[i])
            return
        c = dets.centres[i]
        if t.hits > 0:
            gap = max(frame_index - t.last, 1)
            step = ((c[0] - t.centre[0]) / gap, (c[1] - t.centre[1]) / gap)
            m = self.config.velocity_momentum if t.hits > 1 else 0.0
            t.velocity = (
                m * t.velocity[0] + (1 - m) * step[0],
                m * t.velocity[1] + (1 - m) * step[1],
            )
        t.centre = c
        t.box = dets.boxes[i]
        t.mask = dets.masks[i]
        t.last = frame_index
        t.hits += 1
        t.misses = 0
        t.scores.append(dets.scores[i])
        if not t.confirmed:
            t.hit_log.append((frame_index, i))
