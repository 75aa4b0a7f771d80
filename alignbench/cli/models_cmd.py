"""``alignbench models list|show|convert``: print the model catalog (catalog rows and registered
models); convert a harmonized model to a PyTorch model folder."""
from __future__ import annotations

import argparse
import csv
import io
import json
from typing import Any, Sequence

LIST_COLUMNS = ("id", "family", "framework", "source", "input_size", "top1", "in_paper", "display_name")
LONG_COLUMNS = LIST_COLUMNS + ("source_id", "preprocessing", "top1_source", "licence", "cached")
TRACKS = ("paper", "harmonized", "registered")
_CACHED = {True: "yes", False: "no", None: "unknown"}


def register(subparsers: argparse._SubParsersAction) -> None:
    models = subparsers.add_parser("models", help="list the model catalog or show one model",
                                   description="List the model catalog (with filters) or show one model's details.")
    sub = models.add_subparsers(dest="models_command", metavar="ACTION", required=True)

    ls = sub.add_parser("list", help="list models (filters combine with AND)",
                        description="List catalog and registered models; filters combine with AND.")
    ls.add_argument("--family", action="append", help="cnn, cnn_extra_data, transformer, self_supervised, "
                    "robust or harmonized (repeatable)")
    ls.add_argument("--source", action="append", help="source library (timm, torchvision, keras, url, registered) "
                    "or builder (bagnet, clip_zeroshot, ...) (repeatable)")
    ls.add_argument("--framework", choices=("torch", "keras"), help="only models that run in this framework")
    group = ls.add_mutually_exclusive_group()
    group.add_argument("--harmonized", dest="harmonized", action="store_true", default=None,
                       help="only harmonized models")
    group.add_argument("--no-harmonized", dest="harmonized", action="store_false", help="exclude harmonized models")
    ls.add_argument("--paper", action="store_true", help="only the paper's 85 compared models (in_paper yes/likely/guess)")
    ls.add_argument("--track", choices=TRACKS, help="paper: the paper's 85 compared models (= --paper); "
                    "harmonized: the harmonized models; registered: models added by plugins or register_model")
    ls.add_argument("--long", action="store_true", help="also source id, preprocessing, top-1 source, licence "
                    "and whether the weights are cached (imports the source libraries: slower)")
    ls.add_argument("--format", choices=("table", "csv", "json"), default="table", help="output format (default table)")
    ls.set_defaults(handler=_list)

    show = sub.add_parser("show", help="everything known about one model",
                          description="Show one model: source, preprocessing, published top-1 and its source, "
                          "licence, why it is in the paper's list, and whether its weights are cached.")
    show.add_argument("model_id")
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(handler=_show)

    convert = sub.add_parser("convert", help="write a harmonized model as a PyTorch model folder",
                             description="Convert a released harmonized model (the authors' Keras .h5) into an "
                             "exported model folder of safetensors weights for its PyTorch port, which "
                             "`alignbench run --model OUT` and model_zoo.load(OUT) accept.")
    convert.add_argument("model_id", help="a harmonized catalog id (alignbench models list --track harmonized)")
    convert.add_argument("out", help="the folder to write")
    convert.add_argument("--to", choices=("torch",), required=True, help="target framework")
    convert.add_argument("--weights", default="pretrained",
                         help="'pretrained' (the released file: cache, mirror or download) or a local .h5")
    convert.set_defaults(handler=_convert)


def preprocessing_summary(spec: Any) -> str:
    """One line: input size, resize, normalisation and channel order (what the adapter applies)."""
    if spec.mean is None:
        norm = f"x*{spec.scale:.6g}"
    else:
        norm = "mean " + "/".join(f"{v:.4g}" for v in spec.mean) + " std " + "/".join(f"{v:.4g}" for v in spec.std)
    return f"{spec.input_size}px {spec.interpolation}, {norm}, {spec.channel_order}"


def render_list(specs: Sequence[Any], fmt: str = "table", *, cached: Sequence[bool | None] | None = None) -> str:
    """The ``models list`` output for ``specs`` in ``table``, ``csv`` or ``json``; with ``cached``
    (one flag per spec, from :func:`model_zoo.api.weights_cached`) the long columns are added."""
    columns = LONG_COLUMNS if cached is not None else LIST_COLUMNS
    extra = lambda s, i: {"preprocessing": preprocessing_summary(s), "cached": _CACHED[cached[i]]} if cached else {}  # noqa: E731
    rows = [{c: getattr(s, c, None) for c in columns} | extra(s, i) for i, s in enumerate(specs)]
    if fmt == "json":
        docs = [s.to_dict() for s in specs]
        if cached is not None:
            for doc, flag in zip(docs, cached):
                doc["weights_cached"] = flag
        return json.dumps(docs, indent=2)
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: ("" if v is None else v) for k, v in r.items()} for r in rows)
        return buf.getvalue().rstrip("\n")
    cells = [[("" if r[c] is None else str(r[c])) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in cells]
    lines.append(f"({len(rows)} models)")
    return "\n".join(lines)


def describe(spec: Any, cached: bool | None) -> dict[str, Any]:
    """The fields ``models show`` prints, in order."""
    if spec.mean is None:
        norm = f"x * {spec.scale:g} (no mean/std)"
    else:
        fmt = lambda t: "(" + ", ".join(f"{v:.6g}" for v in t) + ")"  # noqa: E731
        norm = f"x/255, mean {fmt(spec.mean)}, std {fmt(spec.std)} (RGB, 0-1 units)"
    return {
        "id": spec.id,
        "display name": spec.display_name,
        "family": spec.family,
        "framework": spec.framework,
        "source": f"{spec.source}: {spec.source_id}",
        "builder": spec.builder,
        "input": (f"{spec.input_size}x{spec.input_size}, "
                  + (f"{spec.interpolation} resize from 224" if spec.input_size != 224 else "no resize")
                  + f", channels {spec.channel_order}"),
        "normalisation": norm,
        "published top-1": "none published" if spec.top1 is None else f"{spec.top1:g}% ({spec.top1_source})",
        "licence": spec.licence or "not stated",
        "in paper": f"{spec.in_paper}" + (f" - {spec.evidence}" if spec.evidence else ""),
        "notes": spec.notes,
        "weights url": spec.weights_url or "(source library's own hub/cache)",
        "weights cached": {True: "yes", False: "no", None: "unknown (library-managed cache)"}[cached],
    }


def _list(args: argparse.Namespace) -> int:
    from model_zoo import list_models
    from model_zoo.errors import InvalidInputError

    harmonized, paper, source = args.harmonized, True if args.paper else None, args.source
    if args.track == "paper":
        paper = True
    elif args.track == "harmonized":
        if harmonized is False:
            raise InvalidInputError("--track harmonized contradicts --no-harmonized")
        harmonized = True
    elif args.track == "registered":
        source = ["registered"] if source is None else [s for s in source if s == "registered"] or ["<none>"]
    specs = list_models(family=args.family, source=source, framework=args.framework, harmonized=harmonized,
                        paper=paper)
    cached = None
    if args.long:
        from model_zoo.api import weights_cached

        cached = [weights_cached(s) for s in specs]
    print(render_list(specs, args.format, cached=cached))
    return 0


def _show(args: argparse.Namespace) -> int:
    from model_zoo import get_spec
    from model_zoo.api import weights_cached

    spec = get_spec(args.model_id)
    info = describe(spec, weights_cached(spec))
    if args.json:
        print(json.dumps({**spec.to_dict(), "weights_cached": weights_cached(spec)}, indent=2))
        return 0
    width = max(len(k) for k in info)
    print("\n".join(f"{k.ljust(width)}  {v}" for k, v in info.items() if v != ""))
    return 0


def _convert(args: argparse.Namespace) -> int:
    from model_zoo.convert.export import convert

    meta = convert(args.model_id, args.out, to=args.to, weights=args.weights)
    doc = json.loads(meta.read_text(encoding="utf-8"))
    arch = doc["architecture"]
    print(f"wrote {meta.parent} ({doc['id']}: {arch['library']}; safetensors sha256 {doc['weights_sha256'][:12]}...)")
    print(f"score it with: alignbench run --model {meta.parent}")
    return 0
