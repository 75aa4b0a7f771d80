"""Time of one harmonized training step / one cross-entropy step (timm resnet18, CPU, same batch).

The harmonized step adds the saliency (input gradient with ``create_graph``) and the backward
through it, so ~3x is expected; issue 6's target is <= 3.0. Both steps share everything else:
one forward, the same optimizer, BN in training mode.

    python bench/bench_harmonizer_step.py [--batch 16] [--size 224] [--reps 5] [--channels-last]
"""
from __future__ import annotations

import argparse
import statistics
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="resnet18")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--channels-last", action="store_true")
    args = ap.parse_args()

    from model_zoo.frameworks import import_torch

    torch = import_torch()
    import timm

    from model_zoo.harmonization.loss_torch import decay_parameters, harmonizer_loss

    torch.manual_seed(0)
    model = timm.create_model(args.model, pretrained=False, num_classes=1000).train()
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, nesterov=True)
    decay = [p for _, p in decay_parameters(model)]
    x = torch.randn(args.batch, 3, args.size, args.size).contiguous(memory_format=fmt)
    y = torch.randint(0, 1000, (args.batch,))
    h = torch.rand(args.batch, args.size, args.size)
    t = (torch.arange(args.batch) % 5 == 0).float()  # ~20 % of images with a map, as the paper's mix

    def step(harmonize: bool) -> float:
        t0 = time.perf_counter()
        out = harmonizer_loss(model, x, y, h, t, decay_params=decay, harmonize=harmonize)
        opt.zero_grad(set_to_none=True)
        out["total"].backward()
        opt.step()
        return time.perf_counter() - t0

    for harmonize in (False, True):  # warm-up (allocator, oneDNN primitives)
        step(harmonize)
    ce, hz = [], []
    for _ in range(args.reps):  # interleaved so machine load affects both alike
        ce.append(step(False))
        hz.append(step(True))
    ce_t, hz_t = statistics.median(ce), statistics.median(hz)
    print(f"{args.model} batch {args.batch} {args.size}px CPU ({torch.get_num_threads()} threads)"
          f"{' channels_last' if args.channels_last else ''}")
    print(f"cross-entropy step {ce_t * 1000:.0f} ms | harmonized step {hz_t * 1000:.0f} ms")
    print(f"ratio harmonized / cross-entropy = {hz_t / ce_t:.2f} (target <= 3.0)")


if __name__ == "__main__":
    main()
