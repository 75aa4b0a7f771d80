"""The demo's outcome over a sweep of seeds: each seed is a fresh demo (own data, own weights).

Per seed: test accuracy of the baseline and the harmonized CNN, their alignment and the center-bias
baseline's (fractions of the split-half ceiling), the three margins the demo's targets are about and
the wall time; then min / mean / max of each margin and whether every seed met every target
(``alignbench.demo.TARGETS``).

    python bench/bench_demo_seeds.py [--plan fast|full] [--seeds 0 1 2 3 4] [--set FIELD=VALUE ...]

``--set`` overrides a field of the plan (e.g. ``--set n_classes=3 --set epochs=20``) to try a variant.
"""
from __future__ import annotations

import argparse
import ast
import dataclasses
import statistics
import tempfile
import time
from pathlib import Path


def _value(text: str):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--plan", choices=("fast", "full"), default="fast")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE")
    ap.add_argument("--cache", type=Path, help="data/model cache (default: a fresh temporary folder)")
    args = ap.parse_args()

    from model_zoo.frameworks import import_torch

    import_torch()  # before TensorFlow
    from alignbench.demo import PLANS, run_demo, target_margins

    changes = dict(item.split("=", 1) for item in args.set)
    plan = dataclasses.replace(PLANS[args.plan], **{k: _value(v) for k, v in changes.items()})
    print(f"plan {args.plan}" + (f" with {changes}" if changes else ""))
    head = ("seed", "base acc", "harm acc", "base aln", "harm aln", "center", "d acc", "d aln-cb", "cb-base", "s")
    print(" ".join(f"{h:>8}" for h in head))
    margins: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        cache = args.cache or Path(tmp) / "cache"
        for seed in args.seeds:
            started = time.perf_counter()
            report = run_demo(Path(tmp) / f"results-{seed}", cache_dir=cache, progress=False,
                              plan=dataclasses.replace(plan, seed=seed))
            seconds = time.perf_counter() - started
            b, h = report.model(False), report.model(True)
            m = target_margins(report)
            margins.append(m)
            row = [seed, b.accuracy, h.accuracy, b.alignment, h.alignment, report.center_bias,
                   m["accuracy_gain"], m["alignment_over_center_bias"], m["center_bias_over_baseline"]]
            print(f"{seed:>8} " + " ".join(f"{100 * v:8.1f}" for v in row[1:]) + f" {seconds:8.0f}", flush=True)
    for key in margins[0]:
        values = [100 * m[key] for m in margins]
        print(f"{key:>28}: min {min(values):6.1f}  mean {statistics.mean(values):6.1f}  max {max(values):6.1f} "
              f"points (spread {max(values) - min(values):.1f})")
    from alignbench.demo import TARGETS

    ok = all(m[k] >= TARGETS[k] for m in margins for k in TARGETS)
    print(f"targets {', '.join(f'{k} >= {100 * v:g}' for k, v in TARGETS.items())} points: "
          f"{'met for every seed' if ok else 'NOT met for every seed'}")


if __name__ == "__main__":
    main()
