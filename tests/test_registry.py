"""Registration in one step and the contract checked when a class is registered.

A module dropped into a registries' package is imported with the package, registered, and so
covered by the registry-driven tests; a registered class that misses a member of its base class's
contract fails when its module is imported, naming the class and the member; a network records
its constructor options itself; a strategy outside the registry trains with a one-line notice."""
from __future__ import annotations

import subprocess
import sys
from typing import Optional

import pytest
import torch

import lightning_nas.strategies  # noqa: F401  (imports every strategy module)
from conftest import ROOT
from lightning_nas.nn import NETWORKS, SuperNet
from lightning_nas.nn.nb201 import NB201Network
from lightning_nas.registry import ContractError, Registry
from lightning_nas.spaces import SPACES, NB201Space, SearchSpace
from lightning_nas.strategies import SPOS, STRATEGIES, BilevelStrategy, SearchStrategy

PROBE_STRATEGY = '''
from lightning_nas.registry import STRATEGIES
from lightning_nas.strategies.base import SearchStrategy


@STRATEGIES.register("{name}")
class ProbeStrategy(SearchStrategy):
    """Uniform single-path sampling under another name: a strategy added as one file."""
'''


def _python(code: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"})


@pytest.fixture
def module_in_strategies_package():
    """A strategy module written into ``lightning_nas/strategies`` (no import line anywhere), removed
    afterwards with its byte code."""
    package = ROOT / "lightning_nas" / "strategies"
    name = f"probe_strategy_{abs(hash(str(package))) % 10 ** 8}"
    path = package / f"{name}.py"
    path.write_text(PROBE_STRATEGY.format(name=name))
    try:
        yield name
    finally:
        path.unlink()
        for cached in (package / "__pycache__").glob(f"{name}.*"):
            cached.unlink()


def test_a_module_added_to_the_strategies_package_is_registered_and_tested(module_in_strategies_package):
    name = module_in_strategies_package
    listed = _python("import lightning_nas.strategies; from lightning_nas.registry import STRATEGIES; "
                     "print(' '.join(STRATEGIES.names()))")
    assert listed.returncode == 0, listed.stderr[-2000:]
    assert name in listed.stdout.split()
    # ... and the registry-driven tests are parametrised with it
    collected = _python("import sys, pytest; sys.exit(pytest.main(['--collect-only', '-q', '-p', 'no:cacheprovider', '-m', 'slow or not slow', "
                        "'tests/test_strategies.py', 'tests/test_contract.py', 'tests/test_ddp_strategies.py']))")
    assert collected.returncode == 0, collected.stdout[-2000:] + collected.stderr[-2000:]
    for test in ("test_strategy_trains_deterministically", "test_killed_strategy_resumes_bit_identically",
                 "test_ddp_ranks_agree_for_every_strategy"):
        assert f"{test}[{name}]" in collected.stdout, test
    assert f"test_every_strategy_runs_on_every_space_or_says_why_not[{name}-nb201]" in collected.stdout


def test_every_module_of_the_registries_packages_is_imported():
    import lightning_nas.nn
    import lightning_nas.spaces

    for package in (lightning_nas.strategies, lightning_nas.spaces, lightning_nas.nn):
        import pkgutil

        for module in pkgutil.iter_modules(package.__path__):
            assert f"{package.__name__}.{module.name}" in sys.modules, module.name


# ------------------------------------------------------------------------------------------ the contract at import
def test_a_space_without_architecture_type_fails_when_registered():
    class Sketch(NB201Space):
        architecture_type = None

    with pytest.raises(ContractError, match="space Sketch: .*architecture_type"):
        Registry("search space").register("sketch")(Sketch)


def test_a_space_with_an_abstract_member_fails_when_registered():
    class Unfinished(SearchSpace):
        architecture_type = NB201Space.architecture_type

        @property
        def size(self) -> int:
            return 1

    with pytest.raises(ContractError, match="space Unfinished: it must define decisions, from_decisions, to_decisions"):
        Registry("search space").register("unfinished")(Unfinished)


def test_a_relaxed_space_without_decode_fails_when_registered():
    class NoDecode(NB201Space):
        decode = SearchSpace.decode

    with pytest.raises(ContractError, match="NoDecode: it states a relaxation, so it must define decode"):
        Registry("search space").register("no_decode")(NoDecode)


def test_a_network_missing_a_constructor_option_fails_when_registered():
    class NoArch(SuperNet):
        def __init__(self, space=None, num_classes: int = 10, in_channels: int = 3) -> None:
            super().__init__()

        def forward(self, x, arch=None):
            return x

    with pytest.raises(ContractError, match="network NoArch: its constructor must take arch"):
        Registry("network").register("no_arch")(NoArch)

    class NoForward(SuperNet):
        def __init__(self, space=None, num_classes: int = 10, in_channels: int = 3, arch=None) -> None:
            super().__init__()

    with pytest.raises(ContractError, match="network NoForward: it must define forward"):
        Registry("network").register("no_forward")(NoForward)


def test_a_strategy_with_unknown_test_options_or_no_derivation_fails_when_registered():
    class Typo(SPOS):
        test_options = {"optimiser.lr": 0.1}

    with pytest.raises(ContractError, match="strategy Typo: test_options name optimiser"):
        Registry("search strategy").register("typo")(Typo)

    class Derives(SPOS):
        answer = "derived"

    with pytest.raises(ContractError, match="strategy Derives: answer = 'derived' needs its own derive_architecture"):
        Registry("search strategy").register("derives")(Derives)


def test_abstract_intermediates_are_not_checked_and_registered_classes_pass():
    assert STRATEGIES.name_of(BilevelStrategy) is None  # abstract: never registered, never checked
    for registry in (SPACES, NETWORKS, STRATEGIES):
        for cls in registry.values():
            cls.check_contract()


def test_test_options_become_constructor_arguments():
    pcdarts = STRATEGIES.get("pcdarts")
    arguments = pcdarts.test_arguments(NB201Space())
    assert arguments["architecture_optimizer"].warmup_epochs == 0
    default = pcdarts.__init__.__defaults__  # the rest of the typed setting keeps the strategy's defaults
    assert any(getattr(d, "lr", None) == arguments["architecture_optimizer"].lr for d in default)
    standalone = STRATEGIES.get("standalone").test_arguments(NB201Space())
    assert NB201Space().parse(standalone["architecture"])


# ------------------------------------------------------------------------------------------ network config
class Wider(NB201Network):
    """A network subclass with an option of its own."""

    def __init__(self, space=None, num_classes: int = 10, in_channels: int = 3, C: int = 16, N: int = 5,
                 arch=None, stem_scale: float = 1.0, **options) -> None:
        super().__init__(space=space, num_classes=num_classes, in_channels=in_channels, C=C, N=N, arch=arch, **options)
        self.stem_scale = stem_scale


def test_network_config_is_its_constructor_arguments():
    net = NB201Network(C=4, N=1, num_classes=3, in_channels=1, affine=False)
    assert net.config == {"num_classes": 3, "in_channels": 1, "C": 4, "N": 1, "affine": False,
                          "track_running_stats": True, "partial_channels": 1, "path_dropout": 0.0,
                          "global_dropout": 0.0, "seed": None, "ops_on": "edge"}
    wider = Wider(C=4, N=1, num_classes=3, in_channels=1, stem_scale=2.0, affine=False)
    assert wider.config["stem_scale"] == 2.0 and wider.config["affine"] is False
    arch = wider.space.sample(torch.Generator().manual_seed(0))
    alone = wider.standalone(arch)
    assert type(alone) is Wider and alone.stem_scale == 2.0 and alone.arch == arch
    x = torch.randn(2, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(wider.eval()(x, arch), alone.eval()(x))


# ------------------------------------------------------------------------------------------ outside the registry
def test_a_strategy_outside_the_registry_trains_with_a_one_line_notice(capsys):
    class Unlisted(SPOS):
        pass

    module: Optional[SearchStrategy] = Unlisted(network={"C": 4, "N": 1}, num_classes=3, in_channels=1)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Unlisted is not a registered strategy" in err[0] and "tests" in err[0]
    assert module.supernet is not None
    SPOS(network={"C": 4, "N": 1}, num_classes=3, in_channels=1)
    assert capsys.readouterr().err == ""
