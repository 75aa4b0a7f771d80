"""Cost of the adapters' saliency over the framework's own forward + input-gradient pass (not a test).

For ResNet-50 with random weights, a batch of ``--batch`` 224x224 images, on the CPU, prints

  (1) torch: ``load("tv_resnet50").saliency`` time / a bare ``torch.autograd.grad`` of the target
      logits with respect to an already-normalised NCHW input, parameters frozen      target <= 1.10
  (2) keras: ``load("keras_resnet50").saliency`` time / a bare ``tf.GradientTape`` of the target
      logits inside one ``tf.function``                                               target <= 1.10

The adapter's extra work (NHWC -> NCHW, normalisation in the graph, |grad| max over channels, numpy
conversion, input checks) is what the ratio measures. Adapter and bare runs are interleaved, each
pair ``--repeat`` times after a warm-up, and the median of the per-pair ratios is printed (other
processes on the machine slow both members of a pair alike).

``--precision`` (default: bfloat16) also prints, for the torch ResNet-50, the speed-up of that
autocast precision over float32 and the change it causes in the mean Spearman rho between model and
human maps on a generated ClickMe-format set (``benchmark.datasets.synthetic``), so users can decide.

``--maps`` (default on) prints the map-level agreement of bfloat16 autocast with float32 on a real
ImageNet-pretrained network (EfficientNet-Lite0 from the ``test`` extra, scikit-image's photographs,
each explained for its float32 top-1 class): the per-image Spearman rho between the bf16 and the fp32
saliency maps (min / median), and whether the top-1 class changes. A mean score can hide it.

``--fast-paths`` (e.g. ``channels_last,compile,fused,batch2x``) prints instead, per float32 fast
path (:data:`model_zoo.adapters.base.FAST_PATHS`, and ``batch2x``: eager with twice the batch): the
speed-up per image over today's float32 eager path for the torch ResNet-50 (random weights; median
of interleaved per-round ratios) and the minimum per-image Spearman rho of its maps against the
eager maps, on that ResNet-50 and on the pretrained EfficientNet-Lite0 (scikit-image's photographs).
Target: >= 1.5x at agreement >= 0.999 on both; a faster path below 0.999 is reported, not made the
default.

    nice python bench/bench_saliency.py [--batch 32] [--repeat 5] [--precision bfloat16|none]
                                        [--frameworks torch,keras] [--images 32] [--maps | --no-maps]
                                        [--fast-paths channels_last,compile,fused,batch2x]
    (the maps part alone: python bench/bench_saliency.py --frameworks none --precision none)
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import model_zoo
from model_zoo.adapters.base import DEFAULT_BATCH_SIZE
from model_zoo.frameworks import import_tensorflow, import_torch


def interleaved(fns: dict[str, callable], repeat: int) -> dict[str, list[float]]:
    """Seconds of each function per round, rounds interleaved (one warm-up round first)."""
    for fn in fns.values():
        fn()
    out: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            t = time.perf_counter()
            fn()
            out[name].append(time.perf_counter() - t)
    return out


def report(label: str, times: dict[str, list[float]], num: str, den: str, target: float | None) -> float:
    ratios = [a / b for a, b in zip(times[num], times[den])]
    med = statistics.median(ratios)
    verdict = "" if target is None else ("  OK" if med <= target else f"  OVER target {target}")
    print(f"{label}: median {num} {statistics.median(times[num]):.3f}s, {den} {statistics.median(times[den]):.3f}s, "
          f"ratio {med:.3f} (per-round {', '.join(f'{r:.3f}' for r in ratios)}){verdict}", flush=True)
    return med


def bench_torch(x: np.ndarray, labels: np.ndarray, repeat: int) -> float:
    torch = import_torch()
    adapter = model_zoo.load("tv_resnet50", weights="random")
    module = adapter.module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
    from model_zoo.preprocessing_torch import TorchPreprocess  # the adapter's own preprocessing, done ahead

    x_nchw = TorchPreprocess(adapter.preprocess)(torch.from_numpy(x).permute(0, 3, 1, 2)).contiguous()
    index = torch.from_numpy(labels).view(-1, 1)

    def bare():
        xi = x_nchw.detach().requires_grad_(True)
        logits = module(xi)
        (grad,) = torch.autograd.grad(logits.gather(1, index).sum(), xi)
        return grad

    times = interleaved({"adapter": lambda: adapter.saliency(x, labels), "bare": bare}, repeat)
    return report(f"torch ResNet-50 saliency, batch {len(x)}, {torch.get_num_threads()} threads",
                  times, "adapter", "bare", 1.10)


def bench_keras(x: np.ndarray, labels: np.ndarray, repeat: int) -> float:
    tf = import_tensorflow()
    adapter = model_zoo.load("keras_resnet50", weights="random")
    model = adapter.logits_model
    from model_zoo.preprocessing_tf import TFPreprocess  # the adapter's own preprocessing, done ahead

    x_model = tf.constant(TFPreprocess(adapter.preprocess)(tf.constant(x)))  # caffe: BGR, mean
    y = tf.constant(labels)

    @tf.function
    def bare_fn(xi, yi):
        with tf.GradientTape() as tape:
            tape.watch(xi)
            logits = model(xi, training=False)
            target = tf.reduce_sum(tf.gather(logits, yi, batch_dims=1))
        return tape.gradient(target, xi)

    times = interleaved({"adapter": lambda: adapter.saliency(x, labels),
                         "bare": lambda: bare_fn(x_model, y).numpy()}, repeat)
    return report(f"keras ResNet-50 saliency, batch {len(x)}", times, "adapter", "bare", 1.10)


def bench_precision(precision: str, n_images: int, batch: int, repeat: int) -> None:
    from benchmark.datasets import get_dataset
    from benchmark.datasets.synthetic import write_clickme_shards
    from benchmark.metrics import spearman

    with tempfile.TemporaryDirectory() as tmp:
        write_clickme_shards(Path(tmp) / "synthetic-val", n_images, n_shards=1, seed=0)
        data = list(get_dataset(str(Path(tmp) / "synthetic-val")).batches(batch))
    fp32 = model_zoo.load("tv_resnet50", weights="random")
    low = model_zoo.load("tv_resnet50", weights="random", precision=precision)
    first = data[0]
    times = interleaved({"float32": lambda: fp32.saliency(first.images, first.labels),
                         precision: lambda: low.saliency(first.images, first.labels)}, repeat)
    ratios = [a / b for a, b in zip(times["float32"], times[precision])]
    rho = {name: np.concatenate([spearman(a.saliency(b.images, b.labels), b.heatmaps) for b in data])
           for name, a in (("float32", fp32), (precision, low))}
    m32, mlow = float(np.nanmean(rho["float32"])), float(np.nanmean(rho[precision]))
    print(f"torch ResNet-50 {precision} autocast: speed-up over float32 {statistics.median(ratios):.2f}x "
          f"(median of {len(ratios)} interleaved rounds, batch {len(first)}); mean Spearman on {n_images} "
          f"generated images {m32:.4f} (float32) -> {mlow:.4f} ({precision}), change {mlow - m32:+.4f}; "
          f"per-image |change| max {np.nanmax(np.abs(rho[precision] - rho['float32'])):.4f}", flush=True)


PHOTOS = ("chelsea", "coffee", "astronaut", "rocket")  # the colour photographs bundled with scikit-image


def bench_bf16_maps(precision: str = "bfloat16") -> None:
    """Per-image Spearman of ``precision`` autocast maps against float32 maps, EfficientNet-Lite0."""
    from benchmark.metrics import spearman
    from model_zoo import wrap
    from model_zoo.explainers import Explainer

    _import_test_support()
    from tests.explainer_support import efficientnet_lite0 as lite

    module = lite.load_module()
    x = lite.photos(PHOTOS)
    fp32 = wrap(module, lite.PREPROCESS, batch_size=len(x))
    low = wrap(module, lite.PREPROCESS, batch_size=len(x), precision=precision)
    labels = fp32.predict(x).argmax(axis=1)
    rho = spearman(fp32.explain(x, labels, "saliency"), fp32.explain(x, labels, "paper-release"))
    print(f"EfficientNet-Lite0 (pretrained), {len(x)} photographs, float32: saliency (logit) vs paper-release "
          f"(probability) maps, per-image Spearman {', '.join(f'{r:.3f}' for r in rho)}", flush=True)
    for name in ("saliency", "paper-release", "smoothgrad"):
        spec = name if name != "smoothgrad" else Explainer(
            "sg16", method="smoothgrad", params={"samples": 16})
        (l32, m32), (llow, mlow) = fp32.predict_and_explain(x, labels, spec), low.predict_and_explain(x, labels, spec)
        rho = spearman(mlow, m32)
        print(f"EfficientNet-Lite0 (pretrained), {len(x)} photographs, {name}: {precision} vs float32 maps, per-image "
              f"Spearman min {rho.min():.3f} median {np.median(rho):.3f} ({', '.join(f'{r:.3f}' for r in rho)}); "
              f"top-1 changed for {int((llow.argmax(1) != l32.argmax(1)).sum())} of {len(x)}", flush=True)


def _import_test_support() -> None:
    """The pretrained EfficientNet-Lite0 loader lives with the tests (tests/explainer_support)."""
    root = str(Path(__file__).resolve().parents[1])
    if root not in sys.path:
        sys.path.insert(0, root)


def real_network_agreement(paths: list[str]) -> dict[str, float]:
    """{path: min per-image Spearman of its saliency maps vs float32 eager maps} on the pretrained
    EfficientNet-Lite0 (test extra) and scikit-image's photographs, each explained for its top-1 class."""
    import copy

    from benchmark.metrics import spearman
    from model_zoo import wrap

    _import_test_support()
    from tests.explainer_support import efficientnet_lite0 as lite

    module = lite.load_module()
    x = lite.photos(PHOTOS)
    eager = wrap(module, lite.PREPROCESS, batch_size=len(x))
    labels = eager.predict(x).argmax(axis=1)
    reference = eager.saliency(x, labels)
    out = {}
    for path in paths:
        if path == "batch2x":  # the same eager network: only the batch differs
            out[path] = float(np.nanmin(spearman(np.concatenate([eager.saliency(x[i:i + 1], labels[i:i + 1])
                                                                 for i in range(len(x))]), reference)))
            continue
        adapter = wrap(copy.deepcopy(module), lite.PREPROCESS, batch_size=len(x))
        adapter.set_fast_path(path)
        out[path] = float(np.nanmin(spearman(adapter.saliency(x, labels), reference)))
    return out


def bench_fast_paths(paths: list[str], batch: int, repeat: int) -> dict[str, tuple[float, float, float]]:
    """{path: (speed-up per image over float32 eager on ResNet-50, min per-image Spearman vs eager
    maps there, the same on the pretrained EfficientNet-Lite0)}."""
    import copy

    from benchmark.metrics import spearman
    from model_zoo.adapters.torch_adapter import TorchAdapter

    torch = import_torch()
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (2 * batch, 224, 224, 3)).astype(np.float32)
    labels = rng.integers(0, 1000, 2 * batch)
    eager = model_zoo.load("tv_resnet50", weights="random", batch_size=2 * batch)
    adapters = {}
    for path in paths:
        if path == "batch2x":
            continue
        adapter = TorchAdapter(copy.deepcopy(eager.module), eager.preprocess, spec=eager.spec, batch_size=2 * batch)
        adapter.set_fast_path(path)
        adapters[path] = adapter
    half = slice(0, batch)
    fns = {"eager": lambda: eager.saliency(x[half], labels[half])}
    for path, adapter in adapters.items():
        fns[path] = lambda a=adapter: a.saliency(x[half], labels[half])
    if "batch2x" in paths:
        fns["batch2x"] = lambda: eager.saliency(x, labels)
    compile_start = time.perf_counter()
    times = interleaved(fns, repeat)  # its warm-up round compiles
    print(f"fast paths: ResNet-50 random weights, batch {batch}, {torch.get_num_threads()} threads, "
          f"{repeat} interleaved rounds after a warm-up round of {time.perf_counter() - compile_start:.0f}s "
          f"(compilation included); map agreement also on the pretrained EfficientNet-Lite0, "
          f"{len(PHOTOS)} photographs", flush=True)

    def maps_of(adapter) -> np.ndarray:  # in calls of `batch` images: a compiled path keeps its one shape
        return np.concatenate([adapter.saliency(x[i:i + batch], labels[i:i + batch]) for i in (0, batch)])

    reference = maps_of(eager)
    real = real_network_agreement(paths)
    out = {}
    for path in paths:
        per_image = 2 if path == "batch2x" else 1  # batch2x does twice the images per call
        ratios = [e * per_image / p for e, p in zip(times["eager"], times[path])]
        maps = maps_of(adapters[path]) if path in adapters else eager.saliency(x, labels)
        agreement = float(np.nanmin(spearman(maps, reference)))
        speed = statistics.median(ratios)
        worst = min(agreement, real[path])
        verdict = "meets target" if speed >= 1.5 and worst >= 0.999 else (
            "faster but maps differ: not a default" if worst < 0.999 else "below 1.5x")
        print(f"  {path:<14} speed-up {speed:.2f}x (per-round {', '.join(f'{r:.2f}' for r in ratios)}), "
              f"min per-image Spearman vs eager: ResNet-50 {agreement:.6f}, EfficientNet-Lite0 (pretrained) "
              f"{real[path]:.6f}: {verdict}", flush=True)
        out[path] = (speed, agreement, real[path])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=DEFAULT_BATCH_SIZE,
                        help=f"images per call (default {DEFAULT_BATCH_SIZE}, what `alignbench run` uses: a fast "
                             "path's gain depends on it)")
    parser.add_argument("--repeat", type=int, default=5, help="interleaved rounds (median taken)")
    parser.add_argument("--frameworks", default="torch,keras")
    parser.add_argument("--precision", default="bfloat16", help="bfloat16, float16 (GPU) or none")
    parser.add_argument("--images", type=int, default=32, help="generated images for the Spearman change")
    parser.add_argument("--maps", action=argparse.BooleanOptionalAction, default=True,
                        help="bf16 vs fp32 map agreement on the pretrained EfficientNet-Lite0 (test extra)")
    parser.add_argument("--fast-paths", default="", help="comma list of channels_last, compile, fused, batch2x: "
                        "only the fast-path comparison runs")
    args = parser.parse_args()
    if args.fast_paths:
        bench_fast_paths(args.fast_paths.split(","), args.batch, args.repeat)
        return
    if args.maps:
        bench_bf16_maps(args.precision if args.precision != "none" else "bfloat16")
    x = np.random.default_rng(0).uniform(0, 255, (args.batch, 224, 224, 3)).astype(np.float32)
    labels = np.random.default_rng(1).integers(0, 1000, args.batch)
    frameworks = args.frameworks.split(",")
    if "torch" in frameworks:
        bench_torch(x, labels, args.repeat)
    if args.precision != "none":
        bench_precision(args.precision, args.images, args.batch, args.repeat)
    if "keras" in frameworks:
        bench_keras(x, labels, args.repeat)


if __name__ == "__main__":
    main()
