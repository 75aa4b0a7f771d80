"""``alignbench models list|show``: print the model catalog (catalog rows and registered models)."""
from __future__ import annotations

import argparse
import csv
import io
import json
from typing import Any, Sequence

LIST_COLUMNS = ("id", "family", "framework", "source", "input_size", "top1", "in_paper", "display_name")


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
    ls.add_argument("--framework", choices=("torch", "keras"))
    group = ls.add_mutually_exclusive_group()
    group.add_argument("--harmonized", dest="harmonized", action="store_true", default=None,
                       help="only harmonized models")
    group.add_argument("--no-harmonized", dest="harmonized", action="store_false", help="exclude harmonized models")
    ls.add_argument("--paper", action="store_true", help="only the paper's 85 compared models (in_paper yes/likely/guess)")
    ls.add_argument("--format", choices=("table", "csv", "json"), default="table")
    ls.set_defaults(handler=_list)

    show = sub.add_parser("show", help="everything known about one model",
                          description="Show one model: source, preprocessing, published top-1 and its source, "
                          "licence, why it is in the paper's list, and whether its weights are cached.")
    show.add_argument("model_id")
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(handler=_show)


def render_list(specs: Sequence[Any], fmt: str = "table") -> str:
    """The ``models list`` output for ``specs`` in ``table``, ``csv`` or ``json``."""
    rows = [{c: getattr(s, c) for c in LIST_COLUMNS} for s in specs]
    if fmt == "json":
        return json.dumps([s.to_dict() for s in specs], indent=2)
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=LIST_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: ("" if v is None else v) for k, v in r.items()} for r in rows)
        return buf.getvalue().rstrip("\n")
    cells = [[("" if r[c] is None else str(r[c])) for c in LIST_COLUMNS] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(LIST_COLUMNS)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(LIST_COLUMNS, widths)).rstrip()]
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
        "family": spec.family + (" (harmonized)" if spec.harmonized else ""),
        "framework": spec.framework,
        "source": f"{spec.source}: {spec.source_id}",
        "builder": spec.builder,
        "input": f"{spec.input_size}x{spec.input_size}, {spec.interpolation} resize from 224, channels {spec.channel_order}",
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

    specs = list_models(family=args.family, source=args.source, framework=args.framework,
                        harmonized=args.harmonized, paper=True if args.paper else None)
    print(render_list(specs, args.format))
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
