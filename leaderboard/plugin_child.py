"""Run a submission plugin and export its model: the child side of :mod:`leaderboard.sandbox`.

Started as ``python -I plugin_child.py PLUGIN OUT_DIR MEMORY_MB CPU_S FILE_MB`` (inside the bubblewrap
sandbox, or, trusted, in a fresh temporary working folder). Before the plugin is imported it sets its
own hard resource limits (address space, CPU seconds (0: none), largest file; no core dumps), which
the plugin cannot raise again, makes itself the subreaper of its descendants
(``prctl(PR_SET_CHILD_SUBREAPER)``) and forks: the worker imports the plugin and builds the model;
this supervisor waits for it, then kills every descendant left (a ``setsid`` or double-forked child
is re-parented to the supervisor, not to init) and exits with the worker's status (128 + signal
when it was killed, with the signal's name in ``OUT_DIR/signal.txt``). It imports nothing from
alignbench (the plugin is untrusted code; this process is disposable). The worker calls
``build_model()`` and writes to OUT_DIR:

* a ``torch.nn.Module``: ``weights.safetensors`` (its state dict) and ``architecture.json`` naming a
  timm or torchvision architecture the parent can rebuild without running plugin code: the plugin's
  ``ARCHITECTURE = {"library": "timm" | "torchvision", "name": ..., "kwargs": {...}}``, or, for a timm
  model, the one it was created as;
* a ``keras.Model``: ``model.keras`` (loaded by the parent in Keras safe mode) and ``architecture.json``.

An optional ``PREPROCESS`` dict (fields of ``model_zoo.preprocessing.Preprocess``) is passed on
(``preprocess_origin`` says whether the plugin declared it or it was read off a timm model's data
config). Everything written is data the parent validates before use. The outcome goes to
``OUT_DIR/result.json``.
"""
import ctypes
import importlib.util
import json
import os
import signal
import sys
import time
import traceback

EXIT_PLUGIN_ERROR = 3


def _write(out_dir, payload):
    tmp = os.path.join(out_dir, ".result.json.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(payload, fh)
    os.replace(tmp, os.path.join(out_dir, "result.json"))


def _fail(out_dir, message):
    _write(out_dir, {"ok": False, "error": message})
    sys.exit(EXIT_PLUGIN_ERROR)


def _describe_error(exc):
    if isinstance(exc, MemoryError):
        return "MemoryError: the plugin ran out of memory"
    text = f"{type(exc).__name__}: {exc}"
    if "DefaultCPUAllocator" in text or "std::bad_alloc" in text or "Cannot allocate memory" in text:
        return "MemoryError: the plugin ran out of memory (" + text[:300] + ")"
    tb = traceback.extract_tb(exc.__traceback__)
    where = next((f"{f.filename}:{f.lineno}" for f in reversed(tb) if f.filename.endswith(".py")), "")
    return (text[:1500] + (f" (at {where})" if where else ""))


def _json_scalars(kwargs):
    if not isinstance(kwargs, dict):
        raise ValueError("ARCHITECTURE['kwargs'] must be a dict")
    for key, value in kwargs.items():
        if not isinstance(key, str) or not (value is None or isinstance(value, (bool, int, float, str))):
            raise ValueError(f"ARCHITECTURE['kwargs'][{key!r}]: only str keys and number/text/bool/null values")
    return kwargs


def _timm_preprocess(model):
    from timm.data import resolve_model_data_config

    cfg = resolve_model_data_config(model)
    mean, std = [float(v) for v in cfg["mean"]], [float(v) for v in cfg["std"]]
    return {"input_size": int(cfg["input_size"][-1]), "interpolation": cfg.get("interpolation", "bilinear"),
            "mean": mean, "std": std}


def _export_torch(module, model, out_dir):
    arch = getattr(module, "ARCHITECTURE", None)
    if arch is None:
        cfg = getattr(model, "pretrained_cfg", None)
        if type(model).__module__.startswith("timm.") and isinstance(cfg, dict) and cfg.get("architecture"):
            arch = {"library": "timm", "name": cfg["architecture"],
                    "kwargs": {"num_classes": int(getattr(model, "num_classes", 1000))}}
        else:
            raise ValueError(
                f"build_model() returned a {type(model).__module__}.{type(model).__name__}, whose architecture "
                "cannot be rebuilt without running plugin code. Return a timm model, or declare "
                "ARCHITECTURE = {'library': 'timm' or 'torchvision', 'name': ..., 'kwargs': {...}} in the plugin")
    if not isinstance(arch, dict) or arch.get("library") not in ("timm", "torchvision") \
            or not isinstance(arch.get("name"), str):
        raise ValueError("ARCHITECTURE must be {'library': 'timm' or 'torchvision', 'name': str, 'kwargs': {...}}")
    from safetensors.torch import save_model

    save_model(model, os.path.join(out_dir, "weights.safetensors"))
    preprocess = getattr(module, "PREPROCESS", None)
    origin = "declared by the plugin (PREPROCESS)" if preprocess is not None else None
    if preprocess is None and arch["library"] == "timm" and hasattr(model, "pretrained_cfg"):
        preprocess = _timm_preprocess(model)
        origin = "guessed: the timm data config of the model the plugin returned"
    return {"framework": "torch", "library": arch["library"], "name": arch["name"],
            "kwargs": _json_scalars(arch.get("kwargs", {})), "preprocess": preprocess,
            "preprocess_origin": origin, "weights": "weights.safetensors"}


def _limit(memory_mb, cpu_s, file_mb):
    import resource

    as_bytes = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (as_bytes, as_bytes))
    if cpu_s > 0:
        # soft limit: SIGXCPU; hard limit a little later: SIGKILL if the plugin ignores the signal
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 5))
    fsize = file_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _build(plugin, out_dir):
    """The worker: import the plugin, build and export its model (exits the process)."""
    try:
        spec = importlib.util.spec_from_file_location("alignbench_submission_plugin", plugin)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, whatever it is
        if isinstance(exc, SystemExit):
            _fail(out_dir, f"the plugin called exit({exc.code}) while being imported")
        _fail(out_dir, "importing the plugin failed: " + _describe_error(exc))
    build = getattr(module, "build_model", None)
    if not callable(build):
        _fail(out_dir, "the plugin defines no build_model() function")
    try:
        model = build()
        torch, keras = sys.modules.get("torch"), sys.modules.get("keras")
        if torch is not None and isinstance(model, torch.nn.Module):
            arch = _export_torch(module, model, out_dir)
        elif keras is not None and isinstance(model, keras.Model):
            model.save(os.path.join(out_dir, "model.keras"))
            pre = getattr(module, "PREPROCESS", None)
            arch = {"framework": "keras", "preprocess": pre, "weights": "model.keras",
                    "preprocess_origin": "declared by the plugin (PREPROCESS)" if pre is not None else None}
        else:
            raise TypeError(f"build_model() must return a torch.nn.Module or a keras.Model, "
                            f"got {type(model).__module__}.{type(model).__name__}")
        if arch["preprocess"] is not None and not isinstance(arch["preprocess"], dict):
            raise TypeError("PREPROCESS must be a dict of preprocessing fields")
        with open(os.path.join(out_dir, "architecture.json"), "w", encoding="utf-8") as fh:
            json.dump(arch, fh, indent=1)
    except BaseException as exc:  # noqa: BLE001
        if isinstance(exc, SystemExit):
            _fail(out_dir, f"the plugin called exit({exc.code}) in build_model()")
        _fail(out_dir, "build_model() failed: " + _describe_error(exc))
    _write(out_dir, {"ok": True})
    sys.exit(0)


PR_SET_CHILD_SUBREAPER = 36


def _set_subreaper():
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _children(pid):
    """Pids whose parent is ``pid`` (from /proc)."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                fields = fh.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if len(fields) > 1 and int(fields[1]) == pid:
            out.append(int(entry))
    return out


def _kill_descendants():
    """SIGKILL every process left below this one until none is (orphans come back to us: subreaper)."""
    me = os.getpid()
    for _ in range(10000):
        kids = _children(me)
        for pid in kids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            while os.waitpid(-1, os.WNOHANG)[0] > 0:
                pass
        except ChildProcessError:
            if not kids:
                return
        time.sleep(0.005)


def main(argv):
    plugin, out_dir = argv[1], argv[2]
    _limit(int(argv[3]), int(argv[4]), int(argv[5]))
    _set_subreaper()
    sys.stdout.flush()
    worker = os.fork()
    if worker == 0:
        try:
            _build(plugin, out_dir)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:  # noqa: BLE001 - never return into the supervisor's code
            code = EXIT_PLUGIN_ERROR
        else:
            code = 0
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    while True:
        try:
            _, status = os.waitpid(worker, 0)
            break
        except InterruptedError:
            continue
    _kill_descendants()
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:
            with open(os.path.join(out_dir, "signal.txt"), "w", encoding="ascii") as fh:
                fh.write(signal.Signals(sig).name)
        except (OSError, ValueError):
            pass
        os._exit(128 + sig)
    os._exit(os.WEXITSTATUS(status))


if __name__ == "__main__":
    main(sys.argv)
