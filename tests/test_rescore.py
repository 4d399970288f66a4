"""Re-scoring shipped records with a new version of their ground-truth table (lightning_nas/results/rescore.py):
every table-derived number follows the new table, exactly where the record names the architecture and
through the previous table's values where it does not; bad input writes nothing."""
from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from lightning_nas.metrics import ranking_agreement
from lightning_nas.metrics.random_baseline import RandomPolicy
from lightning_nas.results.__main__ import main
from lightning_nas.results.rescore import RescoreError, rescore
from lightning_nas.results import extract
from tests.test_published import make_experiment

TABLES = Path(__file__).resolve().parents[1] / "lightning_nas" / "benchmarks" / "tables"


def _values(path: Path) -> dict[str, float]:
    with path.open(newline="") as handle:
        return {r["ArchitectureString"]: float(r["test_accuracy_mean"]) for r in csv.DictReader(handle)}


def _write_table(path: Path, values: dict[str, float]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["position", "ArchitectureString", "test_accuracy_mean"])
        writer.writerows([i, k, f"{v:.6f}"] for i, (k, v) in enumerate(values.items()))
    return path


def _new_version(old: dict[str, float]) -> dict[str, float]:
    """Another 'tabulation': a value per distinct old row (rows of one function stay equal), reordered."""
    distinct = sorted(set(old.values()))
    shuffled = {v: distinct[(i * 37) % len(distinct)] + 0.5 for i, v in enumerate(distinct)}
    return {k: shuffled[v] for k, v in old.items()}


@pytest.fixture()
def tables(tmp_path):
    previous = tmp_path / "previous.csv"
    shutil.copy(TABLES / "nb201_digits_729.csv", previous)
    old = _values(previous)
    new = _write_table(tmp_path / "new.csv", _new_version(old))
    return previous, new, old, _values(new)


@pytest.fixture()
def folder(tmp_path, tables):
    experiment = make_experiment(tmp_path)
    return extract(experiment, name="exp", out=tmp_path / "results")


def _trials(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "trials.jsonl").read_text().splitlines()]


def test_every_table_derived_number_follows_the_new_table(folder, tables):
    previous, new, old, new_values = tables
    before = _trials(folder)
    assert main(["rescore", str(folder), "--previous", str(previous), "--table", str(new)]) == 0
    after = _trials(folder)
    policy = RandomPolicy.from_table(list(new_values.values()))
    best = max(new_values.values())
    for b, a in zip(before, after, strict=True):
        arch = a["answer"]["architecture"]
        assert arch == b["answer"]["architecture"]
        assert a["answer"]["ground_truth"] == pytest.approx(new_values[arch])
        assert a["answer"]["rank"] == 1 + sum(v > new_values[arch] for v in new_values.values())
        assert a["answer"]["regret"] == pytest.approx(best - new_values[arch], abs=1e-6)
        assert a["answer"]["p_beat_random"] == pytest.approx(policy.p_beat(new_values[arch]), abs=1e-6)
        # the final ranking: the recorded column re-derived through the previous table's values
        final_b, final_a = b["ranking"]["final"], a["ranking"]["final"]
        assert final_a["architectures"] == final_b["architectures"]
        assert final_a["ground_truth"] == pytest.approx([new_values[k] for k in final_a["architectures"]])
        expected = ranking_agreement(final_a["ground_truth"], final_a["supernet_accuracy"], 0.1)
        assert a["ranking"]["epochs"][-1]["by_accuracy"]["kendall_tau"] == pytest.approx(expected["kendall_tau"],
                                                                                         abs=1e-6)
        assert a["ranking"]["epochs"][0] == b["ranking"]["epochs"][0]  # not recorded per epoch: kept, and said
        assert a["ranking"]["epochs_scored_against"] == json.loads(
            (folder / "experiment.json").read_text())["rescored"][0]["from"]["sha256"]
        for row_b, row_a in zip(b.get("decoding", []), a.get("decoding", []), strict=True):
            assert row_a["ground_truth"] == pytest.approx(new_values[row_a["architecture"]])
            assert row_a["regret"] == pytest.approx(best - row_a["ground_truth"], abs=1e-6)
            assert row_b["ground_truth"] == pytest.approx(old[row_b["architecture"]])
    benchmark = json.loads((folder / "experiment.json").read_text())["benchmark"]
    assert benchmark["table"] == "new.csv" and benchmark["size"] == 729


def test_records_without_architectures_are_inverted_through_the_previous_table(folder, tables):
    previous, new, old, new_values = tables
    trials = _trials(folder)
    for t in trials:  # as records written before the architectures were kept
        t["ranking"]["final"].pop("architectures")
        for row in t.get("decoding", []):
            row.pop("architecture")
    (folder / "trials.jsonl").write_text("".join(json.dumps(t) + "\n" for t in trials))
    rescore(folder, previous, new)
    for b, a in zip(trials, _trials(folder), strict=True):
        by_old = {round(v, 6): k for k, v in old.items()}
        assert a["ranking"]["final"]["ground_truth"] == pytest.approx(
            [new_values[by_old[round(v, 6)]] for v in b["ranking"]["final"]["ground_truth"]])


def test_bad_input_writes_nothing(folder, tables, tmp_path):
    previous, new, old, _ = tables
    snapshot = {p.name: p.read_bytes() for p in folder.iterdir()}
    # the wrong previous table: named by its sha256
    with pytest.raises(RescoreError, match="is not the table"):
        rescore(folder, new, new)
    # an ambiguous inversion: a recorded value that two cells share in the previous table (cells of
    # one function), which the new table gives two values
    twins = next([k for k, v in old.items() if round(v, 6) == value]
                 for value in sorted({round(v, 6) for v in old.values()})
                 if sum(round(v, 6) == value for v in old.values()) > 1)
    trials = _trials(folder)
    for t in trials:
        t["ranking"]["final"].pop("architectures")
        t["ranking"]["final"]["ground_truth"][0] = old[twins[0]]
    (folder / "trials.jsonl").write_text("".join(json.dumps(t) + "\n" for t in trials))
    snapshot["trials.jsonl"] = (folder / "trials.jsonl").read_bytes()
    split = dict(_values(new))
    split[twins[1]] = split[twins[0]] + 1.0
    ambiguous = _write_table(tmp_path / "ambiguous.csv", split)
    with pytest.raises(RescoreError, match="ambiguous"):
        rescore(folder, previous, ambiguous)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == snapshot
    # the same table again: nothing to do, said as such
    assert main(["rescore", str(folder), "--previous", str(previous), "--table", str(previous)]) == 2


def test_tuning_summaries_and_trajectories_follow_the_new_table(tmp_path, tables):
    previous, new, old, new_values = tables
    arch = next(iter(old))
    folder = tmp_path / "tuning"
    folder.mkdir()
    import hashlib

    sha = hashlib.sha256(previous.read_bytes()).hexdigest()
    (folder / "experiment.json").write_text(json.dumps({"benchmark": {
        "table": "previous.csv", "sha256": sha, "metric": "test_accuracy_mean", "higher_is_better": True}}))
    (folder / "trials.jsonl").write_text("")
    (folder / "tuning.json").write_text(json.dumps({"incumbent": {"architecture": arch, "test": old[arch],
                                                                  "test_regret": 1.0}}))
    (folder / "trajectories.jsonl").write_text(json.dumps({"t_sim": 3.0, "test": old[arch], "test_regret": 1.0}) + "\n")
    rescore(folder, previous, new)
    best = max(new_values.values())
    incumbent = json.loads((folder / "tuning.json").read_text())["incumbent"]
    assert incumbent["test"] == pytest.approx(new_values[arch])
    assert incumbent["test_regret"] == pytest.approx(best - new_values[arch])
    point = json.loads((folder / "trajectories.jsonl").read_text())
    assert point["test"] == pytest.approx(new_values[arch]) and point["t_sim"] == 3.0


def test_older_rankings_are_drawn_again_and_ambiguous_decoding_rows_are_left_unresolved(folder, tables, tmp_path):
    """Records written before the architectures were kept: the final ranking is drawn again from the
    seeded generator over the space the previous table's sidecar names, and accepted only when every
    drawn cell has the recorded value; a decoding row whose value several cells share keeps no ground
    truth but its candidates. The new table gives every cell its own value, so inverting values
    alone would be ambiguous wherever cells tie in the previous table."""
    from lightning_nas.seeding import generator
    from lightning_nas.spaces import build_space

    previous, _, old, _ = tables
    shutil.copy(TABLES / "nb201_digits_729.json", previous.with_suffix(".json"))
    protocol = json.loads(previous.with_suffix(".json").read_text())["protocol"]
    space = build_space(protocol["space"], **protocol["space_options"])
    distinct = {k: v + 0.001 * i for i, (k, v) in enumerate(old.items())}  # no two cells tie any more
    new = _write_table(tmp_path / "distinct.csv", distinct)
    new_values = _values(new)
    twins = next(sorted(k for k, v in old.items() if round(v, 6) == value)
                 for value in sorted({round(v, 6) for v in old.values()})
                 if sum(round(v, 6) == value for v in old.values()) > 1)
    trials, drawn = _trials(folder), []
    for t in trials:
        final = t["ranking"]["final"]
        keys = [space.key(a) for a in space.sample_many(len(final["ground_truth"]), generator(t["seed"], "ranking"))]
        drawn.append(keys)
        final.pop("architectures")
        final["ground_truth"] = [old[k] for k in keys]
        for row in t.get("decoding", []):
            row.pop("architecture")
            row["ground_truth"] = old[twins[0]]
    assert any(k in twins or sum(round(v, 6) == round(old[k], 6) for v in old.values()) > 1
               for keys in drawn for k in keys), "the draws should include cells that tie in the previous table"
    (folder / "trials.jsonl").write_text("".join(json.dumps(t) + "\n" for t in trials))
    # a record whose recorded values are not what its seed draws falls back to values, and is refused
    tampered = [dict(t, seed=t["seed"] + 100) for t in trials]
    (folder / "trials.jsonl").write_text("".join(json.dumps(t) + "\n" for t in tampered))
    with pytest.raises(RescoreError, match="ambiguous"):
        rescore(folder, previous, new)
    (folder / "trials.jsonl").write_text("".join(json.dumps(t) + "\n" for t in trials))
    rescore(folder, previous, new)
    history = json.loads((folder / "experiment.json").read_text())["rescored"][-1]
    assert history["rankings_drawn_again"] == len(trials)
    assert history["decoding_rows_unresolved"] == sum(len(t.get("decoding", [])) for t in trials) > 0
    for keys, a in zip(drawn, _trials(folder), strict=True):
        assert a["ranking"]["final"]["architectures"] == keys
        assert a["ranking"]["final"]["ground_truth"] == pytest.approx([new_values[k] for k in keys])
        assert a["answer"]["ground_truth"] == pytest.approx(new_values[a["answer"]["architecture"]])
        for row in a.get("decoding", []):
            assert row["ground_truth"] is None and row["regret"] is None
            assert row["unresolved"]["architectures"] == twins
            assert row["unresolved"]["ground_truth"] == pytest.approx([new_values[k] for k in twins])
