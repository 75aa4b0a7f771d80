"""GPU smoke check (not a test): is this GPU machine ready for ``alignbench run --all-models``?

Prints, in one run of a few minutes on a GPU:

  (1) Spearman parity: ``spearman_ranked`` of CUDA maps (the torch path) vs the numpy CPU path on
      the same maps, max |rho difference| (target <= 1e-9), and the time of each;
  (2) saliency images/s (float32, random weights) of ResNet-50 (``tv_resnet50``) and ViT-B/16
      (``timm_vit_base_patch16_224``), steady state after a warm-up batch, and of the ``fused``
      fast path (BatchNorm folded, NHWC) with its maps' min per-image Spearman against the eager
      maps (a ViT has no BatchNorm to fold: the path then only changes the layout);
  (3) prepared-data images/s: ``get_dataset(folder).batches(B)`` from a prepared copy of a generated
      ClickMe-format set;
  (4) a projection of the 85-model ClickMe-val run in GPU-hours: per model, images / (saliency rate)
      + images / (prepared rate) + Spearman time, the saliency rate taken as the mean of the two
      measured networks' seconds per image (CNNs and transformers in the catalog).

``--dry`` runs the same code on the CPU with tiny sizes (the torch Spearman algorithm on CPU
tensors, batch 2), to check the script itself where there is no GPU; its figures mean nothing.

    python bench/gpu_smoke.py [--dry] [--batch 64] [--images 1024] [--models 85] [--val-images N]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

# ClickMe-val: the paper's loader reads val-0..16; val-17 holds 256 images (shared/reference/
# paper-notes.md, item 10), so 17 shards of that size is the estimate unless --val-images says.
VAL_SHARDS, IMAGES_PER_VAL_SHARD = 17, 256


def timed(fn, rounds: int) -> float:
    """Median seconds of `fn` over `rounds` calls after one warm-up call."""
    fn()
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def spearman_parity(device: str, n: int, torch) -> float:
    from benchmark.ranking import rank_maps, spearman_ranked, spearman_ranked_torch

    rng = np.random.default_rng(0)
    human = np.maximum(rng.normal(size=(n, 224, 224)), 0).astype(np.float32)
    model = np.abs(rng.normal(size=(n, 224, 224))).astype(np.float32)
    model[:, :32] = 0.0  # dead regions: a long tie, as in ReLU saliency
    ranked = rank_maps(human)
    on_device = torch.as_tensor(model, device=device)

    def gpu() -> np.ndarray:
        out = spearman_ranked_torch(ranked, on_device)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        return out

    cpu_rho, dev_rho = spearman_ranked(ranked, model), gpu()
    diff = float(np.nanmax(np.abs(cpu_rho - dev_rho)))
    t_cpu, t_dev = timed(lambda: spearman_ranked(ranked, model), 3), timed(gpu, 3)
    print(f"(1) Spearman {device} vs CPU: max |diff| {diff:.1e} over {n} maps "
          f"({'OK' if diff <= 1e-9 else 'MISMATCH'}); {device} {t_dev / n * 1e3:.3f} ms/map, "
          f"CPU {t_cpu / n * 1e3:.3f} ms/map", flush=True)
    return t_dev / n


def saliency_rate(model_id: str, device: str, batch: int, rounds: int) -> tuple[float, float | None]:
    """(float32 eager saliency img/s, img/s of the ``fused`` fast path or None where the network has
    none); the fused maps' agreement with the eager maps is printed beside it."""
    import model_zoo
    from benchmark.metrics import spearman
    from model_zoo.errors import InvalidInputError

    adapter = model_zoo.load(model_id, weights="random", device=device, batch_size=batch)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (batch, 224, 224, 3)).astype(np.float32)
    labels = rng.integers(0, 1000, batch)
    rate = batch / timed(lambda: adapter.saliency(x, labels), rounds)
    print(f"(2) saliency {model_id}: {rate:.1f} img/s (float32, batch {batch}, {device})", flush=True)
    eager_maps = adapter.saliency(x, labels)
    try:
        adapter.set_fast_path("fused")  # the same weights, BatchNorm folded, NHWC
    except InvalidInputError as exc:
        print(f"    fast path fused: none for {model_id} ({exc})", flush=True)
        return rate, None
    fused = batch / timed(lambda: adapter.saliency(x, labels), rounds)
    agreement = float(np.nanmin(spearman(adapter.saliency(x, labels), eager_maps)))
    print(f"    fast path fused: {fused:.1f} img/s ({fused / rate:.2f}x eager), min per-image Spearman vs eager "
          f"maps {agreement:.6f}", flush=True)
    return rate, fused


def prepared_rate(n_images: int, batch: int) -> float:
    import os

    from benchmark.datasets import get_dataset
    from benchmark.datasets.synthetic import write_clickme_shards

    saved = os.environ.get("ALIGNBENCH_CACHE")
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["ALIGNBENCH_CACHE"] = str(Path(tmp) / "cache")  # a private cache: the copy is written here
        try:
            folder = Path(tmp) / "smoke-val"
            write_clickme_shards(folder, n_images, n_shards=1, seed=0)
            for _ in get_dataset(str(folder)).batches(batch):  # the first pass writes the prepared copy
                pass
            rate = n_images / timed(lambda: [b.images.shape for b in get_dataset(str(folder)).batches(batch)], 2)
        finally:
            if saved is None:
                os.environ.pop("ALIGNBENCH_CACHE", None)
            else:
                os.environ["ALIGNBENCH_CACHE"] = saved
    print(f"(3) prepared data: {rate:.0f} img/s (batch {batch}, {n_images} generated images)", flush=True)
    return rate


def project(n_models: int, n_images: int, sal_rates: list[float], data_rate: float, spearman_s: float) -> float:
    """GPU-hours of n_models x n_images: per image, the mean saliency seconds of the measured
    networks, one prepared-data read and one Spearman."""
    per_image = statistics.mean(1.0 / r for r in sal_rates) + 1.0 / data_rate + spearman_s
    hours = n_models * n_images * per_image / 3600.0
    print(f"(4) projection: {n_models} models x {n_images} ClickMe-val images x {per_image * 1e3:.2f} ms/image "
          f"= {hours:.2f} GPU-hours", flush=True)
    return hours


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dry", action="store_true", help="CPU, tiny sizes: checks the script, not the GPU")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--images", type=int, default=1024, help="generated images for the prepared-data rate")
    parser.add_argument("--models", type=int, default=85)
    parser.add_argument("--val-images", type=int, default=VAL_SHARDS * IMAGES_PER_VAL_SHARD)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--saliency-models", default="tv_resnet50,timm_vit_base_patch16_224",
                        help="catalog ids timed for (2) (random weights)")
    args = parser.parse_args(argv)
    from model_zoo.frameworks import import_torch

    torch = import_torch()
    if args.dry:
        device, batch, images, rounds, n_maps = "cpu", 2, 32, 1, 4
    else:
        if not torch.cuda.is_available():
            raise SystemExit("gpu_smoke: no CUDA device visible to PyTorch (use --dry to check the script on a CPU)")
        device, batch, images, rounds, n_maps = "cuda", args.batch, args.images, args.rounds, 256
        print(f"GPU: {torch.cuda.get_device_name(0)}, torch {torch.__version__}", flush=True)
    spearman_s = spearman_parity(device, n_maps, torch)
    model_ids = args.saliency_models.split(",")
    measured = [saliency_rate(m, device, batch, rounds) for m in model_ids]
    rates = [eager for eager, _ in measured]
    data = prepared_rate(images, batch)
    hours = project(args.models, args.val_images, rates, data, spearman_s)
    fused = {f"{m} fused": f for m, (_, f) in zip(model_ids, measured) if f is not None}
    return {"spearman_s": spearman_s, **dict(zip(model_ids, rates)), **fused, "prepared": data, "gpu_hours": hours}


if __name__ == "__main__":
    main()
