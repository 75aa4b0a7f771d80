"""``alignbench submit``: score your own model and write a leaderboard submission bundle."""
from __future__ import annotations

import argparse
from pathlib import Path

from alignbench.cli import options


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "submit", help="score your model and write a leaderboard submission bundle",
        description="Score a model on the leaderboard's datasets and write a submission bundle to "
        "RESULTS/submissions/<id>/ (records, per-image scores, provenance, weights sha256, your metadata). "
        "Give the model as exactly one of: --timm NAME, --keras FILE.keras, --weights FILE --architecture NAME "
        "(safetensors, or a PyTorch state dict read with weights_only=True), or --plugin FILE.py (built in a "
        "bubblewrap sandbox: no network, no files but its own folder, resource limits). Pickled code is never "
        "loaded. The preprocessing the model is scored with is printed and recorded in the bundle; where it "
        "would only be a guess (--weights, a plugin without PREPROCESS) submit asks for --preprocess.")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--timm", "--timm-name", dest="timm", metavar="NAME", help="a timm architecture with its published weights "
                       "(--timm-weights random: untrained, seeded)")
    which.add_argument("--keras", type=Path, metavar="FILE", help="a .keras model file (loaded in Keras safe mode)")
    which.add_argument("--weights", type=Path, metavar="FILE",
                       help="a .safetensors or state-dict file for the timm architecture given by --architecture")
    which.add_argument("--plugin", type=Path, metavar="FILE", help="a Python file defining build_model()")
    p.add_argument("--architecture", metavar="NAME", help="with --weights: the timm architecture name")
    p.add_argument("--timm-weights", choices=("pretrained", "random"), default="pretrained", help="with --timm")
    p.add_argument("--preprocess", metavar="PRESET|JSON",
                   help="imagenet, inception, caffe (the catalog's exact constants), raw, unit, timm (the "
                   "architecture's timm data config), or a JSON object of preprocessing fields; required with "
                   "--keras and wherever the preprocessing would be a guess (--weights, a plugin without PREPROCESS)")
    meta = p.add_argument_group("about you and the model (shown on the leaderboard)")
    meta.add_argument("--name", required=True, help="your name (submitter)")
    meta.add_argument("--model-name", help="the model's display name (default: the timm name or the file's name)")
    meta.add_argument("--description", required=True, help="what the model is and how it was trained")
    meta.add_argument("--licence", "--license", dest="licence", required=True,
                      help="licence of the model weights (e.g. MIT, CC-BY-4.0, Apache-2.0)")
    meta.add_argument("--email", help="contact address (shown on the site only if you also pass --url)")
    meta.add_argument("--affiliation", help="institution or lab, shown with your name")
    meta.add_argument("--url", help="paper or code URL")
    meta.add_argument("--family", help="cnn, cnn_extra_data, transformer, self_supervised, robust or harmonized")
    meta.add_argument("--top1", "--claimed-top1", dest="top1", type=float, metavar="PCT", help="claimed ImageNet-1k top-1 accuracy in percent")
    meta.add_argument("--top1-method", metavar="TEXT",
                      help="how --top1 was measured (required with --top1), e.g. 'timm validate.py, ImageNet val, "
                      "224 center crop'")
    p.add_argument("--id", dest="submission_id", help="bundle id (default: from --model-name)")
    p.add_argument("--dataset", nargs="+", default=["clickme-val"],
                   help="datasets to score on (names or folders of ClickMe-format shards; default clickme-val)")
    options.add_results(p, what="submissions/ folder")
    p.add_argument("--include-weights", action="store_true",
                   help="copy the weights (as safetensors / .keras) into the bundle so maintainers can verify it")
    p.add_argument("--limit", type=int, help="score only the first N images: a PREVIEW bundle (not accepted)")
    options.add_batch_size(p)
    options.add_device(p)
    options.add_precision(p)
    p.add_argument("--force", action="store_true", help="replace an existing bundle with this id")
    options.add_offline(p)
    p.add_argument("--plugin-timeout", type=float, default=600.0, metavar="S", help="wall-clock limit of a plugin build")
    p.add_argument("--plugin-memory-mb", type=int, default=16384, metavar="MB", help="memory limit of a plugin build")
    p.add_argument("--trust-plugin", action="store_true",
                   help="where no sandbox can be set up (no bubblewrap), run the plugin anyway, WITHOUT isolation")
    options.add_progress(p)
    p.set_defaults(handler=handle)


def source_from_args(args: argparse.Namespace):
    """The :class:`leaderboard.loading.ModelSource` the options describe."""
    from leaderboard.loading import ModelSource, parse_preprocess
    from model_zoo.errors import InvalidInputError

    pre: dict = {}
    if args.preprocess == "timm":
        pre = {"timm_config": True}
    elif args.preprocess is not None:
        pre = {"preprocess": parse_preprocess(args.preprocess), "preprocess_given": True,
               "preprocess_from": f"--preprocess {args.preprocess}"[:200]}
    if args.architecture and not args.weights:
        raise InvalidInputError("--architecture goes with --weights FILE (for --timm, give the name to --timm)")
    if args.timm:
        return ModelSource("timm", name=args.timm, weights=args.timm_weights, **pre)
    if args.weights:
        if not args.architecture:
            raise InvalidInputError("--weights FILE needs --architecture NAME (the timm architecture the weights fit)")
        return ModelSource("weights", name=args.architecture, path=args.weights, **pre)
    if args.keras:
        return ModelSource("keras", path=args.keras, **pre)
    return ModelSource("plugin", path=args.plugin, **pre)


def handle(args: argparse.Namespace) -> int:
    import logging

    from leaderboard.bundle import SubmissionMeta
    from leaderboard.sandbox import Limits
    from leaderboard.submit import submit
    from model_zoo.weights import offline_mode

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    model_name = args.model_name or args.timm or Path(args.keras or args.weights or args.plugin).stem
    meta = SubmissionMeta(submitter=args.name, model_name=model_name, description=args.description,
                          licence=args.licence, email=args.email, affiliation=args.affiliation, url=args.url,
                          family=args.family, top1_claimed=args.top1, top1_method=args.top1_method)
    with offline_mode(args.offline):
        result = submit(source_from_args(args), meta, datasets=args.dataset, results_dir=args.results,
                        submission_id=args.submission_id, batch_size=args.batch_size, device=args.device,
                        precision=args.precision, limit=args.limit, include_weights=args.include_weights,
                        force=args.force, download=not args.offline, progress=not args.no_progress,
                        limits=Limits(timeout_s=args.plugin_timeout, memory_mb=args.plugin_memory_mb),
                        trust_plugin=args.trust_plugin)
    print(result.instructions)
    return 0 if result.ok else 1
