"""DARTS-NDS as ground truth of darts_cnn: fixtures in the NDS sweep-file structure (a list of trained
models, each with ``net.genotype``, width/depth, complexity and per-epoch error curves)."""
from __future__ import annotations

import json
import os

import pytest

from lightning_nas.benchmarks.nds import NDSBenchmark
from lightning_nas.errors import GroundTruthError
from lightning_nas.spaces.darts_cnn import PUBLISHED, DartsCNNSpace


def pairs(genotype, label):
    """DARTS' flat list of [op, input] pairs, in an order NDS may store (not the space's sorted order)."""
    return [[op, src] for node in getattr(genotype, label) for op, src in reversed(node)]


def record(genotype: dict, width=16, depth=8, test_curve=(40.0, 20.0, 10.0), seed=1):
    return {"net": {"genotype": genotype, "width": width, "depth": depth, "aux": False, "drop_prob": 0.0},
            "optim": {"base_lr": 0.1, "wd": 5e-4, "max_ep": len(test_curve)}, "rng_seed": seed,
            "params": 1_000_000 + width, "flops": 100_000_000 + depth,
            "train_ep_top1": [e / 2 for e in test_curve], "train_ep_loss": [e / 50 for e in test_curve],
            "test_ep_top1": list(test_curve), "min_test_top1": min(test_curve), "job_id": 0}


def darts_genotype(name="DARTS_V2") -> dict:
    g = PUBLISHED[name]
    return {"normal": pairs(g, "normal"), "normal_concat": [2, 3, 4, 5],
            "reduce": pairs(g, "reduce"), "reduce_concat": [2, 3, 4, 5]}


NASNET = {"normal": pairs(PUBLISHED["NASNet"], "normal"), "normal_concat": [2, 3, 4, 5, 6],
          "reduce": pairs(PUBLISHED["NASNet"], "reduce"), "reduce_concat": [4, 5, 6]}
TWICE = {"normal": [["sep_conv_3x3", 0], ["skip_connect", 0]] + darts_genotype()["normal"][2:],
         "normal_concat": [2, 3, 4, 5], "reduce": darts_genotype()["reduce"], "reduce_concat": [2, 3, 4, 5]}


@pytest.fixture
def sweep(tmp_path):
    records = [record(darts_genotype("DARTS_V2"), test_curve=(30.0, 3.0)),
               record(darts_genotype("DARTS_V1"), width=32, depth=20, test_curve=(30.0, 4.0, 3.5)),
               record(NASNET, test_curve=(30.0, 5.0)),
               record(TWICE, test_curve=(30.0, 6.0))]
    path = tmp_path / "DARTS.json"
    path.write_text(json.dumps(records))
    return path


def test_keys_are_the_spaces_canonical_genotypes_and_misfits_are_counted(sweep, capsys):
    bench = NDSBenchmark(str(sweep))
    space = DartsCNNSpace()
    expected = {space.key(space.canonical(PUBLISHED[n])) for n in ("DARTS_V2", "DARTS_V1")}
    assert set(bench.table()) == expected
    bench.check(space)  # every key parses back to itself
    assert bench.left_out == {"5 nodes per cell (darts_cnn: 4)": 1, "a node reads one input twice": 1}
    assert "2 of 4 records are not darts_cnn cells" in capsys.readouterr().err


def test_final_test_error_and_other_metrics(sweep):
    space = DartsCNNSpace()
    v2, v1 = (space.key(PUBLISHED[n]) for n in ("DARTS_V2", "DARTS_V1"))
    bench = NDSBenchmark(str(sweep))
    assert (bench.query(v2), bench.query(v1)) == (3.0, 3.5)
    assert not bench.higher_is_better and bench.best() == 3.0 and bench.rank(v1) == 2
    assert NDSBenchmark(str(sweep), metric="test_accuracy").query(v1) == pytest.approx(96.5)
    (row,) = bench.records(PUBLISHED["DARTS_V1"])
    assert (row["width"], row["depth"], row["params"], row["epochs"]) == (32, 20, 1_000_032, 3)
    assert row["test_ep_top1"] == [30.0, 4.0, 3.5] and row["min_test_error"] == 3.5


def test_fixed_width_depth_sweep_and_filter(sweep, tmp_path):
    (tmp_path / "DARTS_fix-w-d.json").write_text(json.dumps([record(darts_genotype("DARTS_V1"), test_curve=(9.0,))]))
    fixed = NDSBenchmark(str(tmp_path), sweep="DARTS_fix-w-d")
    assert list(fixed.table().values()) == [9.0] and fixed.path.name == "DARTS_fix-w-d.json"
    sliced = NDSBenchmark(str(sweep), width=32, depth=20)
    assert list(sliced.table()) == [DartsCNNSpace().key(PUBLISHED["DARTS_V1"])]
    assert sliced.left_out["width 16 (kept: 32)"] == 3


def test_cache_is_read_while_the_json_is_unchanged(sweep, monkeypatch):
    import lightning_nas.benchmarks.nds as nds

    first = NDSBenchmark(str(sweep))
    assert sweep.with_name("DARTS.json.npz").is_file()
    real = nds.convert
    monkeypatch.setattr(nds, "convert", lambda path: pytest.fail("the JSON was parsed although the cache matches"))
    assert NDSBenchmark(str(sweep)).table() == first.table()
    sweep.write_text(sweep.read_text().replace("30.0", "31.0"))  # changed: the cache is stale
    monkeypatch.setattr(nds, "convert", real)
    os.utime(sweep, ns=(first.columns["source_mtime_ns"].item() + 10**9,) * 2)
    assert NDSBenchmark(str(sweep)).records(PUBLISHED["DARTS_V2"])[0]["test_ep_top1"] == [31.0, 3.0]


@pytest.mark.parametrize("content, says", [
    ('[{"net": {"genotype": ', "is not readable JSON (line 1"),
    ('{"a": 1}', "holds no list of trained models"),
    ('[{"net": {"width": 16}, "test_ep_top1": [1.0]}]', "has no net.genotype"),
])
def test_malformed_file_is_one_line_naming_it(tmp_path, content, says):
    path = tmp_path / "DARTS.json"
    path.write_text(content)
    with pytest.raises(GroundTruthError) as error:
        NDSBenchmark(str(path), cache=False)
    assert str(path) in str(error.value) and says in str(error.value) and "\n" not in str(error.value)


def test_missing_file_and_a_sweep_with_no_darts_cell(tmp_path):
    with pytest.raises(GroundTruthError, match="does not exist"):
        NDSBenchmark(str(tmp_path / "DARTS.json"))
    (tmp_path / "NASNet.json").write_text(json.dumps([record(NASNET)]))
    with pytest.raises(GroundTruthError, match=r"no record .* is a darts_cnn cell \(1 x 5 nodes"):
        NDSBenchmark(str(tmp_path), sweep="NASNet")


def test_another_space_is_refused(sweep):
    from lightning_nas.spaces.nb201 import NB201Space

    bench = NDSBenchmark(str(sweep))
    with pytest.raises(GroundTruthError, match="use darts_cnn"):
        bench.check(NB201Space())
    with pytest.raises(GroundTruthError, match="drop space_options"):
        bench.check(DartsCNNSpace(operations=("skip_connect", "sep_conv_3x3")))


@pytest.mark.slow
def test_recipe_ranks_the_supernet_against_nds_cells_end_to_end(tmp_path):
    """darts_cnn_nds_spos.yaml at toy size on digits: the ranked architectures are NDS cells (drawn from
    the benchmark's keys) and the rank correlations are logged."""
    import csv

    import torch

    from conftest import ROOT, run_train
    from lightning_nas.seeding import generator

    space = DartsCNNSpace()
    gen = generator(0, "nds-fixture")
    cells = [space.sample(gen) for _ in range(12)]
    genotypes = [{"normal": pairs(c, "normal"), "normal_concat": [2, 3, 4, 5], "reduce": pairs(c, "reduce"),
                  "reduce_concat": [2, 3, 4, 5]} for c in cells]
    errors = torch.rand(12, generator=gen).mul(5).add(5).tolist()
    path = tmp_path / "DARTS.json"
    path.write_text(json.dumps([record(g, test_curve=(50.0, e)) for g, e in zip(genotypes, errors, strict=True)]
                               + [record(NASNET)]))
    rc = run_train(["--recipe", ROOT / "recipes" / "darts_cnn_nds_spos.yaml", "--trainer.max_epochs", 1,
                    "--trainer.accelerator", "cpu", "--trainer.enable_progress_bar", "false",
                    "--model.init_args.network", "{C: 4, layers: 3, affine: true, pool_bn: true}",
                    "--data.init_args.dataset", "digits", "--data.init_args.image_size", 8,
                    "--data.init_args.batch_size", 64, "--benchmark.init_args.path", path,
                    "--ranking.every_n_epochs", 1, "--ranking.num_batches", 1, "--ranking.num_architectures", 8,
                    "--selection.num_architectures", 0, "--run_dir", tmp_path / "run"], tmp_path)
    assert rc == 0
    bench = NDSBenchmark(str(path), metric="test_accuracy")  # the recipe's metric
    with (tmp_path / "run" / "ranking" / "epoch_000.csv").open() as handle:
        ranked = list(csv.DictReader(handle))
    assert len(ranked) == 8 and all(row["architecture"] in bench for row in ranked)
    assert all(float(row["ground_truth"]) == pytest.approx(bench.query(row["architecture"])) for row in ranked)
    with (tmp_path / "run" / "metrics.csv").open() as handle:
        assert "ranking/kendall_tau" in next(csv.reader(handle))
