"""Speed of the Spearman inner loop, measured in one run (not a test).

For 64 pairs of 224x224 float32 maps (model map vs human map), in three flavours (continuous
random values; ReLU-like maps with about half the pixels exactly zero; coarsely quantised maps
with ~20 distinct values), prints:

  (1) speed-up of ``benchmark.metrics.spearman_ranked`` (human maps ranked once beforehand, as the
      suite does for every model) over a per-image ``scipy.stats.spearmanr`` loop   target >= 4x
  (2) its time divided by a plain ``np.sort`` of the same model maps along the last axis
                                                                                   target <= 3x
  (3) the largest |rho - scipy's rho|                                              target <= 1e-6

and, for reference, ``spearman(a, b)`` which ranks both stacks. Timings are best of
``--repeat`` runs (``timeit.repeat``), so noise from other processes inflates them less.
With ``--cuda`` and a GPU, the torch path is timed too.

    python bench/bench_spearman.py [--n 64] [--size 224] [--repeat 7]
"""
from __future__ import annotations

import argparse
import timeit
import warnings

import numpy as np
from scipy import stats

from benchmark.metrics import rank_maps, spearman, spearman_ranked


def make_maps(kind: str, n: int, size: int, rng: np.random.Generator) -> np.ndarray:
    if kind == "random":
        return rng.random((n, size, size), dtype=np.float32)
    if kind == "relu-zeros":
        return np.maximum(rng.normal(size=(n, size, size)), 0).astype(np.float32)
    if kind == "quantised":
        return np.maximum(np.round(rng.normal(size=(n, size, size)) * 4) / 4, 0).astype(np.float32)
    raise ValueError(kind)


def best(fn, repeat: int) -> float:
    return min(timeit.repeat(fn, number=1, repeat=repeat))


def scipy_loop(model: np.ndarray, human: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.array([stats.spearmanr(m.ravel(), h.ravel())[0] for m, h in zip(model, human)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=64, help="pairs of maps (default 64)")
    parser.add_argument("--size", type=int, default=224, help="map side (default 224)")
    parser.add_argument("--repeat", type=int, default=7, help="timing repeats, best taken")
    parser.add_argument("--cuda", action="store_true", help="also time the torch path on a GPU")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    human = make_maps("relu-zeros", args.n, args.size, rng)  # blurred click maps have ties too
    ranked = rank_maps(human)
    print(f"{args.n} pairs of {args.size}x{args.size} float32 maps; best of {args.repeat} runs")
    header = (f"{'model maps':<11} {'scipy loop':>10} {'ranked':>8} {'np.sort':>8} "
              f"{'(1) speed-up':>12} {'(2) / sort':>10} {'(3) max|diff|':>13} {'spearman(a,b)':>13}")
    print(header)
    for kind in ("random", "relu-zeros", "quantised"):
        model = make_maps(kind, args.n, args.size, rng)
        flat = model.reshape(args.n, -1)
        want = scipy_loop(model, human)
        got = spearman_ranked(ranked, model)
        diff = float(np.nanmax(np.abs(got - want)))
        assert np.array_equal(np.isnan(got), np.isnan(want))
        t_scipy = best(lambda: scipy_loop(model, human), max(2, args.repeat // 3))
        t_ours = best(lambda: spearman_ranked(ranked, model), args.repeat)
        t_sort = best(lambda: np.sort(flat, axis=-1), args.repeat)
        t_both = best(lambda: spearman(model, human), args.repeat)
        print(f"{kind:<11} {t_scipy * 1e3:>8.1f}ms {t_ours * 1e3:>6.1f}ms {t_sort * 1e3:>6.1f}ms "
              f"{t_scipy / t_ours:>11.1f}x {t_ours / t_sort:>9.2f}x {diff:>13.1e} {t_both * 1e3:>11.1f}ms")
    if args.cuda:
        import torch

        if not torch.cuda.is_available():
            print("--cuda: no GPU visible, skipped")
            return
        for kind in ("random", "quantised"):
            model = torch.as_tensor(make_maps(kind, args.n, args.size, rng), device="cuda")
            spearman_ranked(ranked, model)  # warm-up: copies the human ranks to the GPU once

            def run() -> None:
                spearman_ranked(ranked, model)
                torch.cuda.synchronize()

            print(f"cuda {kind:<11} {best(run, args.repeat) * 1e3:.2f}ms")


if __name__ == "__main__":
    main()
