"""``alignbench data download|generate|info|prepare``: fetch, synthesise, inspect and prepare datasets."""
from __future__ import annotations

import argparse
import json
import os
from typing import Sequence

from alignbench.cli import options


def register(subparsers: argparse._SubParsersAction) -> None:
    data = subparsers.add_parser("data", help="download, generate or inspect ClickMe-format datasets",
                                 description="Download, generate or inspect ClickMe-format datasets.")
    sub = data.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    dl = sub.add_parser("download", help="fetch a named dataset's shards into the cache (resumable)",
                        description="Fetch a named dataset's shards into $ALIGNBENCH_CACHE/clickme/<split> "
                        "(resumes partial files; checks sizes and sha256 when known).")
    dl.add_argument("name", nargs="?", default="clickme-val", help="dataset name (default: clickme-val); "
                    "see `alignbench data info --list`")
    dl.add_argument("--mirror", help="base URL or local folder replacing the official location")
    options.add_offline(dl)
    dl.set_defaults(handler=_download)

    gen = sub.add_parser("generate", help="write a SYNTHETIC dataset of any kind the suite reads",
                         description="Write a generated dataset, marked synthetic, that `alignbench run --dataset "
                         "OUT` reads: ClickMe-format shards (official schema plus per-participant maps; default), a "
                         "Clicktionary release, a psychophysics stimulus folder with simulated human responses, or "
                         "IT recordings in the .npz format (OUT ends in .npz).")
    gen.add_argument("out_dir", metavar="OUT", help="folder to write into (a .npz file for --kind neural)")
    gen.add_argument("--kind", choices=GENERATED_KINDS, default="clickme",
                     help="what to generate (default clickme)")
    gen.add_argument("--images", type=int, help="number of images (default 256; clicktionary and psychophysics 20; "
                     "neural 24)")
    gen.add_argument("--shards", type=int, default=2, help="clickme: number of shards (default 2)")
    gen.add_argument("--participants", type=int, default=6,
                     help="simulated participants per image (clickme, clicktionary; default 6)")
    gen.add_argument("--classes", type=int, default=10, help="classes, spread over ImageNet 0..999 (default 10)")
    gen.add_argument("--split", default="val", help="shard name prefix (default val)")
    gen.add_argument("--shortcut", type=float, default=0.0,
                     help="probability that the background colour gives the class away (default 0: no cue)")
    gen.add_argument("--seed", type=int, default=0, help="random seed (the same seed writes the same bytes; default 0)")
    gen.set_defaults(handler=_generate)

    info = sub.add_parser("info", help="image count, fingerprint, skipped records, prepared copy of a dataset",
                          description="Validate a dataset (cached) and print its summary: every record a run "
                          "would skip, with its reason and id, and the state of its prepared copy. Exit code 1 "
                          "when the dataset has no valid record.")
    info.add_argument("name", nargs="?", help="dataset name or folder / .tfrecords path")
    info.add_argument("--list", action="store_true", help="list the named datasets")
    options.add_offline(info)
    info.add_argument("--json", action="store_true", help="print JSON")
    info.set_defaults(handler=_info)

    prep = sub.add_parser("prepare", help="write a dataset's prepared copy now (otherwise the first run does)",
                          description="Decode and preprocess every valid record once into the prepared copy "
                          "under $ALIGNBENCH_CACHE/prepared/, which every later run reads instead of the shards "
                          "(the same batches, bit for bit). Runs write it anyway on their first full pass; this "
                          "does it ahead, e.g. on a CPU node before GPU jobs. ALIGNBENCH_PREPARED=0 turns "
                          "prepared copies off.")
    prep.add_argument("name", help="dataset name or folder / .tfrecords path / Clicktionary release")
    options.add_offline(prep)
    prep.set_defaults(handler=_prepare)


def _download(args: argparse.Namespace) -> int:
    from benchmark.datasets.install import download_dataset

    files = download_dataset(args.name, mirror=args.mirror, download=not args.offline)
    print(f"{args.name}: {describe_files(files)}")
    return 0


def describe_files(files: Sequence[str | os.PathLike]) -> str:
    """One phrase for a dataset's files: "17 shards in DIR" for TFRecord shards, "file PATH" for one
    manifest / recording file, "3 files in DIR" otherwise -- singular when there is one."""
    from pathlib import Path

    paths = [Path(f) for f in files]
    if not paths:
        return "no files"
    folder = Path(os.path.commonpath([str(p.parent) for p in paths]))
    if all(p.name.endswith(".tfrecords") for p in paths):
        return f"{_count(len(paths), 'shard')} in {folder}"
    if len(paths) == 1:
        return f"file {paths[0]}"
    return f"{len(paths)} files in {folder}"


GENERATED_KINDS = ("clickme", "clicktionary", "psychophysics", "neural")


def _generate(args: argparse.Namespace) -> int:
    from pathlib import Path

    out = Path(args.out_dir)
    if args.kind == "clickme":
        from benchmark.datasets.synthetic import write_clickme_shards

        n = args.images or 256
        paths = write_clickme_shards(out, n, n_shards=args.shards, n_participants=args.participants,
                                     seed=args.seed, split=args.split, n_classes=args.classes, shortcut=args.shortcut)
        print(f"wrote {n} SYNTHETIC images in {len(paths)} shards to {paths[0].parent}")
    elif args.kind == "clicktionary":
        from benchmark.datasets.clicktionary import write_synthetic_release

        n = args.images or 20
        write_synthetic_release(out, n, n_participants=args.participants, seed=args.seed)
        print(f"wrote a SYNTHETIC Clicktionary release of {n} images to {out}")
    elif args.kind == "psychophysics":
        from benchmark.psychophysics.synthetic import write_synthetic_psychophysics

        n = args.images or 20
        write_synthetic_psychophysics(out, n, seed=args.seed)
        print(f"wrote SYNTHETIC psychophysics stimuli of {n} images and simulated human responses to {out}")
    else:
        from benchmark.neural.synthetic import write_synthetic_recordings

        if out.suffix != ".npz":
            from model_zoo.errors import InvalidInputError

            raise InvalidInputError(f"--kind neural writes one .npz file: {out} does not end in .npz")
        n = args.images or 24
        write_synthetic_recordings(out, n_images=n, seed=args.seed)
        print(f"wrote SYNTHETIC IT recordings of {n} images to {out}")
    print(f"score a model on it: alignbench run --dataset {out} --model MODEL")
    return 0


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _info(args: argparse.Namespace) -> int:
    from benchmark.datasets import get_dataset, list_datasets

    if args.list or not args.name:
        for name in list_datasets():
            print(name)
        return 0
    ds = get_dataset(args.name, download=not args.offline)
    info = ds.info()
    usable = bool(info["images"])
    if args.json:
        print(json.dumps(info, indent=2))
        return 0 if usable else 1
    print(f"{info['name']}{'  (SYNTHETIC)' if info['synthetic'] else ''}")
    print(f"  {describe_files(info['files'])}")
    print(f"  {_count(info['images'], 'image')} ({_count(info['records'], 'record')}), "
          f"fingerprint {info['fingerprint']}")
    print(f"  participant maps: {'yes' if info['has_participant_maps'] else 'no'}")
    skips = getattr(ds, "skips", None)
    for line in describe_skips(skips.to_dict() if skips is not None else {}):
        print(f"  {line}")
    if info.get("prepared") is not None:
        print(f"  {describe_prepared(info['prepared'])}")
    if not usable:
        print(f"  no valid record: a run of {info['name']} would score nothing")
        return 1
    return 0


def describe_skips(skips: dict) -> list[str]:
    """Lines for a SkipReport dict: the total, then one line per reason with its count and ids."""
    total = int(skips.get("total") or 0)
    if not total:
        return ["no records skipped"]
    lines = [f"{_count(total, 'record')} skipped (a run leaves out exactly these):"]
    for reason, n in sorted((skips.get("counts") or {}).items()):
        shown = list((skips.get("examples") or {}).get(reason) or [])
        more = f", ... ({n - len(shown)} more)" if n > len(shown) else ""
        lines.append(f"  {n} {reason}: {', '.join(shown)}{more}")
    return lines


def describe_prepared(status: dict) -> str:
    """One line for a dataset's ``prepared_status()``."""
    if not status.get("enabled"):
        return "prepared copy: off (ALIGNBENCH_PREPARED=0 or prepared=False)"
    done, units = int(status.get("prepared") or 0), int(status.get("units") or 0)
    if not done:
        return f"prepared copy: none yet (the first full pass writes it to {status.get('folder')})"
    n_bytes = int(status.get("bytes") or 0)
    size = f"{n_bytes / 1e9:.2f} GB" if n_bytes >= 1e8 else f"{n_bytes / 1e6:.1f} MB"
    return f"prepared copy: {done} of {_count(units, status.get('unit') or 'unit')} ({size}) in {status.get('folder')}"


def _prepare(args: argparse.Namespace) -> int:
    from benchmark.datasets import get_dataset

    ds = get_dataset(args.name, download=not args.offline)
    prepare = getattr(ds, "prepare", None)
    if prepare is None:
        print(f"{args.name}: this kind of dataset has no prepared copy (only ClickMe shards and Clicktionary)")
        return 1
    print(f"{ds.name}: {describe_prepared(prepare())}")
    return 0
