"""The factors of "How to Train Your Super-Net" (Yu et al., Table 1) as recipe values: each changes
what it should, is deterministic under the run seed, and is refused in one line where it cannot apply."""
from __future__ import annotations

from collections import Counter

import pytest
import torch
from scipy import stats

from lightning_nas.errors import RecipeError, UnsupportedCombinationError
from lightning_nas.registry import NETWORKS, SPACES
from lightning_nas.nn.nb201 import NB201Network
from lightning_nas.nn.noise import NoiseStream
from lightning_nas.seeding import generator
from lightning_nas.spaces.nb201 import NB201Architecture
from lightning_nas.strategies import SPOS
from lightning_nas.strategies.sampling import ArchitectureSampler

NB101_TINY = {"num_vertices": 4}  # 423 decided cells, 91 graph hashes: 78 single, one spelt 153 ways


def _spos(space: str, space_options: dict, network: dict | None = None, **options) -> SPOS:
    return SPOS(space=space, space_options=space_options, network={**NETWORKS.get(space).tiny_options, **(network or {})},
                num_classes=3, in_channels=1, seed=7, **options)


def _key_counts(sampler: ArchitectureSampler, key_of: dict, draws: int, seed: int = 0) -> Counter:
    gen = generator(seed, "test-sampling")
    return Counter(key_of[sampler(gen)] for _ in range(draws))


# ---------------------------------------------------------------------------------------------- sampling
def test_random_a_is_uniform_over_keys_where_per_decision_is_not():
    """NB101 (4 vertices): per-decision picks favour cells with many spellings (one hash has 153 of the
    423 valid decided cells); Random-A draws each of the 91 hashes equally often (chi-square)."""
    space = SPACES.get("nb101")(**NB101_TINY)
    key_of = {a: space.key(a) for a in space.enumerate()}  # hashing once keeps the test fast
    keys = set(key_of.values())
    draws = 30 * len(keys)
    for sampling, uniform in (("architectures", True), ("per_decision", False)):
        counts = _key_counts(ArchitectureSampler(space, sampling), key_of, draws)
        assert set(counts) <= keys
        observed = [counts.get(k, 0) for k in sorted(keys)]
        p = stats.chisquare(observed).pvalue
        assert (p > 1e-3) if uniform else (p < 1e-12), (sampling, p)


def test_random_a_reuses_the_spaces_sampler_where_keys_are_decisions():
    """NB201 keeps the default key: each valid decision combination is its own architecture, so both
    rules draw the same architectures from the same generator."""
    space = SPACES.get("nb201")()
    a, b = generator(3, "x"), generator(3, "x")
    per_decision, architectures = ArchitectureSampler(space, "per_decision"), ArchitectureSampler(space, "architectures")
    assert [per_decision(a) for _ in range(20)] == [architectures(b) for _ in range(20)]
    assert not architectures.groups


def test_spos_sampling_option_is_seeded_and_changes_the_draws():
    """The option reaches SPOS' training draws; the same seed gives the same sequence."""
    runs = [_spos("nb101", NB101_TINY, sampling=s) for s in ("architectures", "architectures", "per_decision")]
    sequences = [[str(r.sample_architecture()) for _ in range(30)] for r in runs]
    assert sequences[0] == sequences[1]
    assert sequences[0] != sequences[2]


def test_random_a_is_refused_in_one_line_where_the_space_cannot_be_listed():
    with pytest.raises(UnsupportedCombinationError, match=r"model.max_enumerate=10\b") as error:
        ArchitectureSampler(SPACES.get("nb101")(**NB101_TINY), "architectures", max_enumerate=10)
    assert "\n" not in str(error.value)
    with pytest.raises(UnsupportedCombinationError, match="cannot be enumerated") as error:
        ArchitectureSampler(SPACES.get("nb101")(num_vertices=6), "architectures", max_enumerate=10**9)
    assert "\n" not in str(error.value)


# ---------------------------------------------------------------------------------------------- dropout
def _nb201(**options) -> NB201Network:
    torch.manual_seed(0)
    return NB201Network(num_classes=3, in_channels=1, **NB201Network.tiny_options, **options)


def test_dropout_options_leave_the_default_network_and_its_initialisation_alone():
    plain, dropping = _nb201(), _nb201(path_dropout=0.3, global_dropout=0.2)
    assert plain.noise is None and not any("noise" in k for k in plain.state_dict())
    shared = plain.state_dict()
    assert all(torch.equal(v, shared[k]) for k, v in dropping.state_dict().items() if k in shared)
    assert "noise._extra_state" in dropping.state_dict()


def test_path_and_global_dropout_act_in_training_only_and_resume_bit_identically():
    arch = NB201Architecture(("nor_conv_3x3", "skip_connect", "nor_conv_1x1", "avg_pool_3x3", "none", "skip_connect"))
    x = torch.randn(8, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    for options in ({"path_dropout": 0.5}, {"global_dropout": 0.5}):
        plain, net = _nb201(), _nb201(seed=5, **options)
        net.train(), plain.train()
        assert not torch.equal(net(x, arch), plain(x, arch)), options  # masks change the training forward
        saved = {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in net.state_dict().items()}
        second = net(x, arch)
        resumed = _nb201(seed=5, **options)
        resumed.load_state_dict(saved)
        assert torch.equal(resumed.train()(x, arch), second)  # the stream is in the state dict
        net.eval(), plain.eval()
        assert torch.equal(net(x, arch), net.standalone(arch).eval()(x)), options
    same = [_nb201(seed=9, path_dropout=0.5).train()(x, arch) for _ in range(2)]
    assert torch.equal(*same)


def test_path_dropout_drops_whole_samples_with_its_rate():
    stream = NoiseStream(seed=0)
    x = torch.ones(4000, 2, 3, 3)
    out = stream.drop_path(x, 0.25)
    per_sample = out.flatten(1)
    assert torch.all(per_sample == per_sample[:, :1])  # one decision per sample
    assert per_sample[:, 0].unique().tolist() == pytest.approx([0.0, 1 / 0.75])
    kept = int((per_sample[:, 0] > 0).sum())
    assert stats.binomtest(kept, len(x), 0.75).pvalue > 1e-3


def test_dropout_is_refused_in_one_line_where_it_does_not_apply():
    with pytest.raises(ValueError, match=r"model.network.path_dropout must be in \[0, 1\), got 1.0"):
        _nb201(path_dropout=1.0)
    with pytest.raises(RecipeError, match="path_dropout") as error:
        _spos("nb101", NB101_TINY, network={"path_dropout": 0.1})
    assert "\n" not in str(error.value)


@pytest.mark.slow
def test_a_run_with_dropout_killed_mid_epoch_resumes_bit_identically(tmp_path):
    """The tiny recipe with path and global dropout: SIGKILL after a checkpoint, ``--resume``, and the
    weights, optimiser, generators, metrics and answer equal the uninterrupted run's (the masks come
    from the network's stream, saved in the checkpoint)."""
    import signal

    from conftest import run_train
    from test_strategies import KILL_BATCH, Finished, assert_same_values, strategy_arguments
    from test_train_integration import checkpoint_step, train

    arguments = strategy_arguments("spos") + [
        "--model.init_args.network", "{C: 4, N: 1, affine: false, path_dropout: 0.3, global_dropout: 0.2}"]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LNAS_PROBE_BATCHES", "1")
        assert run_train(arguments + ["--run_dir", tmp_path / "whole"], tmp_path) == 0
    whole = Finished(tmp_path / "whole")
    assert "supernet.noise._extra_state" in whole.checkpoint["state_dict"]
    kill_at = whole.steps[KILL_BATCH - 1]
    killed = train(arguments + ["--run_dir", tmp_path / "run"], LNAS_PROBE_KILL_AT_STEP=str(kill_at))
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert 0 < checkpoint_step(tmp_path / "run") < kill_at
    assert run_train(["--resume", tmp_path / "run"], tmp_path) == 0
    resumed = Finished(tmp_path / "run")
    key = "supernet.noise._extra_state"  # the stream's state is a dict, not a tensor: compared on its own
    assert_same_values(whole.checkpoint["state_dict"].pop(key), resumed.checkpoint["state_dict"].pop(key), key)
    whole.assert_same(resumed)


# ---------------------------------------------------------------------------------------------- low fidelity
def test_budget_matching_prolongs_epochs_by_the_compute_saved():
    """Yu et al. Sec. 4.4: half the channels -> twice the epochs; a quarter of the data on top -> x8."""
    from jsonargparse import Namespace

    from lightning_nas.run.fidelity import budget_factor, match_budget

    assert budget_factor({"C": 8}, {"C": 16}) == 2.0
    config = Namespace(trainer=Namespace(max_epochs=3), budget_match={"model.init_args.network.C": 16,
                                                                      "data.init_args.train_portion": 1.0},
                       model=Namespace(init_args=Namespace(network={"C": 8, "N": 1})),
                       data=Namespace(init_args=Namespace(train_portion=0.25)))
    match_budget(config)
    assert config.trainer.max_epochs == 24 and config.budget_match is None
    match_budget(config)  # applied once: a resumed run's recorded recipe is not prolonged again
    assert config.trainer.max_epochs == 24
    bad = Namespace(trainer=Namespace(max_epochs=3), budget_match={"model.init_args.network.C": 4},
                    model=Namespace(init_args=Namespace(network={"C": 8})))
    with pytest.raises(RecipeError, match=r"model.init_args.network.C: 4(\.0)? must be the full-fidelity value") as error:
        match_budget(bad)
    assert "\n" not in str(error.value)
    with pytest.raises(RecipeError, match="budget_match names data.init_args.batch_size, which the recipe does not"):
        match_budget(Namespace(trainer=Namespace(max_epochs=3), budget_match={"data.init_args.batch_size": 256},
                               data=Namespace(init_args=Namespace())))


def test_budget_match_and_sampling_reach_the_run_from_the_command_line(tmp_path):
    """The tiny recipe (C=4) matched to C=8 trains twice its epochs; config.yaml records the prolonged run."""
    import yaml

    from conftest import TINY_RECIPE, run_train

    run_dir = tmp_path / "run"
    assert run_train(["--recipe", TINY_RECIPE, "--trainer.limit_train_batches", 1, "--trainer.limit_val_batches", 1,
                      "--ranking.num_architectures", 0, "--selection.num_architectures", 1, "--selection.top_k", 1,
                      "--budget_match", "{model.init_args.network.C: 8}", "--model.init_args.sampling", "architectures",
                      "--run_dir", run_dir], tmp_path) == 0
    recorded = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert recorded["trainer"]["max_epochs"] == 2 and recorded["budget_match"] is None
    assert recorded["model"]["init_args"]["sampling"] == "architectures"  # the SPOS option is a recipe key


# ---------------------------------------------------------------------------------------------- WSBN
def test_wsbn_keeps_separate_statistics_per_parent_set_and_single_path_is_still_the_standalone_net():
    """NAS-Bench-1Shot1 (tiny): a training forward of one path moves the running statistics of the BN
    of its parent set only; in eval mode the path equals its stand-alone network."""
    from lightning_nas.nn.nb1shot1 import NB1Shot1Network, WSBNConvBnRelu, parent_key

    space = SPACES.get("nb1shot1")(**SPACES.get("nb1shot1").tiny_options)
    torch.manual_seed(0)
    net = NB1Shot1Network(space=space, num_classes=3, in_channels=1, **NB1Shot1Network.tiny_options, wsbn=True)
    def block(b: int) -> WSBNConvBnRelu:
        return next(iter(net.cells[0].ops[str(b)].values()))

    gen = generator(1, "wsbn")
    while True:  # a path whose computed blocks include one with several possible parent sets
        arch = space.sample(gen)
        live = [b for b in sorted(arch.live) if len(block(b).bns) > 1]
        if live:
            break
    j = live[0]
    module = block(j)
    assert isinstance(module, WSBNConvBnRelu)
    before = {k: bn.running_mean.clone() for k, bn in module.bns.items()}
    x = torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    net.train()(x, arch)
    own = parent_key(arch.parents[j - 1])
    for key, bn in module.bns.items():
        assert torch.equal(bn.running_mean, before[key]) != (key == own), key
    net.eval()
    assert torch.equal(net(x, arch), net.standalone(arch).eval()(x))
    plain = NB1Shot1Network(space=space, num_classes=3, in_channels=1, **NB1Shot1Network.tiny_options)
    assert not any(".bns." in k for k in plain.state_dict())


def test_wsbn_is_refused_in_one_line_where_it_does_not_apply():
    from lightning_nas.nn.nb1shot1 import NB1Shot1Network

    space = SPACES.get("nb1shot1")(**SPACES.get("nb1shot1").tiny_options)
    net = NB1Shot1Network(space=space, num_classes=3, in_channels=1, **NB1Shot1Network.tiny_options, wsbn=True)
    arch = space.sample(generator(1, "wsbn"))
    with pytest.raises(ValueError, match="model.network.wsbn keys each BN by a block's chosen parent set; the relax"):
        net.forward_weighted(torch.zeros(2, 1, 8, 8), space.one_hot(arch))
    with pytest.raises(RecipeError, match="wsbn") as error:  # NB201's ops already own one BN per (edge, operation)
        _spos("nb201", {}, network={"wsbn": True})
    assert "\n" not in str(error.value)


def test_relaxed_forward_drops_whole_edges_like_the_single_path():
    """Path and global dropout act in the relaxation too: with one-hot weights (and no ``none`` edge,
    whose single path draws no mask) the relaxed forward draws the same masks as the single path and
    gives the same output bit for bit; without the masks it would differ."""
    from lightning_nas.nn.nb201 import NB201Network
    from lightning_nas.spaces.nb201 import NB201Space

    space = NB201Space(operations=["skip_connect", "nor_conv_3x3", "avg_pool_3x3"])
    net = NB201Network(space, C=4, N=1, num_classes=10, in_channels=3, path_dropout=0.5, global_dropout=0.2, seed=3)
    net.train()
    arch = space.sample(torch.Generator().manual_seed(0))
    x = torch.randn(8, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    state = net.noise_state()
    path = net(x, arch)
    net.set_noise_state(state)
    relaxed = net.forward_weighted(x, space.one_hot(arch))
    # same masks; the relaxed sum's order may differ in the last bits on some CPU kernels (AVX512)
    torch.testing.assert_close(relaxed, path, rtol=1e-5, atol=1e-6)
    net.set_noise_state(state)
    net.path_dropout = net.global_dropout = 0.0
    assert not torch.equal(net.forward_weighted(x, space.one_hot(arch)), path)
