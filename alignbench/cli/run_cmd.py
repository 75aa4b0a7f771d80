"""``alignbench run``: score models on a human-map dataset and write result records."""
from __future__ import annotations

import argparse
from pathlib import Path

from alignbench.cli import options
from model_zoo.adapters.base import FAST_PATHS


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="score models on a dataset (ClickMe by default) and write records",
                       description="Score models on a human-map dataset. Records go to RESULTS/<dataset>/"
                       "<model>.json with per-image scores beside them; a killed run resumes where it stopped.")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--all-models", action="store_true", help="every model of the paper's catalog")
    which.add_argument("--model", nargs="+", metavar="ID", help="model ids (see `alignbench models list`)")
    which.add_argument("--family", nargs="+", metavar="F", help="all catalog models of these families")
    p.add_argument("--include-harmonized", action="store_true",
                   help="with --all-models: also the harmonized models (released ones, incl. 2023)")
    p.add_argument("--dataset", default="clickme-val", help=options.DATASET_HELP + " (default clickme-val)")
    p.add_argument("--limit", type=int, help="score only the first N images (a quick look)")
    options.add_batch_size(p)
    options.add_device(p)
    options.add_precision(p, extra=("auto",))
    p.add_argument("--fast-path", default="eager", choices=list(FAST_PATHS),
                   help="PyTorch models: run the float32 network in NHWC layout, torch.compile'd, or "
                        "fused (NHWC, eval BatchNorm folded into the convolution before it); maps agree "
                        "to float32 rounding; recorded, and part of the record's identity")
    p.add_argument("--weights", default="pretrained",
                   help="pretrained (default), random (untrained control) or a local weights file")
    options.add_results(p)
    p.add_argument("--force", action="store_true", help="recompute models that already have a record")
    p.add_argument("--save-maps", action="store_true",
                   help="maps tasks: also keep every image's saliency map, compressed, in RESULTS/<dataset>/"
                   "<model>.maps.npz (about 0.2 MB per image; read by `alignbench plot-maps`); a model whose "
                   "record exists without its maps is scored again")
    p.add_argument("--executor", choices=["local", "ray"], default="local",
                   help="local (this process, default) or ray (one task per model on a Ray cluster)")
    p.add_argument("--ray-address", help="Ray cluster address (default: start or join a local one)")
    p.add_argument("--shard", metavar="k/n", help="run only share k of n of the models (SLURM arrays etc.)")
    options.add_offline(p)
    p.add_argument("--decision-rule", choices=["argmax", "summed_probability", "mean_logit"],
                   help="psychophysics only: animal vs non-animal from the 1000-way output (default argmax, the "
                   "paper's code; summed_probability: P(animal classes) > 0.5); stored in each record")
    p.add_argument("--explainer", metavar="NAME",
                   help="maps tasks: the explainer that computes the model's maps (default saliency; built in: "
                   "saliency, paper-release, paper-sweep, training, smoothgrad, integrated-gradients, "
                   "gradient-x-input, grad-cam; see the README). Part of each record's identity; a non-default "
                   "one names the record <model>+<explainer>.json")
    options.add_progress(p)
    p.set_defaults(handler=handle)


def select_models(args: argparse.Namespace) -> list[str]:
    import model_zoo

    if args.model:
        return [model_zoo.get_spec(m).id if not Path(m).exists() else m for m in args.model]
    if args.family:
        specs = [s for f in args.family for s in model_zoo.list_models(family=f)]
        if not specs:
            from model_zoo.errors import InvalidInputError

            raise InvalidInputError(f"--family {' '.join(args.family)}: no catalog model has this family")
        return [s.id for s in specs]
    if args.all_models:
        specs = model_zoo.list_models(paper=True)
        if args.include_harmonized:
            specs += [s for s in model_zoo.list_models(harmonized=True) if s not in specs]
        return [s.id for s in specs]
    from model_zoo.errors import InvalidInputError

    raise InvalidInputError("say which models: --all-models, --model ID ... or --family F ...")


def handle(args: argparse.Namespace) -> int:
    import logging

    from alignbench import report
    from benchmark import runner
    from model_zoo.weights import offline_mode

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    config = runner.RunConfig(
        dataset=args.dataset, models=select_models(args), results_dir=args.results, batch_size=args.batch_size,
        device=args.device, precision=args.precision, fast_path=args.fast_path, weights=args.weights, limit=args.limit, force=args.force,
        executor=args.executor, ray_address=args.ray_address,
        shard=runner.parse_shard(args.shard) if args.shard else None, download=not args.offline,
        progress=not args.no_progress, decision_rule=args.decision_rule, save_maps=args.save_maps,
        explainer=args.explainer)
    progress = report.RunProgress()
    with offline_mode(args.offline):
        summary = runner.run(config, on_outcome=lambda i, n, outcome: print(progress.line(i, n, outcome), flush=True))
    print(report.format_summary(summary))
    for problem in summary.problems:
        print(f"note: {problem}")
    return 1 if summary.failed else 0
