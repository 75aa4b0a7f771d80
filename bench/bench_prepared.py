"""Prepared-dataset throughput against today's tf.data pipeline, on the same generated images.

Generates a ClickMe-format dataset (own temporary cache), then measures in one process, in
interleaved rounds (medians, so load from other processes slows every variant alike):

  tfdata     images/s of ``dataset.batches(B)`` with ``prepared=False``, steady state (later passes;
             the first pass, TensorFlow start-up included, is reported apart);
  prepared   images/s of ``dataset.batches(B)`` reading the prepared copy (written by a first pass,
             whose rate is also reported);
  cast       images/s of merely casting the decoded uint8 arrays, held in memory, to float32 (the
             floor of any pipeline that hands out float32 batches);
  uint8+TF   images/s of the exact alternative storage: decoded uint8 256x256 images and heatmaps in
             memory, TF's resize (and blur chain) redone per batch (why the copy stores float32 rows);
  overlap    seconds of a pass whose consumer waits 20 ms per batch (a GPU busy with the batch),
             with the background reader and without it (``prefetch=0``).

Prints prepared / tfdata (target >= 10) and prepared images/s (target >= 2,000 on 2 CPU cores),
and checks that both paths hand out the same batches, bit for bit.

    python bench/bench_prepared.py [--images 512] [--batch-size 32] [--rounds 5]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def rate(fn, n_images: int) -> float:
    t0 = time.perf_counter()
    fn()
    return n_images / (time.perf_counter() - t0)


def drain(batches) -> None:
    for _ in batches:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    n, bs = args.images, args.batch_size

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        os.environ["ALIGNBENCH_CACHE"] = str(tmp / "cache")  # a cold, private cache
        import numpy as np

        import model_zoo  # noqa: F401  (the framework import guard)
        from benchmark.datasets import get_dataset, prepared, tf_ops
        from benchmark.datasets.synthetic import write_clickme_shards

        write_clickme_shards(tmp / "bench-set", n, n_shards=4, n_participants=2, seed=0)
        plain = get_dataset(str(tmp / "bench-set"), prepared=False)
        fast = get_dataset(str(tmp / "bench-set"), prepared=True)
        first_tf = rate(lambda: drain(plain.batches(bs)), n)
        first_prepared = rate(lambda: drain(fast.batches(bs)), n)  # the pass that writes the copy
        status = fast.prepared_status()
        assert status["prepared"] == status["units"], status

        # the same batches, bit for bit
        for a, b in zip(plain.batches(bs), fast.batches(bs), strict=True):
            assert a.ids == b.ids and np.array_equal(a.labels, b.labels)
            assert np.array_equal(a.images, b.images) and np.array_equal(a.heatmaps, b.heatmaps)

        # exact alternatives, from decoded uint8 arrays in memory
        tf = tf_ops.tf_module()
        images_u8, heat_u8 = decoded(plain.files())
        chunks = [(images_u8[s:s + bs], heat_u8[s:s + bs]) for s in range(0, n, bs)]

        def cast() -> None:
            for im, hm in chunks:
                im.astype(np.float32), hm.astype(np.float32)

        def tf_chain() -> None:
            for im, hm in chunks:
                tf_ops.preprocess_images_tf(tf.cast(im, tf.float32)).numpy()
                tf_ops.preprocess_heatmaps_tf(tf.cast(hm, tf.float32)).numpy()

        def consume(prefetch: int | None) -> float:
            units = fast.prepared_units()
            segs = [prepared.Segment(u, 0, len(u), [""] * len(u)) for u in units]
            t0 = time.perf_counter()
            for _ in prepared.read_batches(segs, bs, prefetch=prefetch):
                time.sleep(0.020)
            return time.perf_counter() - t0

        r = {k: [] for k in ("tfdata", "prepared", "cast", "uint8+TF", "overlap", "serial")}
        for _ in range(args.rounds):
            r["tfdata"].append(rate(lambda: drain(plain.batches(bs)), n))
            r["prepared"].append(rate(lambda: drain(fast.batches(bs)), n))
            r["cast"].append(rate(cast, n))
            r["uint8+TF"].append(rate(tf_chain, n))
            r["overlap"].append(consume(None))
            r["serial"].append(consume(0))
        med = {k: statistics.median(v) for k, v in r.items()}

        # why not uint8 224x224: the bilinear 256->224 resize makes non-integers
        im = next(fast.batches(bs)).images
        frac = float(np.mean(im != np.round(im)))
        waits = -(-n // bs) * 0.020

    print(f"{n} generated images, batch {bs}, {args.rounds} interleaved rounds (medians), "
          f"{os.cpu_count()} CPUs (shared: other processes may run)")
    print(f"  first pass:  tf.data {first_tf:8.0f} img/s (TensorFlow start-up included); "
          f"writing the prepared copy {first_prepared:8.0f} img/s")
    for k in ("tfdata", "prepared", "cast", "uint8+TF"):
        print(f"  {k:9s} {med[k]:8.0f} img/s   (rounds: {', '.join(f'{x:.0f}' for x in r[k])})")
    print(f"  prepared copy: {status['bytes'] / n / 1e6:.2f} MB per image; {100 * frac:.1f} % of the resized "
          "image values are not integers (uint8 224x224 cannot be exact)")
    print(f"  overlap: consumer waits {waits:.2f} s in all; pass takes {med['overlap']:.2f} s with the background "
          f"reader, {med['serial']:.2f} s without")
    print(f"prepared / tfdata steady state: {med['prepared'] / med['tfdata']:.1f}x (target >= 10)")
    print(f"prepared images/s: {med['prepared']:.0f} (target >= 2000)")


def decoded(files) -> tuple:
    """(images uint8 (N,256,256,3), heatmaps uint8 (N,256,256,1)) of every record, TF-decoded."""
    import numpy as np

    from benchmark.datasets import tf_ops

    tf = tf_ops.tf_module()
    images, heat = [], []
    for f in files:
        for raw in tf.data.TFRecordDataset(str(f)).as_numpy_iterator():
            feats = tf.train.Example.FromString(raw).features.feature
            images.append(tf.io.decode_jpeg(feats["image"].bytes_list.value[0]).numpy())
            heat.append(tf.io.decode_jpeg(feats["heatmap"].bytes_list.value[0]).numpy())
    return np.stack(images), np.stack(heat)


if __name__ == "__main__":
    main()
