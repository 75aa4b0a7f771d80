"""Speed of the neural-predictivity inner loop, measured in one run (not a test).

On a panel the size of the paper's monkey 1 PL (14 images, 17x17 grid, 600 features after channel
reduction, 32 sites), prints:

  (1) speed-up of the moment-based PLS fit (``benchmark.neural.pls.fit_moments``) over scikit-learn's
      ``PLSRegression(25, scale=False)`` on the rows, for one leave-one-image-out fold
      (moments summed per fold; the per-image moments, computed once per layer, are timed apart)
                                                                                target >= 5x
  (2) the largest |prediction difference| between the two, relative to the prediction's scale
                                                                                target <= 1e-3
  (3) seconds to score one layer with nested layer selection (14 + 91 fits), and how that
      compares with 14 scikit-learn fits (the paper's non-nested loop)          target <= 1x
  (4) a cached layer read against a recomputed one (grid features of a random-weight ResNet-18
      block on 14 images)                                                       target >= 10x

Timings are best of ``--repeat`` runs (scikit-learn: one run).

    python bench/bench_neural.py [--repeat 3] [--no-torch]
"""
from __future__ import annotations

import argparse
import tempfile
import time
import timeit

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-torch", action="store_true", help="skip (4)")
    args = ap.parse_args()

    from threadpoolctl import threadpool_limits

    from benchmark.neural import pls
    from benchmark.neural import predictivity as pr

    rng = np.random.default_rng(0)
    n, g, d, s = 14, 17, 600, 32
    feats = rng.normal(size=(n, g, g, d)).astype(np.float32)
    x = pr.prepare_features(feats)
    y = x[..., :40] @ rng.normal(size=(40, s)) + rng.normal(size=(n, g * g, s))
    train = list(range(1, n))
    with threadpool_limits(1, user_api="blas"):  # as score_panel runs it
        t_mom_img = min(timeit.repeat(lambda: pls.image_moments(x, y), number=1, repeat=args.repeat))
        moments = pls.image_moments(x, y)
        t_fast = min(timeit.repeat(lambda: pls.fit_moments(moments.total([0]), 25), number=1, repeat=args.repeat))
    with threadpool_limits(1, user_api="blas"):  # same footing (threads only add contention here)
        start = time.perf_counter()  # one run: scikit-learn takes seconds per fit
        ref = pls.fit_sklearn(x[train].reshape(-1, d), y[train].reshape(-1, s), 25).predict(x[0])
        t_skl = time.perf_counter() - start
    fast = pls.fit_moments(moments.total([0]), 25).predict(x[0])
    err = float(np.abs(fast - ref).max() / np.abs(ref).max())
    start = time.perf_counter()
    pr.score_panel(y.reshape(n, g, g, s), {"layer": feats}, n_resamples=200)
    t_layer = time.perf_counter() - start
    print(f"(1) one fold: moments {t_fast * 1e3:.1f} ms (+ per-image moments {t_mom_img * 1e3:.0f} ms once per layer)"
          f" vs scikit-learn {t_skl * 1e3:.0f} ms: speed-up {t_skl / t_fast:.1f}x   target >= 5x")
    print(f"(2) max relative prediction difference {err:.2e}   target <= 1e-3")
    print(f"(3) one layer, nested selection (105 fits): {t_layer:.2f} s = {t_layer / (14 * t_skl):.2f}x the time of "
          f"14 scikit-learn fits   target <= 1x")

    if args.no_torch:
        return
    from benchmark.neural.activations import grid_features, model_key
    from model_zoo.frameworks import import_torch

    import_torch()
    import model_zoo

    adapter = model_zoo.load("tv_resnet18", weights="random")
    images = rng.uniform(0, 255, size=(14, 224, 224, 3)).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        key = model_key("tv_resnet18+random", None)
        kw = dict(image_fingerprint="b" * 64, key=key, cache_root=tmp)
        start = time.perf_counter()
        grid_features(adapter, images, ["layer3.1"], 17, **kw)
        t_miss = time.perf_counter() - start
        t_hit = min(timeit.repeat(lambda: grid_features(adapter, images, ["layer3.1"], 17, **kw), number=1,
                                  repeat=args.repeat))
    print(f"(4) cached layer {t_hit * 1e3:.1f} ms vs computed {t_miss * 1e3:.0f} ms: {t_miss / t_hit:.0f}x   target >= 10x")


if __name__ == "__main__":
    main()
