"""PLS regression fitted from per-image moments: ``PLSRegression(n, scale=False)`` without the rows.

Why not call scikit-learn in the cross-validation loop: a fit on the George panel (13 x 289 rows,
600 features, 32 sites) takes seconds with scikit-learn's NIPALS (5.2 s on one busy core, 11 ms
here: ``bench/bench_neural.py``), and layer selection on held-out
images needs 105 fits per layer and panel (14 leave-one-out fits plus the 91 leave-two-out fits of
the inner folds). PLS2 depends on the data only through ``X'X`` and ``X'Y`` (after centring), so the
kernel algorithm of Dayal & MacGregor (1997, J. Chemometrics 11:73, "improved PLS algorithms",
algorithm 1) computes the same coefficients from moments; the moments of a training set are sums
of per-image moments, so every fold costs O(D^2 x components) instead of O(rows x D x iterations).

Equality with scikit-learn is tested (``tests/test_neural_metrics.py``): scikit-learn finds each weight
vector by power iteration to ``tol`` (1e-6; the paper's code passes 1e-4), this module by an exact
eigendecomposition, so they agree to that tolerance. ``engine="sklearn"`` in predictivity.py runs
scikit-learn itself.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from model_zoo.errors import InvalidInputError


@dataclass
class Moments:
    """Sufficient statistics of rows (x, y): count, sums, and the raw cross products.
    ``xx`` (D, D), ``xy`` (D, C); with a leading image axis when stacked per image."""

    n: np.ndarray
    sx: np.ndarray
    sy: np.ndarray
    xx: np.ndarray
    xy: np.ndarray

    def total(self, exclude: tuple[int, ...] | list[int] = ()) -> "Moments":
        """Sum over images (a stacked Moments), leaving out the images in ``exclude``: the grand
        sum minus the excluded images, so a leave-k-out fold costs k subtractions."""
        exclude = sorted(set(int(i) for i in exclude))
        if len(exclude) >= len(self.n):
            raise InvalidInputError("PLS: no training images left")
        if not hasattr(self, "_grand"):
            self._grand = tuple(a.sum(0) for a in (self.n, self.sx, self.sy, self.xx, self.xy))
        parts = [g - a[exclude].sum(0) for g, a in zip(self._grand, (self.n, self.sx, self.sy, self.xx, self.xy))]
        return Moments(*parts)


def image_moments(x: np.ndarray, y: np.ndarray) -> Moments:
    """Per-image moments of features ``x`` (N, L, D) and responses ``y`` (N, L, C), float64."""
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    if x.ndim != 3 or y.ndim != 3 or x.shape[:2] != y.shape[:2]:
        raise InvalidInputError(f"PLS: features (N, L, D) and responses (N, L, C) must match, got {x.shape} and {y.shape}")
    xt = x.transpose(0, 2, 1)
    return Moments(np.full(len(x), x.shape[1], np.float64), x.sum(1), y.sum(1), xt @ x, xt @ y)


@dataclass
class PLSModel:
    coef: np.ndarray      # (D, C): prediction = (x - x_mean) @ coef + y_mean
    x_mean: np.ndarray
    y_mean: np.ndarray
    n_components: int     # components actually extracted (fewer when the data run out of rank)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return (np.asarray(x, np.float64) - self.x_mean) @ self.coef + self.y_mean


def fit_moments(m: Moments, n_components: int) -> PLSModel:
    """PLS2 regression (centred, unscaled, Y deflated by the X scores: scikit-learn's
    ``PLSRegression(n_components, scale=False)``) from summed moments."""
    n = float(m.n)
    if n < 2:
        raise InvalidInputError("PLS: need at least two training rows")
    x_mean, y_mean = m.sx / n, m.sy / n
    xx = m.xx - n * np.outer(x_mean, x_mean)
    xy = m.xy - n * np.outer(x_mean, y_mean)
    d, c = xy.shape
    k_max = int(min(n_components, d, n - 1))
    scale = max(float(np.trace(xx)), np.finfo(float).tiny)
    rs, qs, ps = [], [], []
    for _ in range(k_max):
        if c == 1:
            w = xy[:, 0].copy()
        else:
            _, vecs = np.linalg.eigh(xy.T @ xy)
            w = xy @ vecs[:, -1]
        norm = np.linalg.norm(w)
        if norm <= 1e-12 * np.sqrt(scale):  # Y is fully explained (scikit-learn stops here too)
            break
        w /= norm
        r = w.copy()
        for rj, pj in zip(rs, ps):
            r -= (pj @ w) * rj
        xxr = xx @ r
        tt = float(r @ xxr)
        if tt <= 1e-12 * scale:  # X has no variance left along r: rank exhausted
            break
        p = xxr / tt
        q = (r @ xy) / tt
        xy = xy - tt * np.outer(p, q)
        rs.append(r)
        ps.append(p)
        qs.append(q)
    if not rs:
        coef = np.zeros((d, c))
    else:
        coef = np.stack(rs, 1) @ np.stack(qs, 0)
    return PLSModel(coef, x_mean, y_mean, len(rs))


def fit_sklearn(x: np.ndarray, y: np.ndarray, n_components: int, tol: float = 1e-6) -> PLSModel:
    """The reference: scikit-learn's ``PLSRegression(n, scale=False)`` on the rows themselves."""
    from sklearn.cross_decomposition import PLSRegression

    k = int(min(n_components, x.shape[1], x.shape[0] - 1))
    pls = PLSRegression(k, scale=False, tol=tol, max_iter=1000).fit(x, y)
    coef = np.asarray(pls.coef_, np.float64)
    if coef.shape != (x.shape[1], y.shape[1]):  # scikit-learn >= 1.3 stores (targets, features)
        coef = coef.T
    return PLSModel(coef, np.asarray(pls._x_mean, np.float64), np.asarray(pls.intercept_, np.float64).ravel(), k)
