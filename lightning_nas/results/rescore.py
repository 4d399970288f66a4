"""Re-score shipped records against a new version of their ground-truth table.

``python -m lightning_nas.results rescore results/NAME --previous OLD.csv [--table NEW.csv]``
(``trials.jsonl``, and ``trajectories.jsonl`` and ``tuning.json`` where the folder has them)

A search does not depend on its ground-truth table: the table only scores what the search returned
(the answer's ground truth, rank, regret and P(beat random), the decoded cell's ground truth per
epoch, the final ranking's ground-truth column). When a table is regenerated (a fresh tabulation
at a clean commit, as issue 19 asked), the searches need not run again: their records are scored
anew from what they recorded.

How each number is re-derived:
  * where the record names the architecture (the answer, the shared-weight selection, and in
    records written since this module the decoding rows and the final ranking), it is looked up in
    the new table: exact;
  * the final ranking of an older record (which kept only the previous table's values) is drawn
    again: the ranking callback draws its architectures from the seeded generator
    ``(seed, "ranking")`` uniformly over the space (``callbacks.common.sample_architectures``), and
    the previous table's sidecar names the space it covers. The draw is accepted only when every
    drawn architecture has, in the previous table, exactly the value the record holds at its
    position (100 values a record: a coincidence is impossible); the record then keeps the
    architectures, so later re-scorings are exact too;
  * other values without an architecture (older decoding rows, tuning trajectories, a ranking the
    draw does not reproduce) are inverted through the previous table: every architecture with that
    value there, looked up in the new table. Cells that compute the same function share their rows
    in both tables, so the inversion is unambiguous unless two different functions tie on the
    previous table's 6-decimal mean. Then ``RescoreError`` names the value and nothing is written,
    except for an intermediate decoding row (the answer itself is always exact): it keeps no
    ground truth (``null``) and lists its candidates (``unresolved``), the experiment counts such
    rows, and the regret figure leaves them out and says so;
  * the per-epoch ranking correlations before the final epoch keep the previous table's values
    (only the final epoch's scores are recorded) and the record says so
    (``ranking.epochs_scored_against``); the tables use the final epoch, re-scored.

The experiment's ``benchmark`` names the new table (by sha256) and ``rescored`` the previous one and
what was kept, so ``render`` accepts the records with the new table and the docs say which table
scored what.
"""
from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any, Optional

from lightning_nas.report.common import ReportError


class RescoreError(ReportError):
    """A record cannot be re-scored unambiguously; nothing was written."""


def _key(value: float) -> float:
    return round(float(value), 6)  # records and tables hold 6 decimals


class RankingDraws:
    """The final-ranking architectures of a record, drawn again as the ranking callback drew them:
    ``space.sample_many(count, generator(seed, "ranking"))`` over the space that the previous table's
    sidecar says it covers completely (``protocol.space``, ``space_options``, ``architectures: all``).
    Without such a sidecar nothing can be drawn (``None``)."""

    def __init__(self, table: Any) -> None:
        from lightning_nas.spaces import build_space

        protocol = (getattr(table, "sidecar", None) or {}).get("protocol") or {}
        self.space = None
        if protocol.get("architectures") == "all" and protocol.get("space"):
            self.space = build_space(protocol["space"], **(protocol.get("space_options") or {}))

    def keys(self, seed: Any, count: int) -> Optional[list[str]]:
        from lightning_nas.seeding import generator

        if self.space is None or not isinstance(seed, int) or count > self.space.size:
            return None
        return [self.space.key(a) for a in self.space.sample_many(count, generator(seed, "ranking"))]


class Rescorer:
    """Looks values up in the new table, by architecture or through the previous table's values."""

    def __init__(self, previous: Any, current: Any) -> None:
        from lightning_nas.metrics.random_baseline import RandomPolicy

        self.previous, self.current = previous, current
        self.draws = RankingDraws(previous)
        self.counts = {"rankings_drawn_again": 0, "decoding_rows_unresolved": 0}
        if set(previous.table()) != set(current.table()):
            raise RescoreError(f"{previous.path.name} and {current.path.name} hold different architectures: "
                               "a table can only be re-scored by another version of itself")
        self.by_value: dict[float, set[str]] = {}
        for key, value in previous.table().items():
            self.by_value.setdefault(_key(value), set()).add(key)
        self.policy = RandomPolicy.from_table(list(current.table().values()), current.higher_is_better)

    def keys_of(self, old_value: float) -> set[str]:
        keys = self.by_value.get(_key(old_value))
        if not keys:
            raise RescoreError(f"value {old_value} is not in {self.previous.path.name}: these records were "
                               "scored against another table; pass that one as --previous")
        return keys

    def value_of(self, old_value: Optional[float]) -> Optional[float]:
        """The new table's value of the architectures that had ``old_value`` in the previous table."""
        if old_value is None or not math.isfinite(old_value):
            return old_value
        keys = self.keys_of(old_value)
        values = {self.current.query(k) for k in keys}
        if len(values) != 1:
            raise RescoreError(f"value {old_value} of {self.previous.path.name} belongs to {len(keys)} architectures "
                               f"with {len(values)} different values in {self.current.path.name}: ambiguous")
        return values.pop()

    def regret(self, value: Optional[float]) -> Optional[float]:
        if value is None or not math.isfinite(value):
            return value
        best = self.current.best()
        return best - value if self.current.higher_is_better else value - best

    def answer(self, entry: dict[str, Any]) -> dict[str, Any]:
        """An answer (architecture, ground truth, rank, regret, P(beat random)) scored anew."""
        from lightning_nas.benchmarks import ground_truth_summary

        arch = entry.get("architecture")
        if arch is None or arch not in self.current:
            raise RescoreError(f"answer {arch!r} is not in {self.current.path.name}")
        old = entry.get("ground_truth")
        if old is not None and arch not in self.keys_of(old):  # the record was scored by the previous table
            raise RescoreError(f"answer {arch}: its recorded ground truth {old} is not its value in "
                               f"{self.previous.path.name}")
        summary = ground_truth_summary(self.current, arch)
        out = {**entry, "ground_truth": summary["ground_truth"], "rank": summary["rank"], "regret": summary["regret"]}
        goodness = summary["ground_truth"] if self.current.higher_is_better else -summary["ground_truth"]
        searches = int(entry.get("searches") or 1)
        if "p_beat_random" in entry:
            out["p_beat_random"] = self.policy.p_beat(goodness, searches)
        if "p_tie_random" in entry:
            out["p_tie_random"] = self.policy.p_tie(goodness, searches)
        return out

    def decoding_row(self, row: dict[str, Any]) -> dict[str, Any]:
        """A decoded architecture's row: exact by architecture; an older row through its value, or,
        where that value is ambiguous, no ground truth and its candidates (``unresolved``)."""
        arch = row.get("architecture")
        if arch is not None:
            value = self.current.query(arch)
        else:
            try:
                value = self.value_of(row.get("ground_truth"))
            except RescoreError as error:
                if "ambiguous" not in str(error):
                    raise
                keys = sorted(self.keys_of(row["ground_truth"]))
                self.counts["decoding_rows_unresolved"] += 1
                return {**row, "ground_truth": None, "regret": None, "unresolved": {
                    "previous_ground_truth": row["ground_truth"], "architectures": keys,
                    "ground_truth": [self.current.query(k) for k in keys]}}
        return {**row, "ground_truth": value, "regret": self.regret(value)}

    def ranked_architectures(self, record: dict[str, Any], final: dict[str, Any]) -> Optional[list[str]]:
        """The final ranking's architectures: recorded, or drawn again and checked value by value
        against the previous table (None when neither holds)."""
        if final.get("architectures"):
            return final["architectures"]
        recorded = final["ground_truth"]
        keys = self.draws.keys(record.get("seed"), len(recorded))
        if keys is None or any(v is None or _key(self.previous.query(k)) != _key(v) for k, v in zip(keys, recorded, strict=True)):
            return None
        self.counts["rankings_drawn_again"] += 1
        return keys

    def trial(self, record: dict[str, Any], previous_sha: str) -> dict[str, Any]:
        from lightning_nas.results.extract import agreement_by_score

        out = dict(record)
        out["answer"] = self.answer(record["answer"])
        if record.get("shared_weight_selection"):
            out["shared_weight_selection"] = self.answer(record["shared_weight_selection"])
        if record.get("decoding"):
            out["decoding"] = [self.decoding_row(row) for row in record["decoding"]]
        ranking = dict(record.get("ranking") or {})
        final = dict(ranking.get("final") or {})
        if final.get("ground_truth"):
            archs = self.ranked_architectures(record, final)
            if archs:
                final["architectures"] = archs
                truth = [self.current.query(a) for a in archs]
            else:
                truth = [self.value_of(v) for v in final["ground_truth"]]
            final["ground_truth"] = truth
            ranking["final"] = final
            epochs = [dict(e) for e in ranking.get("epochs") or []]
            if epochs and epochs[-1].get("epoch") == final.get("epoch"):
                epochs[-1] = {**epochs[-1], **agreement_by_score(
                    truth, final["supernet_accuracy"], final.get("supernet_loss") or [], float(ranking.get("threshold", 0.1)),
                    self.current.higher_is_better)}
                ranking["epochs"] = epochs
            if len(epochs) > 1:
                ranking["epochs_scored_against"] = ranking.get("epochs_scored_against") or previous_sha
            out["ranking"] = ranking
        return out

    def evaluated(self, value: Any) -> Any:
        """A tuning summary (``tuning.json``): every object naming an ``architecture`` and its ``test``
        value gets the new table's value and regret."""
        if isinstance(value, list):
            return [self.evaluated(v) for v in value]
        if not isinstance(value, dict):
            return value
        out = {k: self.evaluated(v) for k, v in value.items()}
        if isinstance(out.get("architecture"), str) and isinstance(out.get("test"), (int, float)):
            if out["architecture"] not in self.keys_of(out["test"]):
                raise RescoreError(f"tuning.json: {out['architecture']} has test {out['test']}, not its value in "
                                   f"{self.previous.path.name}")
            out["test"] = self.current.query(out["architecture"])
            if "test_regret" in out:
                out["test_regret"] = self.regret(out["test"])
        return out

    def trajectory(self, row: dict[str, Any]) -> dict[str, Any]:
        """A tuning trajectory point: its test value (of the incumbent) and regret."""
        if row.get("test") is None:
            return row
        value = self.value_of(float(row["test"]))
        return {**row, "test": value, "test_regret": self.regret(value)}


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def rescore(folder: str | Path, previous: str | Path, table: Optional[str | Path] = None) -> dict[str, Any]:
    """Re-score ``folder``'s records (``trials.jsonl``, and ``trajectories.jsonl`` where there is one)
    with ``table`` (default: the shipped table of the name the experiment records); returns the new
    ``benchmark`` entry. Writes nothing when any record cannot be re-scored."""
    from lightning_nas.benchmarks import TabulatedBenchmark
    from lightning_nas.io import atomic_write_text
    from lightning_nas.results.extract import _clean

    folder = Path(folder)
    experiment_path = folder / "experiment.json"
    if not experiment_path.is_file():
        raise RescoreError(f"{experiment_path} does not exist: RESULTS_DIR must be an extracted results folder")
    experiment = json.loads(experiment_path.read_text())
    info = experiment.get("benchmark") or {}
    if not info.get("sha256"):
        raise RescoreError(f"{experiment_path}: no ground-truth table recorded (benchmark.sha256)")
    previous_path = Path(previous)
    if not previous_path.is_file():
        raise RescoreError(f"--previous {previous_path}: no such file")
    if _sha(previous_path) != info["sha256"]:
        raise RescoreError(f"--previous {previous_path} (sha256 {_sha(previous_path)[:12]}) is not the table "
                           f"{folder.name} was scored against (sha256 {info['sha256'][:12]})")
    metric, higher = info.get("metric", "test_accuracy_mean"), bool(info.get("higher_is_better", True))
    old = TabulatedBenchmark(str(previous_path), metric=metric, higher_is_better=higher)
    new = TabulatedBenchmark(str(table or info["table"]), metric=metric, higher_is_better=higher)
    new_sha = _sha(new.path)
    if new_sha == info["sha256"]:
        raise RescoreError(f"{folder.name} is already scored against {new.path.name} (sha256 {new_sha[:12]})")
    rescorer = Rescorer(old, new)
    trials_path, trajectories_path = folder / "trials.jsonl", folder / "trajectories.jsonl"
    trials = [json.loads(line) for line in trials_path.read_text().splitlines() if line.strip()]
    rescored = [_clean(rescorer.trial(t, info["sha256"])) for t in trials]
    tuning_path, tuning = folder / "tuning.json", None
    if tuning_path.is_file():
        tuning = rescorer.evaluated(json.loads(tuning_path.read_text()))
    trajectories = None
    if trajectories_path.is_file():
        rows = [json.loads(line) for line in trajectories_path.read_text().splitlines() if line.strip()]
        trajectories = [rescorer.trajectory(r) for r in rows]
    benchmark = {**info, "sha256": new_sha, "size": len(new), "table": new.path.name}
    history = list(experiment.get("rescored") or [])
    history.append({"from": {"table": previous_path.name, "sha256": info["sha256"]}, "to": new_sha,
                    "kept": "ranking.epochs before the final epoch (per-epoch scores are not recorded)",
                    **rescorer.counts})
    experiment = {**experiment, "benchmark": benchmark, "rescored": history}
    atomic_write_text(trials_path, "".join(json.dumps(r, sort_keys=True, separators=(",", ":")) + "\n"
                                           for r in rescored))
    if tuning is not None:
        atomic_write_text(tuning_path, json.dumps(tuning, indent=2) + "\n")
    if trajectories is not None:
        atomic_write_text(trajectories_path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in trajectories))
    atomic_write_text(experiment_path, json.dumps(experiment, indent=1, sort_keys=True) + "\n")
    return benchmark
