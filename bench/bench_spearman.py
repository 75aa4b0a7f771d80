"""Speed of the Spearman inner loop, measured in one run (not a test).

For 64 pairs of 224x224 float32 maps (model map vs human map), in four flavours (continuous
random values; ReLU-like maps with about half the pixels exactly zero; coarsely quantised maps
with ~20 distinct values, half of them zero; maps of 8 integer levels, ranked by counting rather
than sorting), prints:

  (1) speed-up of ``benchmark.metrics.spearman_ranked`` (human maps ranked once beforehand, as the
      suite does for every model) over a per-image ``scipy.stats.spearmanr`` loop   target >= 4x
  (2) its time divided by a plain ``np.sort`` of the same model maps along the last axis
                                                                                   target <= 3x
  (3) the largest |rho - scipy's rho|                                              target <= 1e-6

and, for reference, ``spearman(a, b)`` which ranks both stacks, and (2) with each permutation-sort
kernel forced (``$ALIGNBENCH_SORT_KERNEL``: radix / packed; ``ranked`` uses ``auto``, the kernel
timed fastest on this CPU, once per process and map size). The candidates are timed in
interleaved rounds (one run of each per round) and each time is the median over ``--repeat``
rounds, so a burst of load from other processes hits all of them alike and moves the ratios
little. ``u64/sort`` times the packed kernel's sort alone, of every pixel as a (key << 32 | value)
word (nothing before or after): for continuous maps without zeros (``random``), the floor under (2)
of any exact ranking that sorts each pixel with what it carries; where numpy's float32 sort is much
faster than its uint64 sort (AVX-512), no such method gets below it. Maps with zeros or few
values sort fewer pixels, or none (counting), so for them it is no floor. With ``--cuda`` and a
GPU, the torch path is timed too.

    python bench/bench_spearman.py [--n 64] [--size 224] [--repeat 7]
"""
from __future__ import annotations

import argparse
import os
import time
import warnings
from typing import Callable

import numpy as np
from scipy import stats

from benchmark.metrics import rank_maps, spearman, spearman_ranked
from benchmark.ranking import SORT_KERNEL_ENV


def make_maps(kind: str, n: int, size: int, rng: np.random.Generator) -> np.ndarray:
    if kind == "random":
        return rng.random((n, size, size), dtype=np.float32)
    if kind == "relu-zeros":
        return np.maximum(rng.normal(size=(n, size, size)), 0).astype(np.float32)
    if kind == "quantised":
        return np.maximum(np.round(rng.normal(size=(n, size, size)) * 4) / 4, 0).astype(np.float32)
    if kind == "8-levels":
        return rng.integers(1, 9, size=(n, size, size)).astype(np.float32)
    raise ValueError(kind)


def interleaved_medians(fns: dict[str, Callable[[], object]], repeat: int) -> dict[str, float]:
    """Median wall time of each function over `repeat` rounds; each round runs every function
    once, in turn."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: float(np.median(t)) for name, t in times.items()}


def scipy_loop(model: np.ndarray, human: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.array([stats.spearmanr(m.ravel(), h.ravel())[0] for m, h in zip(model, human)])


def forced(ranked, model: np.ndarray, kernel: str) -> np.ndarray:
    """spearman_ranked with the permutation-sort kernel forced."""
    saved = os.environ.get(SORT_KERNEL_ENV)
    os.environ[SORT_KERNEL_ENV] = kernel
    try:
        return spearman_ranked(ranked, model)
    finally:
        if saved is None:
            del os.environ[SORT_KERNEL_ENV]
        else:
            os.environ[SORT_KERNEL_ENV] = saved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=64, help="pairs of maps (default 64)")
    parser.add_argument("--size", type=int, default=224, help="map side (default 224)")
    parser.add_argument("--repeat", type=int, default=7, help="interleaved timing rounds, median taken")
    parser.add_argument("--cuda", action="store_true", help="also time the torch path on a GPU")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    human = make_maps("relu-zeros", args.n, args.size, rng)  # blurred click maps have ties too
    ranked = rank_maps(human)
    print(f"{args.n} pairs of {args.size}x{args.size} float32 maps; median of {args.repeat} interleaved rounds")
    header = (f"{'model maps':<11} {'scipy loop':>10} {'ranked':>8} {'np.sort':>8} "
              f"{'(1) speed-up':>12} {'(2) / sort':>10} {'(3) max|diff|':>13} {'spearman(a,b)':>13} "
              f"{'radix/sort':>10} {'packed/sort':>10} {'u64/sort':>9}")
    print(header)
    for kind in ("random", "relu-zeros", "quantised", "8-levels"):
        model = make_maps(kind, args.n, args.size, rng)
        flat = model.reshape(args.n, -1)
        packed = (flat.view(np.uint32).astype(np.uint64) << np.uint64(32)) | np.arange(flat.shape[1], dtype=np.uint64)
        want = scipy_loop(model, human)
        got = spearman_ranked(ranked, model)
        diff = float(np.nanmax(np.abs(got - want)))
        assert np.array_equal(np.isnan(got), np.isnan(want))
        t = interleaved_medians({
            "scipy": lambda: scipy_loop(model, human),
            "ours": lambda: spearman_ranked(ranked, model),
            "sort": lambda: np.sort(flat, axis=-1),
            "u64": lambda: np.sort(packed, axis=-1),
            "both": lambda: spearman(model, human),
            "radix": lambda: forced(ranked, model, "radix"),
            "packed": lambda: forced(ranked, model, "packed"),
        }, args.repeat)
        t_scipy, t_ours, t_sort, t_both = t["scipy"], t["ours"], t["sort"], t["both"]
        print(f"{kind:<11} {t_scipy * 1e3:>8.1f}ms {t_ours * 1e3:>6.1f}ms {t_sort * 1e3:>6.1f}ms "
              f"{t_scipy / t_ours:>11.1f}x {t_ours / t_sort:>9.2f}x {diff:>13.1e} {t_both * 1e3:>11.1f}ms "
              f"{t['radix'] / t_sort:>9.2f}x {t['packed'] / t_sort:>9.2f}x {t['u64'] / t_sort:>8.2f}x")
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

            print(f"cuda {kind:<11} {interleaved_medians({'run': run}, args.repeat)['run'] * 1e3:.2f}ms")


if __name__ == "__main__":
    main()
