"""What a run directory records so that the run can be reproduced: seed, command, versions, commit."""
from __future__ import annotations

import datetime
import json
import platform
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from lightning_nas.io import atomic_write_json

#: the records beside a run: a trial's status (``lightning_nas.experiments``) and the experiment that holds
#: trial directories (a ``--reproduce`` of a trial goes beside the experiment, never into it)
TRIAL_RECORD = "trial.json"
EXPERIMENT_RECORD = "experiment.json"

#: (torchmetrics: not a dependency of lightning_nas, but Lightning aggregates its logged values with it)
PACKAGES = ("torch", "pytorch-lightning", "torchmetrics", "jsonargparse", "numpy", "scipy", "scikit-learn", "wandb")


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def cpu_kind() -> dict[str, Any]:
    """What decides which CPU kernels torch runs, and so the last bits of a CPU result: the vendor and
    model (/proc/cpuinfo; ``platform.processor()`` elsewhere), the instruction set torch dispatches to
    (``torch.backends.cpu.get_cpu_capability()``: AVX2, AVX512, ...) and the architecture. Results are
    bit-identical only between runs with the same torch build, the same ``cpu_kind_key`` and the same
    thread count (docs/experiments.md, "What bit-identical covers")."""
    info: dict[str, Any] = {"vendor": None, "model": None, "machine": platform.machine()}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key == "vendor_id" and info["vendor"] is None:
                info["vendor"] = value.strip()
            elif key == "model name" and info["model"] is None:
                info["model"] = value.strip()
    except OSError:
        info["model"] = platform.processor() or None
    try:
        info["capability"] = torch.backends.cpu.get_cpu_capability()
    except (AttributeError, RuntimeError):
        info["capability"] = None
    return info


def cpu_kind_key(cpu: dict[str, Any] | None) -> str | None:
    """The part of ``cpu_kind()`` two runs must share for bit-identical CPU numbers
    ("AuthenticAMD/AMD EPYC/AVX2"); None when a record has no CPU kind (made before it was recorded).

    The model name's nominal clock (" @ 2.80GHz") is left out: hosts of one processor model report it
    or not depending on the hypervisor, and the clock does not change which kernels run (the NB201
    digits table, recorded as "Intel(R) Xeon(R) Processor @ 2.80GHz", retrained bit for bit on a host
    reporting "Intel(R) Xeon(R) Processor")."""
    if not cpu or not cpu.get("capability"):
        return None
    model = re.sub(r"\s*@\s*[\d.]+\s*[GM]Hz\s*$", "", str(cpu.get("model") or "?"))
    return "/".join((str(cpu.get("vendor") or "?"), model or "?", str(cpu.get("capability"))))


def git_state(path: Path | None = None, outputs: tuple[Path, ...] = ()) -> dict[str, Any]:
    """The project's commit and whether the work tree differs from it (None outside git). ``outputs``:
    folders the command itself writes (a results folder that ships in the repository), whose changes
    are what the command produced, not a change of the code that produced it."""
    where = str(path or Path(__file__).resolve().parent.parent)
    try:
        commit = subprocess.run(["git", "-C", where, "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        top = Path(subprocess.run(["git", "-C", where, "rev-parse", "--show-toplevel"], capture_output=True,
                                  text=True, timeout=10, check=True).stdout.strip())
        excluded = [f":(exclude){Path(o).resolve().relative_to(top.resolve())}" for o in outputs
                    if Path(o).resolve().is_relative_to(top.resolve())]
        dirty = subprocess.run(["git", "-C", str(top), "status", "--porcelain", "--untracked-files=no", "--", ".",
                                *excluded], capture_output=True, text=True, timeout=10, check=True).stdout.strip() != ""
        return {"commit": commit, "dirty": dirty}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def read_run_record(run_dir: Path) -> dict[str, Any]:
    """``RUN_DIR/run.json`` as a dict ({} when absent or unreadable)."""
    try:
        record = json.loads((Path(run_dir) / "run.json").read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def recorded_threads(run_dir: Path) -> int | None:
    """The torch thread count the run started with (``torch_threads``), or None if unknown."""
    threads = read_run_record(run_dir).get("torch_threads")
    return threads if isinstance(threads, int) and not isinstance(threads, bool) and threads > 0 else None


def write_run_record(run_dir: Path, seed: int, argv: list[str], event: str = "start", **extra: Any) -> Path:
    """Write ``run.json``. A start writes the record; a resume keeps it (the original command, start
    time and thread count) and appends to ``history``, the list of every start and resume."""
    entry = {"event": event, "command": [Path(sys.argv[0]).name, *argv], "time": _now(),
             "torch_threads": torch.get_num_threads(), "git": git_state(), **extra}
    existing = read_run_record(run_dir) if event == "resume" else {}
    if existing:
        history = list(existing.get("history") or [])
        if not history:  # a run.json written before the history existed: its start is the first entry
            history.append({"event": "start", "command": existing.get("command"), "time": existing.get("started"),
                            "torch_threads": existing.get("torch_threads"), "git": existing.get("git")})
        record = {**existing, "history": [*history, entry]}
    else:
        record = {
            "seed": seed,
            "command": entry["command"],
            "started": entry["time"],
            "versions": package_versions(),
            "git": entry["git"],
            "platform": platform.platform(),
            "cpu": cpu_kind(),
            # CPU results are bit-identical only with the same intra-op thread count: --resume restores
            # it and refuses another one, --reproduce uses it
            "torch_threads": entry["torch_threads"],
            **extra,
            "history": [entry],
        }
    return atomic_write_json(run_dir / "run.json", record)
