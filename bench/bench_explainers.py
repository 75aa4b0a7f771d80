"""Cost of the many-pass explainers relative to as many saliency passes (not a test).

For a batch of ``--batch`` 224x224 images and ``--model`` (default ``tv_resnet18``, random weights),
prints, measured in one run with the calls interleaved (median of ``--repeat`` rounds after a warm-up):

  (1) SmoothGrad(n=16) time / (16 x saliency time)                 target <= 1.0
  (2) Integrated Gradients(n=16) time / (16 x saliency time)       target <= 1.0

A ratio <= 1 means the 16 noisy copies / path points of each image are batched through the network
(not a Python loop of single passes), and that building the copies, combining the gradients and the
extra clean forward pass (for the logits) cost less than batching saves.

    nice python bench/bench_explainers.py [--model tv_resnet18] [--batch 4] [--repeat 3] [--device cpu]
                                          [--adapter-batch 16]
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import model_zoo
from model_zoo.explainers import Explainer

SAMPLES = 16


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="tv_resnet18")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--adapter-batch", type=int, default=16,
                        help="the adapter's chunk: rows per pass (SmoothGrad/IG copies fill it)")
    args = parser.parse_args()
    adapter = model_zoo.load(args.model, weights="random", device=args.device, batch_size=args.adapter_batch)
    x = np.random.default_rng(0).uniform(0, 255, (args.batch, 224, 224, 3)).astype(np.float32)
    labels = np.random.default_rng(1).integers(0, 1000, args.batch)
    calls = {
        "saliency": lambda: adapter.explain(x, labels, "saliency"),
        "smoothgrad": lambda: adapter.explain(x, labels, Explainer("sg16", method="smoothgrad",
                                                                   params={"samples": SAMPLES})),
        "integrated-gradients": lambda: adapter.explain(x, labels, Explainer("ig16", method="integrated-gradients",
                                                                             params={"steps": SAMPLES})),
    }
    for fn in calls.values():
        fn()
    times: dict[str, list[float]] = {k: [] for k in calls}
    for _ in range(args.repeat):
        for name, fn in calls.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    base = statistics.median(times["saliency"])
    print(f"{args.model} (random weights) on {args.device}, batch {args.batch}, adapter batch size "
          f"{adapter.batch_size}: saliency {base:.3f}s (median of {args.repeat})")
    for name in ("smoothgrad", "integrated-gradients"):
        ratios = [t / (SAMPLES * s) for t, s in zip(times[name], times["saliency"])]
        med = statistics.median(ratios)
        verdict = "OK" if med <= 1.0 else "OVER target 1.0"
        print(f"{name}(n={SAMPLES}) {statistics.median(times[name]):.3f}s / ({SAMPLES} x saliency): ratio {med:.3f} "
              f"(per-round {', '.join(f'{r:.3f}' for r in ratios)})  {verdict}", flush=True)


if __name__ == "__main__":
    main()
