"""The fast matter (coarse closed-form + guided upsampling) against closed-form, on real data."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from vidmatte.models.matters.base import Matter, build_matter
from vidmatte.models.matters.classical import (
    closed_form_alpha,
    matting_laplacian,
    solve_dirichlet,
)
from vidmatte.models.matters.fast import affine_coefficients, fast_alpha
from vidmatte.models.trimap import masks_to_trimaps
from vidmatte.training.metrics import evaluation_trimap

SPRING = "matting/c1k_spring-289527_1920_15"


# A fixed 3×3 grid of full-resolution 200×200 windows covering the left half (the right half
# is the README's evaluation item); downscaled, the strands vanish and a comparison says little.
WINDOWS = [(y, x) for y in (0, 150, 300) for x in (0, 180, 360)]


@pytest.fixture(scope="module")
def spring(shared_data):
    d = shared_data / SPRING
    name = "spring-289527_1920_15.png"
    im = cv2.cvtColor(cv2.imread(str(d / "image" / name)), cv2.COLOR_BGR2RGB)
    a = cv2.imread(str(d / "alpha" / name), 0).astype(np.float32) / 255
    out = []
    for y, x in WINDOWS:
        g = a[y : y + 200, x : x + 200]
        out.append((np.ascontiguousarray(im[y : y + 200, x : x + 200]), g, evaluation_trimap(g)))
    return out


@pytest.fixture(scope="module")
def lucia(shared_data):
    d = shared_data / "vos" / "davis16_lucia"
    im = cv2.cvtColor(cv2.imread(str(d / "frames" / "00030.jpg")), cv2.COLOR_BGR2RGB)
    m = cv2.imread(str(d / "masks" / "00030.png"), 0) > 127
    return im, masks_to_trimaps(m[None])[0]


def test_fast_within_bound_of_closed_form_on_composition_1k(spring):
    matter = build_matter("fast")
    assert isinstance(matter, Matter) and matter.name == "fast"
    fast_sad = cf_sad = 0.0
    for im, gt, tri in spring:
        fast = matter(im, np.stack([tri, tri]))
        assert fast.shape == (2, *tri.shape) and fast.dtype == np.float32
        np.testing.assert_array_equal(fast[0], fast[1])
        assert np.all(fast[0][tri == 0] == 0) and np.all(fast[0][tri == 255] == 1)
        fast_sad += np.abs(fast[0] - gt).sum() / 1000
        cf_sad += np.abs(closed_form_alpha(im, tri) - gt).sum() / 1000
    # Issue 19's bound: alpha errors within 15 % of closed-form's given the same trimap, summed
    # over the grid (measured 93.1 against 121.1; per window the two trade places).
    assert fast_sad <= 1.15 * cf_sad, (fast_sad, cf_sad)


def test_fast_follows_closed_form_on_a_real_person(lucia):
    im, tri = lucia
    fast = fast_alpha(im, tri)
    cf = closed_form_alpha(im, tri)
    band = tri == 128
    assert np.all(fast[~band] == cf[~band])
    d = np.abs(fast - cf)[band]
    # closed-form's own answer on the band, to within a few per cent on average
    assert d.mean() < 0.05 and np.mean(d > 0.25) < 0.05, (d.mean(), np.mean(d > 0.25))
    # a thin band is solved at full resolution, exactly as closed-form does
    thin = fast_alpha(im, tri, target_unknowns=10**9)
    np.testing.assert_array_equal(thin, cf)


def test_band_assembly_is_the_exact_dirichlet_solution(spring):
    """solve_dirichlet assembles the system on the unknowns only (band_system); the
    reference slices the full N×N Laplacian and solves it directly."""
    import scipy.sparse as sp
    from scipy.ndimage import binary_dilation
    from scipy.sparse.linalg import spsolve

    im, _, tri = spring[0]
    crop = im[40:100, 100:180].astype(np.float64) / 255
    t = tri[40:100, 100:180].copy()
    t[0] = t[-1] = 0  # a known frame around the crop
    known = t != 128
    values = (t == 255).astype(np.float64)
    centres = binary_dilation(~known, np.ones((3, 3), bool))
    centres[0, :] = centres[-1, :] = centres[:, 0] = centres[:, -1] = False
    u, k = np.flatnonzero(~known.ravel()), np.flatnonzero(known.ravel())
    lap = matting_laplacian(crop, centres)[u]
    a_uu = lap[:, u] + sp.identity(u.size, format="csr") * 1e-9
    ref = values.ravel().copy()
    ref[u] = np.clip(spsolve(a_uu.tocsc(), -(lap[:, k] @ values.ravel()[k])), 0, 1)
    d = np.abs(solve_dirichlet(crop, known, values) - ref.reshape(known.shape))
    # the same system; summation order differs, which weakly constrained pixels amplify
    assert d.mean() < 1e-4 and d.max() < 1e-2, (d.mean(), d.max())


def test_affine_coefficients_reproduce_a_linear_alpha():
    rng = np.random.default_rng(0)
    img = rng.random((40, 50, 3)).astype(np.float32)
    alpha = (0.3 * img[..., 0] - 0.2 * img[..., 1] + 0.5 * img[..., 2] + 0.1).astype(np.float32)
    a, b = affine_coefficients(img, alpha, radius=2, eps=1e-8)
    rec = (a * img).sum(-1) + b
    assert np.abs(rec - alpha)[3:-3, 3:-3].max() < 1e-3
