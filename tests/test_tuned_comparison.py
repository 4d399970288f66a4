"""Tuned one-shot runs against their defaults and the discrete optimisers, through one problem
(``results/tuned.py``; NAS-Bench-1Shot1 Sec. 5.4)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from lightning_nas.results.tables import TABLES, Records

ROOT = Path(__file__).resolve().parents[1]
CELLS = ["|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|avg_pool_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|",
         "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|",
         "|avg_pool_3x3~0|+|avg_pool_3x3~0|avg_pool_3x3~1|+|avg_pool_3x3~0|avg_pool_3x3~1|avg_pool_3x3~2|"]


def _lines(method: str, finals: list[tuple[float, float]]) -> list[dict]:
    """One repetition per (t_sim, final regret): an early incumbent of regret 9, then the final one."""
    out = []
    for rep, (t_sim, regret) in enumerate(finals):
        out.append({"method": method, "repetition": rep, "t_sim": t_sim / 10, "valid": 1.0, "test": 0.0,
                    "test_regret": 9.0})
        out.append({"method": method, "repetition": rep, "t_sim": t_sim, "valid": 2.0, "test": 0.0,
                    "test_regret": regret})
    return out


def test_tuned_table_reads_every_method_through_one_problem(tmp_path: Path) -> None:
    results = tmp_path / "results"
    folder = results / "blackbox"
    folder.mkdir(parents=True)
    experiment = json.loads((ROOT / "results" / "blackbox_nb201_digits_729" / "experiment.json").read_text())
    experiment["methods"] = {"random_search": {"optimizer": "random_search", "max_queries": 300},
                             "BOHB-darts": {"kind": "tuning", "default": {"results": "strategies", "group": "DARTS"}}}
    (folder / "experiment.json").write_text(json.dumps(experiment))
    tuned = [(500.0, 1.0), (520.0, 2.0), (480.0, 1.5)]
    searched = [(100.0, 3.0), (2000.0, 0.5), (300.0, 4.0), (450.0, 2.5)]
    lines = _lines("random_search", searched) + _lines("BOHB-darts", tuned)
    (folder / "trajectories.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    strategies = results / "strategies"
    strategies.mkdir()
    (strategies / "experiment.json").write_text(json.dumps({"name": "strategies"}))
    (strategies / "trials.jsonl").write_text("".join(
        json.dumps({"group": "DARTS", "seed": i, "answer": {"architecture": cell}}) + "\n" for i, cell in enumerate(CELLS)))
    text = TABLES["tuned"](Records.load(folder))
    rows = {line.split(" | ")[0].lstrip("| "): line.split(" | ") for line in text.splitlines()[2:] if line.startswith("|")}
    assert rows["BOHB-darts (tuned)"][3].startswith(f"{np.mean([1.0, 2.0, 1.5]):.3f} [")
    # the defaults' answers are looked up in the problem's test column (seeds 4-7), not their own records
    from lightning_nas.results.anytime import problem

    built = problem(Records.load(folder))
    default = [built.test_regret(built.test.query(c)) for c in CELLS]
    assert rows["DARTS at its defaults (strategies)"][3].startswith(f"{np.mean(default):.3f} [")
    assert rows["DARTS at its defaults (strategies)"][4].startswith(f"{np.mean([1.0, 2.0, 1.5]) - np.mean(default):+.3f} [")
    # random search at the tuned method's mean t_sim (500 s): the incumbent each repetition had by then
    at_500 = [3.0, 9.0, 4.0, 2.5]
    assert rows["Random search at the tuned t_sim"][3].startswith(f"{np.mean(at_500):.3f} [")
    assert rows["Random search at its end"][3].startswith(f"{np.mean([3.0, 0.5, 4.0, 2.5]):.3f} [")
    low, high = (float(x) for x in rows["Random search at the tuned t_sim"][4].split("[")[1].rstrip("]").split(", "))
    assert low < np.mean([1.0, 2.0, 1.5]) - np.mean(at_500) < high
    # a default group that is not there is one line naming it
    shutil.rmtree(strategies)
    from lightning_nas.report.common import ReportError

    with pytest.raises(ReportError, match="strategies"):
        TABLES["tuned"](Records.load(folder))
