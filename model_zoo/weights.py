"""Fetching and reading model weights, safely.

* Which weights: :class:`WeightsRequest` — ``"pretrained"`` (the published weights), ``"random"`` (the
  architecture's own random initialisation: the untrained control, nothing is downloaded), or a local
  file path (always wins over any cache).
* Where from: each source library's own cache and hub code (timm / Hugging Face hub, torchvision's
  ``load_state_dict_from_url``, ``keras.applications``, open_clip); plain checkpoint URLs go to
  ``cache_dir("weights")`` through :func:`fetch_url`.
* Mirror: ``ALIGNBENCH_WEIGHTS_MIRROR=URL`` fetches every checkpoint URL's file from ``URL/<file name>``
  instead (an institute mirror, or a loopback server in tests); the cache path stays keyed on the
  official URL, so a file fetched from a mirror is found later without it.
* Offline: ``ALIGNBENCH_OFFLINE=1`` (or ``HF_HUB_OFFLINE=1``, or :func:`offline_mode`) forbids downloads.
  Without them, a host that refuses a connection is probed once per process (:func:`reachable`) and
  then treated as offline, so a run without network does not retry every model. A file that is neither
  cached nor downloadable raises one :class:`WeightsUnavailableError` naming the model, the URL and the
  local path to put the file at (or ``weights=PATH``).
* Safety: no untrusted pickle is executed. Checkpoints are read with ``safetensors`` or
  ``torch.load(weights_only=True)`` (tensors and plain containers only); Keras files with safe mode.
"""
from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import re
import socket
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

from model_zoo.errors import InvalidInputError, WeightsUnavailableError
from model_zoo.fileio import cache_dir, create_temp_file, sha256_file

OFFLINE_ENV = "ALIGNBENCH_OFFLINE"
MIRROR_ENV = "ALIGNBENCH_WEIGHTS_MIRROR"
_TRUE = {"1", "true", "yes", "on"}
log = logging.getLogger(__name__)

# robustness-library checkpoints also carry the attacker's copy of the model and a normaliser module;
# upstream loaders (model-vs-human) keep only the model's own weights.
_DROP_PREFIXES = ("module.attacker.", "attacker.", "module.normalizer.", "normalizer.")
_STRIP_PREFIXES = ("module.", "model.")


@dataclass(frozen=True)
class WeightsRequest:
    """What ``load(..., weights=...)`` asked for: ``mode`` is ``pretrained``, ``random`` or ``file``."""

    mode: str
    path: Path | None = None

    @classmethod
    def parse(cls, weights: str | os.PathLike) -> "WeightsRequest":
        if isinstance(weights, str) and weights in ("pretrained", "random"):
            return cls(weights)
        path = Path(weights).expanduser()
        if not path.is_file():
            raise WeightsUnavailableError(
                f"weights={str(weights)!r}: expected 'pretrained', 'random' or the path of an existing weights file"
            )
        return cls("file", path)

    @property
    def random(self) -> bool:
        return self.mode == "random"


@dataclass
class Built:
    """A built model plus where its weights came from (``weights_sha256`` is ``None`` for random
    weights or where the library's cache file could not be identified)."""

    model: Any
    weights_sha256: str | None = None
    weights_file: Path | None = None


_OFFLINE: contextvars.ContextVar[bool | None] = contextvars.ContextVar("alignbench_offline", default=None)


def offline() -> bool:
    """Whether downloads are forbidden: inside :func:`offline_mode`, as it says; otherwise when
    ``ALIGNBENCH_OFFLINE`` or ``HF_HUB_OFFLINE`` is set to 1/true."""
    forced = _OFFLINE.get()
    if forced is not None:
        return forced
    return any(os.environ.get(v, "").strip().lower() in _TRUE for v in (OFFLINE_ENV, "HF_HUB_OFFLINE"))


@contextlib.contextmanager
def offline_mode(enabled: bool = True) -> Iterator[None]:
    """Forbid (or, with ``enabled=False``, leave to the environment) downloads of weights for the
    code inside, without touching ``os.environ`` (the command line's ``--offline``)."""
    token = _OFFLINE.set(True if enabled else None)
    try:
        yield
    finally:
        _OFFLINE.reset(token)


_REACHABLE: dict[tuple[str, int], bool] = {}  # (host, port) -> accepted a connection; once per process


def reachable(url: str, timeout_s: float = 3.0) -> bool:
    """Whether ``url``'s host (or the proxy configured for its scheme) accepts a TCP connection within
    ``timeout_s``. Probed once per process and host: the answer is cached, and an unreachable host is
    reported once (a warning), after which downloads from it are skipped like in offline mode."""
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme not in ("http", "https", "ftp"):  # file:// and other local sources need no network
        return True
    proxy = urllib.request.getproxies().get(parsed.scheme)
    target = urllib.parse.urlparse(proxy) if proxy and not urllib.request.proxy_bypass(parsed.hostname or "") else parsed
    host = target.hostname or ""
    port = target.port or (443 if target.scheme == "https" else 80)
    key = (host, port)
    if key not in _REACHABLE:
        try:
            with socket.create_connection(key, timeout=timeout_s):
                _REACHABLE[key] = True
        except OSError as exc:
            _REACHABLE[key] = False
            log.warning("%s:%d is unreachable (%s): working from the local caches for the rest of this run "
                        "(--offline skips this check)", host, port, exc)
    return _REACHABLE[key]


def downloads_allowed(url: str) -> bool:
    """Not in offline mode and ``url``'s host reachable (see :func:`reachable`)."""
    return not offline() and reachable(url)


def unavailable(model_id: str, url: str, local: Path | str, why: str) -> WeightsUnavailableError:
    """The one error every missing-weights path raises."""
    return WeightsUnavailableError(
        f"weights for model {model_id!r} are unavailable ({why}). Download {url} and put the file at "
        f"{local}, or pass weights=PATH (CLI: --weights PATH), or weights='random' for an untrained control."
    )


def url_cache_path(url: str) -> Path:
    """Where :func:`fetch_url` keeps ``url``: ``cache_dir("weights", host, file name)``."""
    parsed = urllib.parse.urlparse(url)
    query = urllib.parse.parse_qs(parsed.query)
    if "id" in query:  # Google Drive: the file name is in the id, not the path
        name = f"gdrive-{query['id'][0]}"
    else:
        name = Path(urllib.parse.unquote(parsed.path)).name or "download"
    name = re.sub(r"[^A-Za-z0-9._+-]", "_", name)
    return cache_dir("weights", re.sub(r"[^A-Za-z0-9._-]", "_", parsed.netloc or "local"), name)


def mirrored(url: str) -> str:
    """``url`` as fetched: ``$ALIGNBENCH_WEIGHTS_MIRROR/<file name of url>`` when the mirror is set."""
    mirror = os.environ.get(MIRROR_ENV, "").strip()
    if not mirror:
        return url
    return f"{mirror.rstrip('/')}/{urllib.parse.quote(url_cache_path(url).name)}"


def fetch_url(url: str, *, model_id: str, sha256: str | None = None) -> Path:
    """Return the cached file for ``url``, downloading it first (atomically) when allowed.

    The download comes from :func:`mirrored` ``(url)``; the cache path is :func:`url_cache_path` ``(url)``.

    Verifies ``sha256`` when given (a mismatch deletes nothing that was there before: a fresh download
    is left at ``<path>.bad`` for inspection). Raises :class:`WeightsUnavailableError` when offline or
    when the download fails.
    """
    path = url_cache_path(url)
    if not path.is_file():
        if offline():
            raise unavailable(model_id, url, path, f"offline mode ({OFFLINE_ENV}/HF_HUB_OFFLINE) and not in the cache")
        source = mirrored(url)
        if not reachable(source):
            raise unavailable(model_id, url, path, f"no network: {urllib.parse.urlparse(source).netloc} is "
                              "unreachable and the file is not in the cache")
        _download(source, path, model_id)
    if sha256:
        got = sha256_file(path)
        if got != sha256.lower():
            raise WeightsUnavailableError(
                f"weights for model {model_id!r} at {path} have sha256 {got}, expected {sha256}; "
                f"delete the file to download it again ({url})"
            )
    return path


def _download(url: str, path: Path, model_id: str) -> None:
    fd, tmp_path = create_temp_file(path, ".part")  # mode from the umask, unlike mkstemp's 0600
    os.close(fd)
    tmp = str(tmp_path)
    try:
        if urllib.parse.urlparse(url).netloc == "drive.google.com":
            _download_gdrive(url, tmp, model_id, path)
        else:
            from torch.hub import download_url_to_file  # streams with a progress bar, follows redirects

            download_url_to_file(url, tmp, progress=bool(os.environ.get("ALIGNBENCH_PROGRESS", "1") != "0"))
        with open(tmp, "rb") as fh:
            head = fh.read(512).lstrip().lower()
        if head.startswith((b"<!doctype html", b"<html")):
            raise unavailable(model_id, url, path, "the server answered with an HTML page, not a weights file")
        os.replace(tmp, path)
    except WeightsUnavailableError:
        raise
    except Exception as exc:  # URLError, HTTPError, timeouts: all mean "not downloadable now"
        raise unavailable(model_id, url, path, f"download failed: {type(exc).__name__}: {exc}") from exc
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _download_gdrive(url: str, tmp: str, model_id: str, path: Path) -> None:
    try:
        import gdown  # Google Drive needs its confirm-token dance for large files
    except ImportError:
        raise unavailable(model_id, url, path, "Google Drive downloads need `pip install gdown`") from None
    if gdown.download(url, tmp, quiet=True) is None:
        raise unavailable(model_id, url, path, "gdown could not fetch the file")


def load_state_dict(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint without executing pickled code: ``.safetensors`` via safetensors, anything
    else via ``torch.load(weights_only=True)`` (which refuses arbitrary objects).

    Returns the raw top-level mapping (checkpoints may nest the weights; see :func:`extract_state_dict`).
    """
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as exc:  # e.g. a pickle renamed .safetensors
            raise InvalidInputError(f"{path}: not a readable safetensors file ({type(exc).__name__}: "
                                    f"{str(exc)[:200]})") from None
    from model_zoo.frameworks import import_torch

    torch = import_torch()
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        import pickle

        if isinstance(exc, pickle.UnpicklingError) or "weights_only" in str(exc):
            raise InvalidInputError(
                f"{path}: refused to load: the checkpoint holds objects other than tensors and plain "
                "containers, and unpickling them could run arbitrary code. Convert it to safetensors with "
                "a trusted copy of its code."
            ) from None
        raise InvalidInputError(f"{path}: not a readable PyTorch checkpoint ({type(exc).__name__}: {exc})") from exc


def extract_state_dict(ckpt: Mapping[str, Any], *, where: str = "checkpoint") -> dict[str, Any]:
    """The model weights inside a checkpoint: the ``model`` or ``state_dict`` entry when present,
    without the robustness library's ``attacker``/``normalizer`` copies, with ``module.``/``model.``
    prefixes stripped (as the upstream loaders do)."""
    inner: Any = ckpt
    for key in ("model", "state_dict"):
        if isinstance(inner, Mapping) and isinstance(inner.get(key), Mapping):
            inner = inner[key]
            break
    if not isinstance(inner, Mapping):
        raise InvalidInputError(f"{where}: no state dict found")
    out: dict[str, Any] = {}
    for key, value in inner.items():
        if not isinstance(key, str) or key.startswith(_DROP_PREFIXES):
            continue
        for prefix in _STRIP_PREFIXES:
            if key.startswith(prefix):
                key = key[len(prefix):]
        out[key] = value
    if not out:
        raise InvalidInputError(f"{where}: the state dict is empty after removing attacker/normalizer keys")
    return out


def key_mismatch(expected: Any, found: Any, *, shown: int = 5) -> str:
    """One line on how two sets of state-dict keys differ: counts, then the first few of each kind
    (the unexpected keys are what reveal a naming problem, e.g. a ``backbone.`` prefix)."""
    expected, found = set(expected), set(found)
    parts = []
    for what, keys in (("missing", sorted(expected - found)), ("unexpected", sorted(found - expected))):
        if keys:
            more = f", ... {len(keys) - shown} more" if len(keys) > shown else ""
            parts.append(f"{len(keys)} {what} key(s): {', '.join(keys[:shown])}{more}")
    return "; ".join(parts)


def load_into(module: Any, state: Mapping[str, Any], *, where: str) -> None:
    """``module.load_state_dict(state, strict=True)`` with an error naming the file and listing the
    missing and unexpected keys (first few of each, with counts), or the tensors whose shapes differ."""
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        # described only once loading failed: modules may accept what a plain key comparison would not
        # (e.g. BatchNorm fills in a num_batches_tracked missing from an old checkpoint)
        own = module.state_dict()
        detail = key_mismatch(own, state)
        if not detail:
            shapes = [f"{k} {tuple(state[k].shape)} (architecture: {tuple(v.shape)})" for k, v in own.items()
                      if k in state and hasattr(state[k], "shape") and tuple(state[k].shape) != tuple(v.shape)]
            detail = (f"{len(shapes)} tensor(s) of another shape: {'; '.join(shapes[:5])}"
                      + (", ..." if len(shapes) > 5 else "")) if shapes else str(exc)[:600]
        raise InvalidInputError(f"{where}: weights do not fit the architecture: {detail}") from None


def torch_file_into(module: Any, path: Path) -> Built:
    """Load a local/cached PyTorch checkpoint into ``module``; records the file's sha256."""
    path = Path(path)
    load_into(module, extract_state_dict(load_state_dict(path), where=str(path)), where=str(path))
    return Built(module, sha256_file(path), path)
