"""End-to-end `run` throughput versus the model's own saliency cost (issue 4's pipeline target).

Generates a ClickMe-format dataset, then measures in one process:
  t_e2e  = seconds per image of the whole job (`benchmark.job.Job.run`: the path of every `run`) (decode, preprocess, saliency,
           scoring, chunk writes), ResNet-50 with random weights on CPU;
  t_sal  = seconds per image of `adapter.saliency` alone on batches already in memory.
Prints t_e2e / t_sal (target <= 1.05, issue 17: the data pipeline and scoring hide behind model compute).

    python bench/bench_run_pipeline.py [--images 256] [--batch-size 16] [--model tv_resnet50] [--rounds 3]
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--model", default="tv_resnet50")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    import model_zoo
    from benchmark.datasets import get_dataset
    from benchmark.job import Job, JobConfig
    from benchmark.tasks.maps import MapsTask
    from benchmark.datasets.synthetic import write_clickme_shards

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_clickme_shards(tmp / "bench-set", args.images, n_shards=4, seed=0)
        dataset = get_dataset(str(tmp / "bench-set"))
        adapter = model_zoo.load(args.model, weights="random", device="cpu")
        # warm-up (first-call tracing / allocator) outside both timings
        first = next(iter(dataset.batches(args.batch_size, limit=args.batch_size)))
        adapter.saliency(first.images, first.labels)
        batches = list(dataset.batches(args.batch_size))

        sal, e2e = [], []
        # Interleaved rounds, medians: other processes slow both measurements alike.
        for r in range(args.rounds):
            t0 = time.perf_counter()
            for b in batches:
                adapter.saliency(b.images, b.labels)
            sal.append((time.perf_counter() - t0) / args.images)

            task, results = MapsTask(dataset), tmp / f"results-{r}"
            refs = task.ensure_references(results)
            config = JobConfig(results_dir=results, weights="random", device="cpu", batch_size=args.batch_size)
            t0 = time.perf_counter()
            outcome = Job(task, args.model, config, references=refs, loader=lambda *a, **k: adapter).run()
            e2e.append((time.perf_counter() - t0) / args.images)
            assert outcome.status == "ok", outcome.error
            assert outcome.record["n_images"] == args.images
            print(f"round {r + 1}: e2e/saliency {e2e[-1] / sal[-1]:.3f}")

    t_sal, t_e2e = statistics.median(sal), statistics.median(e2e)
    print(f"model {args.model} (random weights), {args.images} images, batch {args.batch_size}, CPU, "
          f"median of {args.rounds} interleaved rounds")
    print(f"saliency only      : {1000 * t_sal:.1f} ms/image")
    print(f"end-to-end run     : {1000 * t_e2e:.1f} ms/image")
    print(f"ratio e2e/saliency : {t_e2e / t_sal:.3f}  (target <= 1.05)")


if __name__ == "__main__":
    main()
