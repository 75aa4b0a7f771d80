"""``alignbench leaderboard build``: the static leaderboard site.

Input: a results folder: the catalog's records (``results/<dataset>/*.json``, measured by the
maintainers), submission bundles (``results/submissions/*/``, measured by submitters; only bundles
that pass :mod:`leaderboard.validate` are listed) and, optionally, the published reference points
(package data, :mod:`benchmark.published`, read off the paper's figures; shown as "published", never mixed up with
measured rows). Facts of the datasets come from the pins (``known_datasets.json``), never from a
bundle, and no dataset is opened.

Every row falls in one of three sections, each ranked on its own (per dataset):

* **main**: the maintainers' runs, and submissions checked against a fully pinned dataset;
* **unverified**: submissions on a dataset whose count, fingerprint, id set or ceiling is not pinned
  (checked only against what is known, e.g. the catalog's records), and maintainers' runs that do not
  match the pinned dataset;
* **synthetic**: anything on generated data (the pins' ``synthetic``, or the record's
  ``dataset_synthetic``): never ranked with human data.

Only the maps of saliency, the paper's explainer, are ranked: a maintainers' record of another
explainer is left out with a note (``alignbench plot-pareto --explainer NAME`` compares those), and
validation refuses a submission of one.

Random-weight controls are marked and not ranked. Each mark (SYNTHETIC, random weights, unverified)
is shown wherever the row's number is: the table, the plot, the model page, and the CSV and
Markdown exports.

Output (``SITE_DIR``)::

    index.html               sortable, filterable table + accuracy-vs-alignment plot (inline SVG)
    models/<id>.html         one page per measured model: scores per dataset, provenance, submitter
    models/<id>.<dataset>.scores.csv   the per-image scores behind each row
    (each model page shows, per dataset, its gallery: the same images for every model, human map beside
    model map, inline PNGs; :mod:`leaderboard.gallery`)
    leaderboard.csv, leaderboard.md    exports of the table

The site works offline from ``file://``: no CDN, no network request (its Content-Security-Policy
forbids them), one small hand-written script (``site.js``) inlined and pinned by its hash. Every
text that comes from a submission is HTML-escaped; the hash-pinned CSP makes any script that slipped
through inert as well.
"""
from __future__ import annotations

import base64
import csv
import hashlib
import html
import io
import math
import shutil
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Sequence
from urllib.parse import quote, urlsplit

from benchmark import records
from leaderboard import fields as F
from leaderboard.gallery import CSS as GALLERY_CSS
from leaderboard.gallery import model_gallery, section_html
from leaderboard.pins import CEILING_RTOL, DatasetPin, PinTable, as_table
from leaderboard.validate import Standing
from model_zoo.errors import InvalidInputError
from model_zoo.fileio import atomic_copy_file, atomic_write_text

MARKER = ".alignbench-site"
CATALOG_SUBMITTER = "alignbench maintainers"
# (key, header, type): the table's columns, in order
COLUMNS = (
    ("rank", "Rank", "num"), ("model", "Model", "text"), ("family", "Family", "text"),
    ("top1", "Top-1 (%)", "num"), ("alignment", "Alignment (%)", "num"), ("sd", "SD (%)", "num"),
    ("dice", "Dice", "num"), ("iou", "IoU", "num"), ("weights", "Weights", "text"), ("data", "Data", "text"),
    ("submitted_by", "Submitted by", "text"), ("date", "Date", "text"), ("kind", "Measured / published", "text"),
)
EXPORT_COLUMNS = ("dataset", "section", "rank", "model_id", "model", "family", "top1", "top1_source", "alignment",
                  "sd", "spearman", "dice", "iou", "n_images", "weights", "random_weights", "data", "synthetic",
                  "verified", "note", "submitted_by", "date", "kind", "origin")
SECTIONS = {
    "main": ("Leaderboard", "Measured by the maintainers, or submitted and checked against the pinned dataset "
             "(image count, fingerprint, image-id set and ceiling in known_datasets.json)."),
    "unverified": ("Unverified submissions", "Not ranked with the leaderboard: the dataset's image count, "
                   "fingerprint, image-id set or ceiling is not pinned (or a run does not match the pinned "
                   "dataset), so these numbers could only be checked against what else is known. Each row says why."),
    "synthetic": ("SYNTHETIC data (not human data)", "Scored on generated data (shapes and simulated "
                  "participants): these numbers show the pipeline and say nothing about human visual strategies. "
                  "Never ranked with the paper's data."),
}
RANDOM_NOTE = "random weights: an untrained control, not the pretrained model; not ranked"
MAX_SHOWN_TEXT = 2000  # a catalog record is trusted, but no text on a page grows without bound


@dataclass
class Entry:
    """One row of the leaderboard. Percentages (``top1``, ``alignment``, ``sd``) are in [0, 100];
    ``spearman``, ``dice``, ``iou`` are means in [-1, 1] / [0, 1]. ``origin``: catalog, submission
    or published; ``kind``: measured or published."""

    dataset: str
    model_id: str
    model: str
    family: str | None
    top1: float | None
    top1_source: str | None
    alignment: float | None
    sd: float | None
    spearman: float | None
    dice: float | None
    iou: float | None
    n_images: int | None
    submitted_by: str
    date: str | None
    kind: str
    origin: str
    section: str = "main"            # main | unverified | synthetic (SECTIONS)
    weights: str | None = None       # pretrained | random | file:<sha256> | plugin ... (what was scored)
    random: bool = False             # a random-weight control: marked, never ranked
    synthetic: bool = False          # scored on generated data
    verified: bool = True            # checked against the pinned dataset (or a maintainers' run)
    data: str = "not pinned"         # the Data column: pinned | not pinned | unverified | SYNTHETIC[, ...] | paper figure
    note: str = ""                   # why a row is unverified or marked, in words
    rank: int | None = None
    page: str | None = None          # relative href of the model page
    record: dict[str, Any] | None = field(default=None, repr=False)
    submission: dict[str, Any] | None = field(default=None, repr=False)
    scores_file: Path | None = None

    @property
    def row_id(self) -> str:
        digest = hashlib.sha1(f"{self.dataset}\0{self.origin}\0{self.model_id}".encode("utf-8")).hexdigest()[:12]
        return f"row-{digest}"

    @property
    def flags(self) -> list[str]:
        """The marks of this row, in the order they are shown: synthetic, random, unverified."""
        return [f for f, on in (("synthetic", self.synthetic), ("random", self.random),
                                ("unverified", not self.verified)) if on]

    @property
    def weights_label(self) -> str:
        """The Weights column: what was scored (published rows: the paper's own)."""
        if self.kind == "published":
            return "published"
        if self.random:
            return "RANDOM (control)"
        w = self.weights or ""
        return "own file" if w.startswith("file:") else (w or "?")


@dataclass
class SiteData:
    entries: list[Entry]
    datasets: list[str]
    notes: list[str]
    synthetic_datasets: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------------------- collecting
def _pct(value: Any) -> float | None:
    return 100.0 * float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) \
        and math.isfinite(value) else None


def _date(value: Any) -> str | None:
    return str(value)[:10] if isinstance(value, str) and value else None


def _clip(value: Any, n: int = MAX_SHOWN_TEXT) -> str:
    text = str(value)
    return text if len(text) <= n else text[: n - 1] + "\u2026"


def discover_datasets(results_dir: Path) -> list[str]:
    """Dataset folders with model records under ``results_dir``, plus those named in bundles."""
    from leaderboard.bundle import SUBMISSIONS_DIR, list_bundles

    found = set()
    if results_dir.is_dir():
        for folder in results_dir.iterdir():
            if folder.is_dir() and folder.name not in ("published", SUBMISSIONS_DIR) \
                    and not folder.name.startswith((".", "_")) and any(folder.glob("*.json")):
                found.add(folder.name)
    for bundle in list_bundles(results_dir):
        for sub in bundle.iterdir():
            if sub.is_dir() and not sub.is_symlink() and sub.name != "model" and not sub.name.startswith("."):
                found.add(sub.name)
    valid = []
    for name in sorted(found):
        try:
            valid.append(records.safe_name(name, "dataset"))
        except InvalidInputError:
            continue
    return valid


def _classify_catalog(e: Entry, r: dict[str, Any], pin: DatasetPin | None) -> None:
    """A maintainers' run: trusted, but compared with the dataset's pin (other data is not ranked with it)."""
    e.synthetic = F.synthetic(r) or bool(pin and pin.synthetic)
    if pin is None or not pin.pinned:
        e.data = "not pinned"
        e.note = "the dataset's facts are not pinned in known_datasets.json"
    differs = []
    if pin is not None and pin.pinned:
        if F.fingerprint(r) != pin.fingerprint or F.n_images(r) != pin.n_images:
            differs.append(f"scored on other data than the pinned {e.dataset} ({F.n_images(r)} images, fingerprint "
                           f"{F.fingerprint(r)})")
        e.data = "pinned"
    if pin is not None and pin.ceiling is not None and F.ceiling(r) is not None \
            and abs(F.ceiling(r) - pin.ceiling) > CEILING_RTOL * pin.ceiling:
        differs.append(f"ceiling {F.ceiling(r)} is not the pinned {pin.ceiling}")
    if differs:
        e.verified, e.data, e.note = False, "unverified", "; ".join(differs)


def _catalog_entries(results_dir: Path, dataset: str, notes: list[str], pins: PinTable) -> list[Entry]:
    loaded = records.load_results(results_dir, dataset)
    notes += loaded.problems
    out = []
    other_explainers: dict[str, int] = {}
    for r in loaded.records:
        if not F.ok(r) or F.task(r) != "maps":
            continue
        if F.explainer_problem(r):  # the board ranks the paper's saliency maps only: never mixed
            name = F.explainer(r) or "?"
            other_explainers[name] = other_explainers.get(name, 0) + 1
            continue
        try:
            records.safe_name(str(r.get("model")), "model id")
        except InvalidInputError as exc:  # the id names the model's page: never a path
            notes.append(f"{r['_path']}: left out: {exc}")
            continue
        prov = F.provenance(r)
        name = F.scores_file(r)
        try:
            scores = Path(r["_path"]).with_name(records.safe_name(name, "scores file")) if name else None
        except InvalidInputError:
            scores = None
        random = F.random_weights(r)
        e = Entry(
            dataset=dataset, model_id=str(r["model"]), model=_clip(F.display_name(r) or r["model"], 200),
            family=F.family(r), top1=F.top1(r),
            top1_source=F.top1_source(r) or ("published (catalog)" if F.top1(r) is not None else None),
            alignment=_pct(F.alignment(r)), sd=_pct(F.alignment_error(r)), spearman=F.spearman(r),
            dice=F.dice(r), iou=F.iou(r), n_images=F.n_images(r),
            submitted_by=CATALOG_SUBMITTER, date=_date(prov.get("date")), kind="measured", origin="catalog",
            record=r, scores_file=scores if scores is not None and scores.is_file() else None,
            weights=F.weights(r), random=random)
        _classify_catalog(e, r, pins.get(dataset))
        out.append(e)
    if other_explainers:
        listed = ", ".join(f"{_clip(k, 80)} ({v})" for k, v in sorted(other_explainers.items()))
        notes.append(f"{dataset}: records of other explainers than saliency (the paper's) not listed: {listed}; "
                     "compare them with alignbench plot-pareto --explainer NAME")
    return out


def _submission_entries(results_dir: Path, datasets: Sequence[str], notes: list[str], validate: bool,
                        pins: PinTable) -> list[Entry]:
    from leaderboard.bundle import inside, list_bundles, read_bundle

    paths = list_bundles(results_dir)
    if not paths:
        return []
    rejected: dict[str, list[str]] = {}
    standing: dict[tuple[str, str], Standing] = {}
    if validate:
        from leaderboard.validate import validate_bundles

        # the site never opens (or downloads) datasets: the facts come from the pins of
        # known_datasets.json or the catalog's own records, as for any maintainer without the data
        report = validate_bundles(paths, results_dir=results_dir, use_local_data=False, pins=pins)
        standing = report.standing
        for p in report.problems:
            rejected.setdefault(p.bundle, []).append(f"{p.field}: {p.message}")
    out = []
    for path in paths:
        if path.name in rejected:
            notes.append(f"submission {path.name} left out: {len(rejected[path.name])} validation problem(s), "
                         f"e.g. {_clip(rejected[path.name][0], 300)}")
            continue
        bundle = read_bundle(path)
        if bundle.submission is None:
            notes.append(f"submission {path.name} left out: no readable submission.json")
            continue
        meta = bundle.meta
        sub = bundle.submission
        source = (sub.get("model") or {}).get("source") if isinstance(sub.get("model"), dict) else {}
        source = source if isinstance(source, dict) else {}
        who = str(meta.submitter or "?")
        if meta.affiliation:
            who += f" ({meta.affiliation})"
        for name, r in sorted(bundle.records.items()):
            if name not in datasets or not F.ok(r):
                continue
            try:
                scores = inside(path, name, f"{bundle.id}.scores.csv")
            except InvalidInputError:
                scores = None
            claimed = _num(meta.top1_claimed)
            st = standing.get((bundle.id, name), Standing("unverified", False, "not validated (--no-validate)"))
            random = source.get("kind") == "timm" and source.get("weights") == "random"
            e = Entry(
                dataset=name, model_id=bundle.id, model=str(meta.model_name or bundle.id), family=meta.family,
                top1=claimed, top1_source=f"claimed by the submitter ({meta.top1_method})" if claimed is not None else None,
                alignment=_pct(F.alignment(r)), sd=_pct(F.alignment_error(r)), spearman=F.spearman(r),
                dice=F.dice(r), iou=F.iou(r), n_images=F.n_images(r),
                submitted_by=who, date=_date(sub.get("created")), kind="measured", origin="submission",
                record=r, submission=sub, scores_file=scores if scores is not None and scores.is_file() else None,
                weights=str(source.get("weights") or F.weights(r) or ""), random=random,
                synthetic=st.synthetic or F.synthetic(r), verified=st.level == "pinned")
            e.data = "pinned" if e.verified else "unverified"
            e.note = "" if e.verified else st.reason
            out.append(e)
    return out


def _section(e: Entry) -> str:
    """Synthetic data first (never ranked with human data), then unverified, else the leaderboard."""
    return "synthetic" if e.synthetic else ("unverified" if not e.verified else "main")


def _finish_marks(e: Entry) -> None:
    e.section = _section(e)
    if e.synthetic:
        e.data = "SYNTHETIC" + (", unverified" if not e.verified else "")
    if e.random:
        e.note = "; ".join(n for n in (RANDOM_NOTE, e.note) if n)


def _published_entries(results_dir: Path, dataset: str, notes: list[str]) -> list[Entry]:
    from benchmark.plots import published_points

    try:
        points = published_points(dataset)
    except InvalidInputError as exc:
        notes.append(str(exc))
        return []
    return [Entry(dataset=dataset, model_id=p.model, model=p.label, family=p.family, top1=p.top1,
                  top1_source="published (paper)", alignment=p.alignment, sd=None, spearman=None, dice=None,
                  iou=None, n_images=None, submitted_by="published (read off the paper's figure)", date=None,
                  kind="published", origin="published", data="paper figure") for p in points]


def collect(results_dir: str | Path, *, datasets: Iterable[str] | None = None, with_published: bool = True,
            validate: bool = True, pins: PinTable | str | Path | None = None) -> SiteData:
    """Every leaderboard row of ``datasets`` (default: all found), marked and sectioned against
    ``pins`` (default: the package's ``known_datasets.json``), ranked by alignment per dataset and section."""
    from benchmark.published import PARETO

    table = as_table(pins)
    results_dir = Path(results_dir)
    if datasets is None:
        names = discover_datasets(results_dir)
        if with_published and not any(n.startswith(k) for n in names for k in PARETO):
            names += [f"{k}-val" for k in PARETO]  # the published points ship with the package
    else:
        names = [records.safe_name(n, "dataset") for n in datasets]
    notes: list[str] = []
    entries: list[Entry] = []
    for name in names:
        entries += _catalog_entries(results_dir, name, notes, table)
        pin = table.get(name)
        if with_published and not (pin is not None and pin.synthetic):
            entries += _published_entries(results_dir, name, notes)
    entries += _submission_entries(results_dir, names, notes, validate, table)
    for e in entries:
        _finish_marks(e)
    _rank(entries)
    _assign_pages(entries)
    present = [n for n in names if any(e.dataset == n for e in entries)] or names
    # human data first: the dataset shown when the page opens is never a synthetic one
    present.sort(key=lambda n: any(e.synthetic for e in entries if e.dataset == n))
    return SiteData(entries=entries, datasets=present, notes=notes,
                    synthetic_datasets=sorted({e.dataset for e in entries if e.synthetic}))


def _rank(entries: list[Entry]) -> None:
    """Competition ranking (1, 2, 2, 4) by alignment within each dataset and section; rows without an
    alignment and random-weight controls get no rank."""
    by_group: dict[tuple[str, str], list[Entry]] = {}
    for e in entries:
        by_group.setdefault((e.dataset, e.section), []).append(e)
    for group in by_group.values():
        ranked = sorted((e for e in group if e.alignment is not None and not e.random), key=lambda e: -e.alignment)
        for i, e in enumerate(ranked):
            e.rank = ranked[i - 1].rank if i and ranked[i - 1].alignment == e.alignment else i + 1
    order = list(SECTIONS)
    entries.sort(key=lambda e: (order.index(e.section), e.dataset, e.rank is None, e.rank or 0,
                                -(e.alignment if e.alignment is not None else -1e9), e.model.lower()))


def _assign_pages(entries: list[Entry]) -> None:
    used: dict[tuple[str, str], str] = {}
    taken: set[str] = set()
    for e in entries:
        if e.kind != "measured":
            continue
        key = (e.origin, e.model_id)
        if key not in used:
            stem = records.safe_name(e.model_id, "model id")
            if stem in taken:  # a submission and a catalog model with one id (validation refuses this)
                stem = f"{e.origin}-{stem}"
            taken.add(stem)
            used[key] = stem
        e.page = f"models/{used[key]}.html"


# ----------------------------------------------------------------------------------- HTML helpers
def esc(value: Any) -> str:
    """HTML-escaped text (quotes too, so it is safe in attributes); None -> empty."""
    return "" if value is None else html.escape(str(value), quote=True)


def fmt(value: float | None, digits: int) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def safe_url(url: Any) -> str | None:
    """``url`` if it is a plain http(s) URL (no javascript:, data:, ...), else None."""
    if not isinstance(url, str):
        return None
    parts = urlsplit(url.strip())
    return url.strip() if parts.scheme in ("http", "https") and parts.netloc else None


def _script() -> str:
    return resources.files("leaderboard").joinpath("site.js").read_text(encoding="utf-8")


def _csp(script: str | None) -> str:
    scripts = "'none'"
    if script is not None:
        digest = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode("ascii")
        scripts = f"'sha256-{digest}'"
    return (f"default-src 'none'; script-src {scripts}; style-src 'unsafe-inline'; img-src data:; "
            "connect-src 'none'; base-uri 'none'; form-action 'none'")


CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:1.5rem;color:#222;max-width:1200px}
h1{font-size:1.5rem;margin-bottom:.2rem}.sub{color:#555;margin-top:0}
table{border-collapse:collapse;width:100%;font-size:.9rem}
th,td{padding:.3rem .5rem;border-bottom:1px solid #ddd;text-align:left;vertical-align:top}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
th button{font:inherit;font-weight:600;background:none;border:0;padding:0;cursor:pointer;color:inherit}
th[aria-sort=ascending] button::after{content:" \\25B2"}th[aria-sort=descending] button::after{content:" \\25BC"}
tr.hl td{background:#fff4d6}tr.published td{color:#666;font-style:italic}
.controls{display:flex;flex-wrap:wrap;gap:.8rem;margin:1rem 0;align-items:center}
.plot-wrap{margin:1rem 0}svg.plot{max-width:100%;height:auto;border:1px solid #eee}
circle.pt{cursor:pointer;stroke-width:1.5}circle.pt.hl{stroke:#000;stroke-width:3}
#plot-info{min-height:1.2em;color:#333}.note{color:#8a4b00}
dl.kv{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem}dl.kv dt{font-weight:600}
dl.kv dd{margin:0;overflow-wrap:anywhere}.desc{white-space:pre-wrap;background:#f7f7f7;padding:.6rem}
code{font-size:.85em}.table-wrap{overflow-x:auto}
.badge{display:inline-block;font-size:.72rem;font-weight:700;padding:0 .35rem;margin-left:.3rem;border-radius:.2rem;
vertical-align:middle;letter-spacing:.02em}.badge.synthetic{background:#b00020;color:#fff}
.badge.random{background:#444;color:#fff}.badge.unverified{background:#ffe08a;color:#5a4100}
.banner{padding:.5rem .8rem;margin:.6rem 0;border-left:.4rem solid #b00020;background:#fdecee}
.banner.random{border-color:#444;background:#eee}.banner.unverified{border-color:#c99700;background:#fff7dc}
section.board-section{margin-top:1.5rem}
""" + GALLERY_CSS


def _page(title: str, body: str, script: str | None) -> str:
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
            f"<meta http-equiv=\"Content-Security-Policy\" content=\"{esc(_csp(script))}\">\n"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            f"<meta name=\"referrer\" content=\"no-referrer\">\n"
            f"<title>{esc(title)}</title>\n<style>{CSS}</style></head>\n<body>\n{body}\n"
            + (f"<script>{script}</script>\n" if script is not None else "") + "</body></html>\n")


# ----------------------------------------------------------------------------------- the plot
PLOT_W, PLOT_H = 720, 440
MARGIN = {"left": 60, "right": 20, "top": 20, "bottom": 50}


def _ticks(lo: float, hi: float, n: int = 6) -> list[float]:
    span = max(hi - lo, 1e-9)
    raw = span / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.ceil(lo / step) * step
    return [round(start + i * step, 10) for i in range(int((hi - start) / step + 1e-9) + 1)]


def _badges(e: Entry) -> str:
    """The row's marks as HTML badges (each with its meaning in a tooltip)."""
    words = {"synthetic": ("SYNTHETIC", "scored on generated data, not human data"),
             "random": ("random weights", RANDOM_NOTE),
             "unverified": ("unverified", e.note or "not checked against a pinned dataset")}
    return "".join(f'<span class="badge {f}" title="{esc(words[f][1])}">{esc(words[f][0])}</span>' for f in e.flags)


def _mark_text(e: Entry) -> str:
    """The row's marks as plain text (plot labels, exports): e.g. ``[SYNTHETIC data; random weights]``."""
    words = {"synthetic": "SYNTHETIC data", "random": "random weights", "unverified": "unverified"}
    return f" [{'; '.join(words[f] for f in e.flags)}]" if e.flags else ""


def plot_svg(entries: Sequence[Entry], dataset: str) -> str:
    """Inline SVG of top-1 (x, %) against alignment (y, % of ceiling) for ``dataset``'s rows with
    both values. Measured points are filled circles, published ones hollow; family gives the colour;
    random-weight controls are grey with a dashed outline, unverified submissions have a dashed black
    outline, and a plot of generated data says SYNTHETIC DATA across its top."""
    from benchmark.plots import FAMILY_STYLE

    pts = [e for e in entries if e.dataset == dataset and e.top1 is not None and e.alignment is not None]
    synthetic = any(e.synthetic for e in entries if e.dataset == dataset)
    x0, y0 = MARGIN["left"], MARGIN["top"]
    w = PLOT_W - MARGIN["left"] - MARGIN["right"]
    h = PLOT_H - MARGIN["top"] - MARGIN["bottom"]
    xs = [e.top1 for e in pts] or [0.0, 100.0]
    ys = [e.alignment for e in pts] or [0.0, 100.0]
    xlo, xhi = min(xs), max(xs)
    ylo, yhi = min(min(ys), 0.0), max(ys)
    padx, pady = max((xhi - xlo) * 0.08, 1.0), max((yhi - ylo) * 0.08, 1.0)
    xlo, xhi, ylo, yhi = xlo - padx, xhi + padx, ylo - (pady if ylo < 0 else 0), yhi + pady

    def sx(v: float) -> float:
        return x0 + (v - xlo) / (xhi - xlo) * w

    def sy(v: float) -> float:
        return y0 + h - (v - ylo) / (yhi - ylo) * h

    what = "SYNTHETIC data " if synthetic else ""
    parts = [f'<svg class="plot" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {PLOT_W} {PLOT_H}" '
             f'width="{PLOT_W}" height="{PLOT_H}" role="img" data-dataset="{esc(dataset)}" '
             f'data-synthetic="{"true" if synthetic else "false"}" '
             f'aria-label="ImageNet top-1 accuracy versus human alignment on {what}{esc(dataset)}">',
             f'<rect x="{x0}" y="{y0}" width="{w}" height="{h}" fill="{"#fdecee" if synthetic else "#fff"}" stroke="#999"/>',
             f'<text x="{x0}" y="{y0 - 6}" font-size="12" font-weight="600">{esc(dataset)}</text>']
    for t in _ticks(xlo, xhi):
        parts.append(f'<line x1="{sx(t):.1f}" y1="{y0}" x2="{sx(t):.1f}" y2="{y0 + h}" stroke="#eee"/>'
                     f'<text x="{sx(t):.1f}" y="{y0 + h + 16}" font-size="11" text-anchor="middle">{t:g}</text>')
    for t in _ticks(ylo, yhi):
        parts.append(f'<line x1="{x0}" y1="{sy(t):.1f}" x2="{x0 + w}" y2="{sy(t):.1f}" stroke="#eee"/>'
                     f'<text x="{x0 - 6}" y="{sy(t) + 4:.1f}" font-size="11" text-anchor="end">{t:g}</text>')
    parts.append(f'<text x="{x0 + w / 2:.1f}" y="{PLOT_H - 10}" font-size="12" text-anchor="middle">'
                 'ImageNet top-1 accuracy (%)</text>')
    parts.append(f'<text transform="translate(14 {y0 + h / 2:.1f}) rotate(-90)" font-size="12" text-anchor="middle">'
                 'Alignment (% of human ceiling)</text>')
    if synthetic:
        parts.append(f'<text class="synthetic-label" x="{x0 + w - 8}" y="{y0 + 18}" font-size="15" font-weight="700" '
                     f'fill="#b00020" text-anchor="end">SYNTHETIC DATA: {esc(dataset)} (not human data)</text>')
    # published (hollow) first, so measured points are drawn on top
    for e in sorted(pts, key=lambda e: e.kind != "published"):
        _, colour = FAMILY_STYLE.get(e.family, FAMILY_STYLE[None])
        fill = "none" if e.kind == "published" else ("#bbb" if e.random else colour)
        stroke, dash = colour, ""
        if e.random:
            stroke, dash = "#444", ' stroke-dasharray="2 2"'
        elif not e.verified:
            stroke, dash = "#000", ' stroke-dasharray="3 2"'
        label = (f"{e.model}{_mark_text(e)}: top-1 {e.top1:.1f}%, alignment {e.alignment:.1f}% "
                 f"({e.kind}; {e.submitted_by})")
        parts.append(
            f'<circle class="pt {e.kind}{"".join(" " + f for f in e.flags)}" cx="{sx(e.top1):.2f}" '
            f'cy="{sy(e.alignment):.2f}" r="5" fill="{fill}" stroke="{stroke}"{dash} tabindex="0" '
            f'data-row="{e.row_id}" data-model="{esc(e.model_id)}" data-label="{esc(e.model + _mark_text(e))}" '
            f'data-kind="{e.kind}" data-flags="{" ".join(e.flags)}" data-x="{e.top1:.1f}" data-y="{e.alignment:.1f}">'
            f'<title>{esc(label)}</title></circle>')
    legend_y = y0 + 8 + (20 if synthetic else 0)
    families = sorted({e.family for e in pts}, key=lambda f: FAMILY_STYLE.get(f, FAMILY_STYLE[None])[0])
    legend = [(f'fill="{FAMILY_STYLE.get(f, FAMILY_STYLE[None])[1]}"', FAMILY_STYLE.get(f, FAMILY_STYLE[None])[0])
              for f in families]
    if any(e.kind == "published" for e in pts):
        legend.append(('fill="none" stroke="#555"', "hollow: published (paper)"))
    if any(e.random for e in pts):
        legend.append(('fill="#bbb" stroke="#444" stroke-dasharray="2 2"', "grey, dashed: random weights (control)"))
    if any(not e.verified for e in pts):
        legend.append(('fill="#fff" stroke="#000" stroke-dasharray="3 2"', "dashed outline: unverified submission"))
    for i, (style, name) in enumerate(legend):
        yy = legend_y + 14 * i
        parts.append(f'<circle cx="{x0 + 12}" cy="{yy + 4}" r="4" {style}/>'
                     f'<text x="{x0 + 20}" y="{yy + 8}" font-size="11">{esc(name)}</text>')
    if not pts:
        parts.append(f'<text x="{x0 + w / 2:.1f}" y="{y0 + h / 2:.1f}" text-anchor="middle" font-size="13">'
                     'no model with both a top-1 and an alignment</text>')
    parts.append("</svg>")
    return "".join(parts)


# ----------------------------------------------------------------------------------- pages
def _row_html(e: Entry) -> str:
    search = " ".join(str(v) for v in (e.model, e.model_id, e.family or "", e.submitted_by, e.kind,
                                      " ".join(e.flags))).lower()
    data = {"dataset": e.dataset, "section": e.section, "rank": e.rank, "model": e.model, "family": e.family or "",
            "top1": e.top1, "alignment": e.alignment, "sd": e.sd, "dice": e.dice, "iou": e.iou,
            "weights": e.weights_label, "data": e.data, "submitted_by": e.submitted_by, "date": e.date or "",
            "kind": e.kind, "flags": " ".join(e.flags), "search": search}
    attrs = " ".join(f'data-{k}="{esc("" if v is None else v)}"' for k, v in data.items())
    name = f'<a href="{esc(quote(e.page))}">{esc(e.model)}</a>' if e.page else esc(e.model)
    top1_title = f' title="{esc(e.top1_source)}"' if e.top1_source else ""
    note = f' title="{esc(e.note)}"' if e.note else ""
    rank = e.rank if e.rank is not None else ("control" if e.random else "")
    cells = [
        f'<td class="num">{rank}</td>', f"<td>{name}{_badges(e)}</td>",
        f"<td>{esc(e.family or '')}</td>", f'<td class="num"{top1_title}>{fmt(e.top1, 1)}'
        + ("*" if e.origin == "submission" and e.top1 is not None else "") + "</td>",
        f'<td class="num">{fmt(e.alignment, 1)}</td>', f'<td class="num">{fmt(e.sd, 1)}</td>',
        f'<td class="num">{fmt(e.dice, 3)}</td>', f'<td class="num">{fmt(e.iou, 3)}</td>',
        f"<td>{esc(e.weights_label)}</td>", f"<td{note}>{esc(e.data)}</td>",
        f"<td>{esc(e.submitted_by)}</td>", f"<td>{esc(e.date or '')}</td>", f"<td>{esc(e.kind)}</td>",
    ]
    classes = " ".join([e.kind, *e.flags])
    return f'<tr id="{e.row_id}" class="{classes}" {attrs}>' + "".join(cells) + "</tr>"


def _table(section: str, rows: Sequence[Entry]) -> str:
    head = "".join(
        f'<th scope="col" data-key="{k}" data-type="{t}" aria-sort="{"ascending" if k == "rank" else "none"}"'
        f'{" class=num" if t == "num" else ""}><button type="button">{esc(label)}</button></th>'
        for k, label, t in COLUMNS)
    title, text = SECTIONS[section]
    table_id = "board" if section == "main" else f"board-{section}"
    body = "\n".join(_row_html(e) for e in rows)
    return (f'<section class="board-section" id="section-{section}" data-section="{section}">'
            f'<h2>{esc(title)}</h2><p class="sub">{esc(text)}</p>'
            f'<div class="table-wrap"><table id="{table_id}" class="board" data-section="{section}"><thead><tr>{head}'
            f'</tr></thead>\n<tbody>\n{body}\n</tbody></table></div></section>')


def index_html(data: SiteData, script: str) -> str:
    from benchmark.plots import FAMILY_STYLE

    families = sorted({e.family for e in data.entries if e.family})
    options = "".join(f'<option value="{esc(f)}">{esc(FAMILY_STYLE.get(f, (f,))[0])}</option>' for f in families)
    ds_options = "".join(
        f'<option value="{esc(d)}"{" selected" if i == 0 else ""}>{esc(d)}'
        f'{" (SYNTHETIC)" if d in data.synthetic_datasets else ""}</option>' for i, d in enumerate(data.datasets))
    if len(data.datasets) > 1:
        ds_options += '<option value="">all datasets</option>'
    sections = []
    for section in SECTIONS:
        rows = [e for e in data.entries if e.section == section]
        if rows or section == "main":
            sections.append(_table(section, rows))
    plots = "\n".join(f'<div class="plot-wrap">{plot_svg(data.entries, d)}</div>' for d in data.datasets)
    notes = "".join(f"<li>{esc(_clip(n, 600))}</li>" for n in data.notes)
    synthetic = ""
    if data.synthetic_datasets:
        synthetic = (f'<p class="banner">SYNTHETIC data: {esc(", ".join(data.synthetic_datasets))} '
                     "is generated (shapes, simulated participants). Its rows are listed in their own section and "
                     "say nothing about human visual strategies.</p>")
    body = f"""<h1>alignbench leaderboard</h1>
<p class="sub">How closely do vision models follow human visual strategies? Alignment is the mean per-image
Spearman correlation between a model's saliency map and the human ClickMe map, as a percentage of the human
inter-rater ceiling. <em>Measured</em> rows were scored with alignbench; <em>published</em> rows are read off the
paper's figures. Top-1 marked * is claimed by the submitter (hover for how it was measured). Rows marked
<span class="badge random">random weights</span> are untrained controls (not ranked);
<span class="badge unverified">unverified</span> and <span class="badge synthetic">SYNTHETIC</span> rows are
listed apart.</p>
{synthetic}
<div class="controls">
<label>Dataset <select id="filter-dataset">{ds_options}</select></label>
<label>Search <input id="filter-text" type="search" placeholder="model, family, submitter"></label>
<label>Family <select id="filter-family"><option value="">all</option>{options}</select></label>
<label>Rows <select id="filter-kind"><option value="">measured and published</option>
<option value="measured">measured</option><option value="published">published</option></select></label>
<span><span id="row-count">{len(data.entries)}</span> rows shown</span>
</div>
<h2>Accuracy versus alignment</h2>
<p id="plot-info" aria-live="polite">Point at a circle for its model; click it to find its row.</p>
{plots}
{"".join(sections)}
<p>Download: <a href="leaderboard.csv">CSV</a> · <a href="leaderboard.md">Markdown</a></p>
{f'<h2>Notes</h2><ul class="note">{notes}</ul>' if notes else ''}
<pre id="test-output" hidden></pre>"""
    return _page("alignbench leaderboard", body, script)


def _kv(items: Sequence[tuple[str, Any]]) -> str:
    out = []
    for key, value in items:
        if value is None or value == "":
            continue
        if isinstance(value, dict):
            value = ", ".join(f"{k}: {v}" for k, v in sorted(value.items()))
        out.append(f"<dt>{esc(key)}</dt><dd>{value if isinstance(value, Markup) else esc(_clip(value))}</dd>")
    return f'<dl class="kv">{"".join(out)}</dl>'


class Markup(str):
    """Already-escaped HTML (built here from escaped parts)."""


def model_html(entries: Sequence[Entry], scores_links: dict[str, str], galleries: Sequence[str] = ()) -> str:
    """The page of one measured model: its rows on every dataset, its galleries (already-escaped HTML
    of :func:`leaderboard.gallery.section_html`), then where it came from."""
    first = entries[0]
    parts = [f'<p><a href="../index.html">&larr; leaderboard</a></p><h1>{esc(first.model)}{_badges(first)}</h1>',
             f'<p class="sub">id <code>{esc(first.model_id)}</code> · {esc(first.kind)} · '
             f'{"submitted by " + esc(first.submitted_by) if first.origin == "submission" else "catalog model"}</p>']
    synthetic = sorted({e.dataset for e in entries if e.synthetic})
    if synthetic:
        parts.append(f'<p class="banner synthetic">SYNTHETIC DATA: {esc(", ".join(synthetic))} is generated data '
                     "(shapes, simulated participants); the scores on it say nothing about human visual strategies.</p>")
    if any(e.random for e in entries):
        parts.append(f'<p class="banner random">RANDOM WEIGHTS: {esc(RANDOM_NOTE)}.</p>')
    for e in entries:
        if not e.verified:
            parts.append(f'<p class="banner unverified">UNVERIFIED on {esc(e.dataset)}: {esc(e.note)}</p>')
    head = "".join(f"<th>{h}</th>" for h in ("Dataset", "Section", "Rank", "Top-1 (%)", "Alignment (%)", "SD (%)",
                                              "Spearman", "Dice", "IoU", "Images", "Weights", "Data",
                                              "Per-image scores"))
    rows = []
    for e in entries:
        link = scores_links.get(e.dataset)
        rank = e.rank if e.rank is not None else ("control" if e.random else "")
        rows.append("<tr>" + "".join([
            f"<td>{esc(e.dataset)}{_badges(e)}</td>", f"<td>{esc(SECTIONS[e.section][0])}</td>",
            f'<td class="num">{rank}</td>', f'<td class="num">{fmt(e.top1, 1)}</td>',
            f'<td class="num">{fmt(e.alignment, 1)}</td>', f'<td class="num">{fmt(e.sd, 1)}</td>',
            f'<td class="num">{fmt(e.spearman, 3)}</td>', f'<td class="num">{fmt(e.dice, 3)}</td>',
            f'<td class="num">{fmt(e.iou, 3)}</td>', f'<td class="num">{esc(e.n_images)}</td>',
            f"<td>{esc(e.weights_label)}</td>", f"<td>{esc(e.data)}</td>",
            f'<td>{f"<a href={chr(34)}{esc(quote(link))}{chr(34)}>CSV</a>" if link else ""}</td>']) + "</tr>")
    parts.append(f"<h2>Scores</h2><table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>")
    parts.extend(galleries)
    sub = first.submission
    if sub is not None:
        model = sub.get("model") if isinstance(sub.get("model"), dict) else {}
        person = sub.get("submitter") if isinstance(sub.get("submitter"), dict) else {}
        top1 = sub.get("top1") if isinstance(sub.get("top1"), dict) else {}
        url = safe_url(model.get("url"))
        parts.append("<h2>Submission</h2>" + _kv([
            ("Submitted by", person.get("name")), ("Affiliation", person.get("affiliation")),
            ("Date", sub.get("created")), ("Licence", model.get("licence")),
            ("Family", model.get("family")),
            ("URL", Markup(f'<a href="{esc(url)}" rel="nofollow noopener noreferrer">{esc(url)}</a>') if url
             else model.get("url")),
            ("Claimed top-1 (%)", top1.get("claimed")), ("How top-1 was measured", top1.get("method")),
        ]))
        parts.append(f'<h3>Description</h3><div class="desc">{esc(model.get("description"))}</div>')
        src = model.get("source") if isinstance(model.get("source"), dict) else {}
        parts.append("<h3>Model source</h3>" + _kv([
            ("Kind", src.get("kind")), ("Architecture", src.get("architecture")), ("Weights", src.get("weights")),
            ("File", src.get("file")), ("File sha256", src.get("file_sha256")),
            ("Weights sha256", model.get("weights_sha256")),
            ("Preprocessing", src.get("preprocess") if isinstance(src.get("preprocess"), dict) else
             ("raw float32 [0, 255] RGB" if "preprocess" in src else None)),
            ("Preprocessing from", src.get("preprocess_origin")),
            ("Built in the sandbox", None if "sandboxed" not in src else ("yes" if src.get("sandboxed") else
                                                                          "NO (--trust-plugin)")),
        ]))
    for e in entries:
        r = e.record or {}
        prov = r.get("provenance") if isinstance(r.get("provenance"), dict) else {}
        parts.append(f"<h2>Provenance: {esc(e.dataset)}</h2>" + _kv([
            ("Data", e.data), ("Why", e.note), ("Dataset fingerprint", r.get("dataset_fingerprint")),
            ("Generated (synthetic) data", "YES" if e.synthetic else "no"), ("Images scored", r.get("n_images")),
            ("Images with undefined score", r.get("n_undefined")), ("Limit", r.get("limit")),
            ("Ceiling", r.get("ceiling")), ("Ceiling source", r.get("ceiling_source")),
            ("Explainer", r.get("explainer")), ("Precision", r.get("precision")), ("Framework", r.get("framework")),
            ("Weights", e.weights_label + (f" ({r.get('weights')})" if r.get("weights") else "")),
            ("Weights sha256", r.get("weights_sha256")),
            ("Scores sha256", r.get("scores_sha256")), ("Top-1 source", e.top1_source),
            ("alignbench version", prov.get("alignbench_version")), ("Git commit", prov.get("git_commit")),
            ("Date", prov.get("date")), ("Device", prov.get("device")), ("Python", prov.get("python")),
            ("Platform", prov.get("platform")),
            ("Frameworks", prov.get("frameworks") if isinstance(prov.get("frameworks"), dict) else None),
        ]))
    return _page(f"{first.model} - alignbench leaderboard", "\n".join(parts), None)


# ----------------------------------------------------------------------------------- exports
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _csv_text(value: Any) -> Any:
    # a spreadsheet would run a submitted "=HYPERLINK(...)" as a formula: make such text plain
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def _export_row(e: Entry) -> dict[str, Any]:
    return {"dataset": e.dataset, "section": e.section, "rank": e.rank, "model_id": e.model_id, "model": e.model,
            "family": e.family, "top1": None if e.top1 is None else round(e.top1, 2), "top1_source": e.top1_source,
            "alignment": None if e.alignment is None else round(e.alignment, 2),
            "sd": None if e.sd is None else round(e.sd, 2),
            "spearman": None if e.spearman is None else round(e.spearman, 4),
            "dice": None if e.dice is None else round(e.dice, 4), "iou": None if e.iou is None else round(e.iou, 4),
            "n_images": e.n_images, "weights": e.weights_label, "random_weights": "yes" if e.random else "no",
            "data": e.data, "synthetic": "yes" if e.synthetic else "no", "verified": "yes" if e.verified else "no",
            "note": e.note, "submitted_by": e.submitted_by, "date": e.date, "kind": e.kind, "origin": e.origin}


def export_csv(entries: Sequence[Entry]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=EXPORT_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for e in entries:
        writer.writerow({k: _csv_text("" if v is None else v) for k, v in _export_row(e).items()})
    return buf.getvalue()


def _md(value: Any) -> str:
    text = "" if value is None else " ".join(str(value).split())
    # entities for HTML (Markdown renderers pass raw HTML through), backslashes for Markdown syntax
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    for ch in "\\`*_[]|#":
        text = text.replace(ch, "\\" + ch)
    return text


def export_markdown(data: SiteData) -> str:
    out = ["# alignbench leaderboard", "",
           "Alignment: % of the human inter-rater ceiling. *measured*: scored with alignbench; *published*: "
           "read off the paper's figures. **RANDOM** weights: untrained controls, not ranked. Unverified and "
           "SYNTHETIC rows are listed in their own sections.", ""]
    for section, (title, text) in SECTIONS.items():
        rows = [e for e in data.entries if e.section == section]
        if not rows:
            continue
        out += [f"## {_md(title)}", "", _md(text), ""]
        for d in data.datasets:
            group = [e for e in rows if e.dataset == d]
            if not group:
                continue
            out += [f"### {_md(d)}" + (" (SYNTHETIC data)" if d in data.synthetic_datasets else ""), "",
                    "| Rank | Model | Family | Top-1 (%) | Alignment (%) | SD (%) | Dice | IoU | Weights | Data | "
                    "Submitted by | Date | Measured / published |",
                    "|---:|---|---|---:|---:|---:|---:|---:|---|---|---|---|---|"]
            for e in group:
                rank = str(e.rank) if e.rank is not None else ("control" if e.random else "")
                out.append("| " + " | ".join([
                    rank, _md(e.model + _mark_text(e)), _md(e.family), fmt(e.top1, 1), fmt(e.alignment, 1),
                    fmt(e.sd, 1), fmt(e.dice, 3), fmt(e.iou, 3), _md(e.weights_label), _md(e.data),
                    _md(e.submitted_by), _md(e.date), e.kind]) + " |")
            out.append("")
    return "\n".join(out)


# ----------------------------------------------------------------------------------- build
SITE_ENTRIES = ("models", "index.html", "leaderboard.csv", "leaderboard.md", MARKER)


def _prepare_output(output_dir: Path) -> None:
    """Make ``output_dir`` ready for a (re)build; a folder that is not an alignbench site, or one of
    whose entries is a link or of the wrong kind, is refused with one clear line, never followed."""
    if output_dir.exists() and not output_dir.is_dir():
        raise InvalidInputError(f"--output {output_dir}: exists and is not a folder")
    if output_dir.is_dir() and any(output_dir.iterdir()) and not (output_dir / MARKER).is_file():
        raise InvalidInputError(f"--output {output_dir}: folder is not empty and was not built by alignbench; "
                                "choose an empty or new folder")
    for name in SITE_ENTRIES:
        path = output_dir / name
        if path.is_symlink():
            raise InvalidInputError(f"--output {output_dir}: {name} is a symbolic link; a site folder holds plain "
                                    "files and folders only (remove the link, or choose another folder)")
        if path.exists() and (path.is_dir() != (name == "models")):
            raise InvalidInputError(f"--output {output_dir}: {name} is a {'folder' if path.is_dir() else 'file'}, "
                                    "not what a site holds there; choose another folder")
    try:
        if (output_dir / "models").is_dir():
            shutil.rmtree(output_dir / "models")  # pages of models no longer listed must not linger
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InvalidInputError(f"--output {output_dir}: cannot prepare the folder ({exc.strerror or exc})") from None
    atomic_write_text(output_dir / MARKER, "built by `alignbench leaderboard build`; rebuilt in place\n")


@dataclass
class SiteBuild:
    """What :func:`build` wrote: the index page, the rows listed, and notes (skipped records, rejected bundles)."""

    index: Path
    entries: list[Entry]
    notes: list[str]


def build(results_dir: str | Path, output_dir: str | Path, *, datasets: Sequence[str] | None = None,
          with_published: bool = True, validate: bool = True, pins: PinTable | str | Path | None = None) -> SiteBuild:
    """:func:`build_site`, also returning the rows and the notes."""
    output_dir = Path(output_dir)
    data = collect(results_dir, datasets=datasets, with_published=with_published, validate=validate, pins=pins)
    _prepare_output(output_dir)
    script = _script()
    by_page: dict[str, list[Entry]] = {}
    for e in data.entries:
        if e.page:
            by_page.setdefault(e.page, []).append(e)
    (output_dir / "models").mkdir(exist_ok=True)
    for page, group in by_page.items():
        links = {}
        for e in group:
            if e.scores_file is not None:
                name = f"{Path(page).stem}.{e.dataset}.scores.csv"
                atomic_copy_file(e.scores_file, output_dir / "models" / name)
                links[e.dataset] = name
        shown = [g for g in (model_gallery(e, Path(results_dir), data.notes) for e in group) if g is not None]
        atomic_write_text(output_dir / page, model_html(group, links, [section_html(g, group[0].model) for g in shown]))
    atomic_write_text(output_dir / "leaderboard.csv", export_csv(data.entries))
    atomic_write_text(output_dir / "leaderboard.md", export_markdown(data))
    index = atomic_write_text(output_dir / "index.html", index_html(data, script))
    return SiteBuild(index=index, entries=data.entries, notes=data.notes)


def build_site(results_dir: str | Path, output_dir: str | Path, *, datasets: Sequence[str] | None = None,
               with_published: bool = True, validate: bool = True, pins: PinTable | str | Path | None = None) -> Path:
    """Build the static site from ``results_dir`` into ``output_dir``; returns ``output_dir/index.html``.

    ``datasets``: which datasets to list (default: every one with records); ``with_published``: add
    the paper's published points as "published" rows; ``validate``: list only submission bundles
    that pass validation (the others are named in the page's notes); ``pins``: the known-datasets
    table the rows are checked and sectioned against (default: the package's). Raises
    :class:`InvalidInputError` when ``output_dir`` is a non-empty folder not built by this function.
    """
    return build(results_dir, output_dir, datasets=datasets, with_published=with_published, validate=validate,
                 pins=pins).index
