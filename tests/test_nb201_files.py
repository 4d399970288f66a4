"""NAS-Bench-201 / NATS-Bench official files: read safely (streamed or whole), cached once, queried per data set,
split, budget and seed; tampered, truncated and foreign files refused in one line. Fixtures are written here in
the official formats (``nasbench201.synthetic``: a legacy ``torch.save`` dictionary, a NATS-tss-simple folder)."""
from __future__ import annotations

import bz2
import io
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from lightning_nas import safe_pickle
from lightning_nas.benchmarks import NB201Benchmark
from lightning_nas.benchmarks.nasbench201 import METRICS, convert, load_cache, read_rows, synthetic
from lightning_nas.benchmarks.nasbench201.files import NB201Unpickler, _torch_pickle
from lightning_nas.errors import GroundTruthError, LightningNASError
from lightning_nas.spaces.nb201 import NB201Space

ARCHS = synthetic.architectures(3, seed=1)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict:
    """v1.0- and v1.1-shaped .pth files (legacy format, numpy 1 names) and a NATS-tss-simple folder, and the
    dictionaries they were written from (what the answers are checked against)."""
    root = tmp_path_factory.mktemp("nb201")
    v10, v11 = synthetic.benchmark_dict(ARCHS, "v1_0", seed=3), synthetic.benchmark_dict(ARCHS, "v1_1", seed=4)
    return {"v10": synthetic.write_pth(root / "NAS-Bench-201-v1_0-e61699.pth", v10), "v10_dict": v10,
            "v11": synthetic.write_pth(root / "NAS-Bench-201-v1_1-096897.pth", v11), "v11_dict": v11,
            "nats": synthetic.write_nats_folder(root / "NATS-tss-v1_0-3ffb9-simple", ARCHS, seed=4), "root": root}


def expected(source: dict, arch: str, dataset: str, split: str, epochs: int, seed=None) -> float:
    """The answer computed from the written dictionary by hand: the metric after the last epoch, mean over the
    seeds ``dataset_seed`` lists (the authors' ``get_metrics(..., is_random=False)``)."""
    index = source["meta_archs"].index(arch)
    record = source["arch2infos"][index]["less" if epochs == 12 else "full"]
    seeds = [seed] if seed is not None else record["dataset_seed"][dataset]
    trials = [record["all_results"][(dataset, s)] for s in seeds]
    if split == "train":
        return float(np.mean([t["train_acc1es"][epochs - 1] for t in trials]))
    return float(np.mean([t["eval_acc1es"][f"{split}@{epochs - 1}"] for t in trials]))


@pytest.mark.parametrize("dataset,split", [("cifar10-valid", "x-valid"), ("cifar10-valid", "ori-test"),
                                           ("cifar10", "ori-test"), ("cifar10", "train"), ("cifar100", "x-valid"),
                                           ("cifar100", "x-test"), ("ImageNet16-120", "x-test"),
                                           ("ImageNet16-120", "ori-test")])
def test_queries_per_dataset_and_split_match_the_file(files, dataset, split):
    bench = NB201Benchmark(str(files["v11"]), dataset=dataset, split=split)
    assert sorted(bench.table()) == sorted(ARCHS)
    for arch in ARCHS:
        assert bench.query(arch) == pytest.approx(expected(files["v11_dict"], arch, dataset, split, 200), abs=1e-12)


def test_budgets_seeds_and_training_time(files):
    source = files["v11_dict"]
    for arch in ARCHS:
        twelve = NB201Benchmark(str(files["v11"]), dataset="cifar10-valid", split="x-valid", epochs=12)
        assert twelve.query(arch) == pytest.approx(expected(source, arch, "cifar10-valid", "x-valid", 12))
        assert sorted(twelve.seed_values(arch)) == [111, 777]
        one = NB201Benchmark(str(files["v11"]), dataset="cifar100", split="x-test", seed=777)
        assert one.query(arch) == pytest.approx(expected(source, arch, "cifar100", "x-test", 200, seed=777))
        time = NB201Benchmark(str(files["v11"]), dataset="cifar10", metric="train_time")
        trials = [source["arch2infos"][source["meta_archs"].index(arch)]["full"]["all_results"][("cifar10", s)]
                  for s in time.seed_values(arch)]
        assert time.query(arch) == pytest.approx(np.mean([sum(t["train_times"].values()) for t in trials]))
        assert not time.higher_is_better and twelve.higher_is_better
    per_seed = NB201Benchmark(str(files["v11"]), dataset="cifar100", split="x-test")
    arch = ARCHS[0]
    assert per_seed.query(arch) == pytest.approx(np.mean(list(per_seed.seed_values(arch).values())))
    record = per_seed.record(arch)
    assert set(record) == {"cifar10-valid", "cifar10", "cifar100", "ImageNet16-120"} and set(record["cifar100"]) == {12, 200}


def test_what_the_file_lacks_is_one_clear_line(files):
    cases = [({"dataset": "cifar100", "epochs": 12}, "holds no cifar100 results at 12 epochs; it holds: cifar10-valid (12, 200 epochs), cifar10 (200 epochs)"),
             ({"dataset": "cifar10", "split": "x-valid"}, "'x-valid' is not a split of cifar10; its splits: train, ori-test"),
             ({"epochs": 100}, "budgets are 12, 200, not 100"),
             ({"dataset": "imagenet"}, "'imagenet' is not a NAS-Bench-201 data set"),
             ({"seed": 123}, "no cifar10 run at 200 epochs with seed 123"),
             ({"metric": "auc"}, "'auc' is unknown")]
    for options, message in cases:
        with pytest.raises(GroundTruthError) as error:
            NB201Benchmark(str(files["v10"]), **options)
        assert message in str(error.value) and "\n" not in str(error.value), str(error.value)
    with pytest.raises(GroundTruthError, match="does not exist"):
        NB201Benchmark(str(files["root"] / "missing.pth"))


def test_cache_round_trip_holds_no_pickle_and_is_written_once(files, tmp_path):
    cache = convert(files["v11"], tmp_path / "c.npz")
    columns = load_cache(cache)  # allow_pickle=False inside: a pickled column would fail here
    assert all(a.dtype != object for a in columns.values())
    assert [m.decode() for m in columns["metric_names"]] == list(METRICS)
    stamp = cache.stat().st_mtime_ns
    assert convert(files["v11"], cache) == cache and cache.stat().st_mtime_ns == stamp
    from_file = NB201Benchmark(str(files["v11"]), dataset="ImageNet16-120", split="x-valid", cache=str(cache))
    from_cache = NB201Benchmark(str(cache), dataset="ImageNet16-120", split="x-valid")
    assert from_file.table() == from_cache.table()
    assert not list(tmp_path.glob(".*tmp"))  # the atomic write left nothing behind


def test_streamed_whole_zip_and_nats_folder_read_the_same(files, tmp_path):
    def rows(path, **kwargs):
        out: list = []
        read_rows(Path(path), out.append, **kwargs)
        return out

    streamed = rows(files["v11"])
    assert streamed == rows(files["v11"], stream=False)
    zipped = synthetic.write_pth(tmp_path / "zip.pth", files["v11_dict"], zip_format=True)
    assert streamed == rows(zipped)
    with_weights = synthetic.benchmark_dict(ARCHS, "v1_1", seed=4)  # a trial that kept its weights: never needed
    with_weights["arch2infos"][1]["full"]["all_results"][("cifar10", 777)]["net_state_dict"] = {"w": torch.ones(3)}
    for zip_format in (False, True):
        path = synthetic.write_pth(tmp_path / f"weights{zip_format}.pth", with_weights, zip_format=zip_format)
        assert rows(path) == streamed == rows(path, stream=False)
    assert sorted(streamed) == sorted(rows(files["nats"]))
    single = synthetic.write_nats_file(tmp_path / "NATS-tss-v1_0-3ffb9.pickle.pbz2", ARCHS, seed=4)
    assert sorted(streamed) == sorted(rows(single)) == sorted(rows(single, stream=False))
    arch_file = bz2.decompress((files["nats"] / "000000.pickle.pbz2").read_bytes())
    assert arch_file[:2] == b"\x80\x04" and b"numpy.core.multiarray" in arch_file  # the official files' form
    assert len(streamed) == sum(len(v[h]["all_results"]) for v in files["v11_dict"]["arch2infos"].values()
                                for h in ("less", "full"))


def test_streaming_forgets_each_architecture(files, tmp_path):
    """Memory stays that of one architecture: after the load, the memo keeps only shared names, not records."""
    many = synthetic.write_pth(tmp_path / "many.pth", synthetic.benchmark_dict(synthetic.architectures(6), "v1_0"))
    sink: list = []
    with _torch_pickle(many) as handle:
        unpickler = NB201Unpickler(handle, sink=sink.append, allowed=safe_pickle.NUMPY_GLOBALS | safe_pickle.CONTAINER_GLOBALS)
        top = unpickler.load()
    assert unpickler.architectures == 6 and sink
    assert len(unpickler.memo) < unpickler.next_memo / 20, (len(unpickler.memo), unpickler.next_memo)
    left = list(unpickler.memo.values())
    assert not [v for v in left if isinstance(v, (bytes, float, np.generic))]  # numbers and their payloads
    assert len([v for v in left if isinstance(v, (dict, list))]) <= 4  # top dict, arch2infos, meta_archs, the set's list
    assert all(v == {} for v in top["arch2infos"].values())


def test_objects_shared_between_architectures_are_refused_when_streamed(tmp_path):
    source = synthetic.benchmark_dict(ARCHS, "v1_0")
    shared = source["arch2infos"][0]["full"]["all_results"][("cifar10", 777)]["latency"]
    source["arch2infos"][1]["full"]["all_results"][("cifar10", 777)]["latency"] = shared
    path = synthetic.write_pth(tmp_path / "shared.pth", source)
    with pytest.raises(safe_pickle.ForgottenObjectError, match="stream: false"):
        NB201Benchmark(str(path), cache=str(tmp_path / "a.npz"))
    assert len(NB201Benchmark(str(path), cache=str(tmp_path / "b.npz"), stream=False)) == 3


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def _tampered_dict() -> dict:
    source = synthetic.benchmark_dict(ARCHS[:1], "v1_0")
    source["arch2infos"][0]["full"]["all_results"][("cifar10", 777)]["flop"] = _RunsCode()
    return source


@pytest.mark.parametrize("stream", [True, False])
def test_a_tampered_pth_is_refused_in_one_line(tmp_path, capfd, stream):
    buffer = io.BytesIO()
    torch.save(_tampered_dict(), buffer, _use_new_zipfile_serialization=False)
    path = tmp_path / "tampered.pth"
    path.write_bytes(buffer.getvalue())
    with pytest.raises(safe_pickle.UnsafePickleError) as error:
        NB201Benchmark(str(path), stream=stream)
    message = str(error.value)
    assert str(path) in message and "system" in message and "\n" not in message, message
    assert "pwned" not in capfd.readouterr().out
    assert not (tmp_path / "tampered.pth.npz").exists()


def test_a_tampered_nats_file_is_refused_in_one_line(files, tmp_path, capfd):
    folder = tmp_path / "NATS-tss-v1_0-3ffb9-simple"
    folder.mkdir()
    for path in files["nats"].iterdir():
        (folder / path.name).write_bytes(path.read_bytes())
    (folder / "000001.pickle.pbz2").write_bytes(bz2.compress(pickle.dumps({"200": _RunsCode()})))
    with pytest.raises(safe_pickle.UnsafePickleError) as error:
        NB201Benchmark(str(folder))
    assert "000001.pickle.pbz2" in str(error.value) and "system" in str(error.value) and "\n" not in str(error.value)
    assert "pwned" not in capfd.readouterr().out


@pytest.mark.parametrize("stream", [True, False])
def test_truncated_and_foreign_files_are_one_line_naming_them(files, tmp_path, stream):
    whole = files["v10"].read_bytes()
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(whole[:len(whole) // 2])
    foreign = tmp_path / "foreign.pth"
    foreign.write_bytes(b"<html>404 not found</html>" * 10)
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    for path in (truncated, foreign, empty):
        with pytest.raises(LightningNASError) as error:
            NB201Benchmark(str(path), stream=stream)
        assert str(path) in str(error.value) and "\n" not in str(error.value), str(error.value)
        assert not Path(str(path) + ".npz").exists()
    folder = tmp_path / "nats"
    folder.mkdir()
    for path in files["nats"].iterdir():
        data = path.read_bytes()
        (folder / path.name).write_bytes(data[:len(data) // 2] if path.name == "000002.pickle.pbz2" else data)
    with pytest.raises(LightningNASError) as error:
        NB201Benchmark(str(folder))
    assert "000002.pickle.pbz2" in str(error.value) and "\n" not in str(error.value)


def test_keys_are_the_spaces_and_a_recipe_can_name_the_benchmark(files):
    bench = NB201Benchmark(str(files["nats"]))
    bench.check(NB201Space())  # every key parses and is canonical
    import yaml
    from jsonargparse import ActionConfigFile, ArgumentParser  # what LightningCLI builds recipes with

    from lightning_nas.benchmarks import Benchmark

    root = Path(__file__).resolve().parents[1]
    recipe = files["root"] / "recipe.yaml"  # the benchmark section of the README's NB201 recipe (a CSV table)
    recipe.write_text(yaml.safe_dump({"benchmark": yaml.safe_load((root / "recipes/nb201_spos.yaml").read_text())["benchmark"]}))
    parser = ArgumentParser()
    parser.add_argument("--config", action=ActionConfigFile)
    parser.add_subclass_arguments(Benchmark, "benchmark", required=False)
    config = parser.parse_args(["--config", str(recipe), "--benchmark", str(root / "recipes/nb201_ground_truth/cifar10.yaml"),
                                "--benchmark.init_args.path", str(files["nats"])])
    benchmark = parser.instantiate(config).benchmark
    assert isinstance(benchmark, NB201Benchmark) and (benchmark.dataset, benchmark.split) == ("cifar10", "ori-test")
    assert benchmark.metric == "accuracy" and benchmark.epochs == 200 and benchmark.seed is None
    assert sorted(benchmark.table()) == sorted(ARCHS)


# ----------------------------------------------------------------------------------- the authors' own APIs
def test_cross_check_with_the_nats_bench_api(tmp_path):
    """Every split at every epoch (``full_evals``): the API's times need the whole curve of each split."""
    nats_bench = pytest.importorskip("nats_bench")
    folder = synthetic.write_nats_folder(tmp_path / "NATS-tss-v1_0-3ffb9-simple", ARCHS, seed=6, full_evals=True)
    api = nats_bench.create(str(folder), "tss", fast_mode=True, verbose=False)
    for dataset, split, key in (("cifar10-valid", "x-valid", "valid-accuracy"), ("cifar10", "ori-test", "test-accuracy"),
                                ("cifar100", "x-test", "test-accuracy"), ("ImageNet16-120", "x-valid", "valid-accuracy")):
        for hp in (12, 200):
            ours = NB201Benchmark(str(folder), dataset=dataset, split=split, epochs=hp)
            for index, arch in enumerate(ARCHS):
                theirs = api.get_more_info(index, dataset, hp=str(hp), is_random=False)
                assert ours.query(arch) == pytest.approx(theirs[key], abs=1e-9), (dataset, hp, arch)


def test_cross_check_with_the_nas_bench_201_api(tmp_path):
    """Every split at every epoch (``full_evals``): the NB201 API's times need the whole curve of each split."""
    api_module = pytest.importorskip("nas_201_api")
    data = synthetic.benchmark_dict(ARCHS, "v1_0", seed=5, full_evals=True)
    path = synthetic.write_pth(tmp_path / "NAS-Bench-201-v1_0-e61699.pth", data)
    api = api_module.NASBench201API(data, verbose=False)
    for dataset, split, key in (("cifar10-valid", "ori-test", "test-accuracy"), ("cifar100", "x-valid", "valid-accuracy"),
                                ("ImageNet16-120", "x-test", "test-accuracy"), ("cifar100", "ori-test", "valtest-accuracy")):
        ours = NB201Benchmark(str(path), dataset=dataset, split=split)
        time = NB201Benchmark(str(path), dataset=dataset, metric="train_time")
        for index, arch in enumerate(ARCHS):
            theirs = api.get_more_info(index, dataset, hp="200", is_random=False)
            assert ours.query(arch) == pytest.approx(theirs[key], abs=1e-9)
            assert time.query(arch) == pytest.approx(theirs["train-all-time"], rel=1e-9)
