"""SOLOv2 post-processing on the device: point NMS on the grids, Matrix NMS, and the
windowed upsampling of kept instances (`upsample_window`, end of file).

Matrix NMS (SOLOv2): decay every score by its overlap with higher-scored masks at once.

All in tensor algebra (one N x N IoU matrix), so it stays on the device and needs no loop.
For candidate j, each higher-scored i of the same class contributes
decay(iou_ij) / decay(max IoU of i with anything above i); j keeps the minimum. The
compensation term stops a mask that is itself suppressed from suppressing others fully.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor


def matrix_nms(
    masks: Tensor,
    labels: Tensor,
    scores: Tensor,
    *,
    sum_masks: Tensor | None = None,
    sigma: float = 2.0,
    kernel: str = "gaussian",
) -> Tensor:
    """Return decayed scores for candidates **sorted by descending score**.

    masks: (N, H, W) or (N, P) binary (bool or 0/1); labels: (N,); scores: (N,).
    kernel "gaussian": exp(-sigma * iou^2); "linear": 1 - iou.
    """
    n = scores.shape[0]
    if n == 0:
        return scores
    flat = masks.reshape(n, -1).to(scores.dtype)
    if sum_masks is None:
        sum_masks = flat.sum(dim=1)
    inter = flat @ flat.T
    union = sum_masks[:, None] + sum_masks[None, :] - inter
    iou = (inter / union.clamp_min(1e-6)).triu(diagonal=1)
    same = (labels[:, None] == labels[None, :]).triu(diagonal=1)
    decay_iou = iou * same
    # max IoU of each i with any higher-scored mask of its class, broadcast along rows
    compensate = decay_iou.max(dim=0).values[:, None]
    if kernel == "gaussian":
        coeff = torch.exp(-sigma * (decay_iou**2 - compensate**2)).min(dim=0).values
    elif kernel == "linear":
        coeff = ((1 - decay_iou) / (1 - compensate).clamp_min(1e-6)).min(dim=0).values
    else:
        raise ValueError(f"unknown Matrix NMS kernel {kernel!r}")
    return scores * coeff


def point_nms(heat: Tensor, kernel: int = 2) -> Tensor:
    """Keep grid scores that are local maxima of a 2x2 window (official SOLOv2)."""
    hmax = F.max_pool2d(heat, kernel, stride=1, padding=1)
    return heat * (hmax[:, :, :-1, :-1] == heat)


#: `select(scores, labels) -> indices` of the instances to keep, in the order to keep
#: them (the pipeline's person filter, applied before anything is upsampled).
Selector = Callable[[Tensor, Tensor], Tensor]

#: An instance's window holds every pixel where its foreground-ness may exceed this. Below
#: the 0.5 of every consumer, so float rounding can never put a > 0.5 pixel outside.
WINDOW_THR = 0.45
#: Low-resolution pixels of context kept around the live ones before upsampling, so the
#: upsampled values inside the window equal those of a whole-frame upsampling.
LOW_MARGIN = 2
_LIVE_LOGIT = math.log(WINDOW_THR / (1 - WINDOW_THR))


def _live(logits: Tensor) -> Tensor:
    """(C, h, w) logits -> bool (h, w): foreground-ness (sigmoid, or 1 - P(bg)) > WINDOW_THR."""
    if logits.shape[0] == 1:
        return logits[0] > _LIVE_LOGIT
    # 1 - P(bg) > t  <=>  logsumexp(l1, l2) - l0 > log(t / (1 - t)), without a softmax
    return torch.logaddexp(logits[1], logits[2]) - logits[0] > _LIVE_LOGIT


def _span(flags: Tensor) -> tuple[int, int] | None:
    idx = flags.nonzero()
    if idx.numel() == 0:
        return None
    return int(idx[0]), int(idx[-1]) + 1


def linear_weights(n_in: int, n_out: int, device) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Source indices and weights of bilinear resizing along one axis (align_corners=False),
    computed as ATen's CPU kernel does: (i0, i1, w0, w1) per output index."""
    i = torch.arange(n_out, dtype=torch.float32, device=device)
    if n_in == n_out:
        i0 = i.long()
        return i0, i0, torch.ones_like(i), torch.zeros_like(i)
    scale = torch.full_like(i, float(n_in)) / n_out  # float32 division, as ATen
    # scale * (i + 0.5) - 0.5 with one rounding (a fused multiply-add, as the kernel does)
    real = torch.addcmul(torch.full_like(i, -0.5), i + 0.5, scale).clamp_min(0)
    i0 = real.floor().long().clamp_max(n_in - 1)
    w1 = (real - i0.to(real.dtype)).clamp(0, 1)
    i1 = torch.where(i0 < n_in - 1, i0 + 1, i0)
    return i0, i1, 1 - w1, w1


def _resize_window(
    x: Tensor,
    offset: tuple[int, int],
    src_size: tuple[int, int],
    live: tuple[tuple[int, int], tuple[int, int]],
    out_size: tuple[int, int],
) -> tuple[tuple[int, int, int, int], Tensor]:
    """Bilinear resize of a source image of `src_size` to `out_size`, only at the output
    pixels that read a live source row and column (`live`: row and column spans in source
    pixels). `x` (C, h, w) is the part of the source starting at `offset` (row, col)."""
    rows = linear_weights(src_size[0], out_size[0], x.device)
    cols = linear_weights(src_size[1], out_size[1], x.device)
    (r0, r1), (c0, c1) = live
    # i1 = i0 + 1 (or i0 at the end): a pixel reads a live row iff i0 is in [r0 - 1, r1)
    oy = _span((rows[0] >= r0 - 1) & (rows[0] < r1))
    ox = _span((cols[0] >= c0 - 1) & (cols[0] < c1))
    if oy is None or ox is None:
        return (0, 0, 0, 0), x.new_zeros(x.shape[0], 0, 0)
    sel = (slice(*oy), slice(*ox))
    ri0, ri1, rw0, rw1 = (t[sel[0]] for t in rows)
    ci0, ci1, cw0, cw1 = (t[sel[1]] for t in cols)
    ri0, ri1, ci0, ci1 = ri0 - offset[0], ri1 - offset[0], ci0 - offset[1], ci1 - offset[1]
    if min(int(ri0.min()), int(ci0.min())) < 0 or int(ri1.max()) >= x.shape[1]:
        raise AssertionError("upsample_window: source part too small")  # cannot happen
    if int(ci1.max()) >= x.shape[2]:
        raise AssertionError("upsample_window: source part too small")
    # Rows are gathered first, then the part is transposed so columns are gathered as
    # whole rows too (index_select along an inner axis is many times slower).
    top = x.index_select(1, ri0).transpose(1, 2).contiguous()  # (C, w, R)
    bottom = x.index_select(1, ri1).transpose(1, 2).contiguous()
    cw0, cw1 = cw0[:, None], cw1[:, None]
    # width first, then height, each w0 * a + (w1 * b) with one rounding: ATen's CPU order
    t0 = torch.addcmul(top.index_select(1, ci1) * cw1, top.index_select(1, ci0), cw0)
    t1 = torch.addcmul(bottom.index_select(1, ci1) * cw1, bottom.index_select(1, ci0), cw0)
    vals = torch.addcmul(t1 * rw1, t0, rw0.expand_as(t0)).transpose(1, 2)
    return (ox[0], oy[0], ox[1], oy[1]), vals


def upsample_window(
    logits: Tensor, image_size: tuple[int, int], output_size: tuple[int, int]
) -> tuple[tuple[int, int, int, int], Tensor]:
    """One instance's stride-4 logits (C, ceil(h/4), ceil(w/4)) -> (window, logits inside it).

    The values the whole-frame code computes — one bilinear resize to `output_size` where
    the stride-4 grid covers the input (h, w) exactly, else ×4 to the padded size, the crop
    to (h, w) and a resize to `output_size` (as SOLOv2 does) — but only inside the window:
    the box of output pixels whose foreground-ness can exceed WINDOW_THR. Why that is
    enough: a bilinear value is a convex combination of its 4 source neighbours, and
    P(bg) >= p is a convex set of logits (l0 - logsumexp(l1, l2) is concave), so a pixel is
    live only next to a live source pixel; each step is cut to the live box plus its
    neighbours. The ×4 step is exact on a crop (every 4th pixel has the same sampling
    phase); other resizes use `linear_weights`. Window = (x0, y0, x1, y1), output pixels.
    """
    c, hf, wf = logits.shape
    h, w = image_size
    output_size = (int(output_size[0]), int(output_size[1]))
    empty = (0, 0, 0, 0), logits.new_zeros(c, 0, 0)
    live = _live(logits)
    rs, cs = _span(live.any(1)), _span(live.any(0))
    if rs is None or cs is None:
        return empty
    if (4 * hf, 4 * wf) == (h, w) and output_size != (h, w):
        return _resize_window(logits, (0, 0), (hf, wf), (rs, cs), output_size)
    a, b = max(0, rs[0] - LOW_MARGIN), min(hf, rs[1] + LOW_MARGIN)
    ca, cb = max(0, cs[0] - LOW_MARGIN), min(wf, cs[1] + LOW_MARGIN)
    part = logits[None, :, a:b, ca:cb]
    up = F.interpolate(part, size=(4 * (b - a), 4 * (cb - ca)), mode="bilinear")[0]
    # pixels of `up` equal to the whole-map ×4: all but 2 at each cut edge
    ya, yb = 4 * a + (2 if a > 0 else 0), min(h, 4 * b - (2 if b < hf else 0))
    xa, xb = 4 * ca + (2 if ca > 0 else 0), min(w, 4 * cb - (2 if cb < wf else 0))
    up = up[:, ya - 4 * a : yb - 4 * a, xa - 4 * ca : xb - 4 * ca]
    live = _live(up)
    rs, cs = _span(live.any(1)), _span(live.any(0))
    if rs is None or cs is None:
        return empty
    if output_size == (h, w):
        y0, y1 = max(ya, ya + rs[0] - 1), min(yb, ya + rs[1] + 1)
        x0, x1 = max(xa, xa + cs[0] - 1), min(xb, xa + cs[1] + 1)
        return (x0, y0, x1, y1), up[:, y0 - ya : y1 - ya, x0 - xa : x1 - xa]
    spans = ((ya + rs[0], ya + rs[1]), (xa + cs[0], xa + cs[1]))
    return _resize_window(up, (ya, xa), (h, w), spans, output_size)
