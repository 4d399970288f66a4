"""Search strategies as LightningModules, by short name (``STRATEGIES.get("spos")``).

Adding a strategy: write ``strategies/<name>.py`` with a ``SearchStrategy`` subclass and
register it below. Recipes name it by class path (``lightning_nas.strategies.SPOS``) or class
name (``SPOS``).
"""
from lightning_nas.registry import Registry
from lightning_nas.strategies.base import SearchStrategy
from lightning_nas.strategies.darts import DARTS
from lightning_nas.strategies.enas import ENAS
from lightning_nas.strategies.fairnas import FairNAS
from lightning_nas.strategies.gdas import GDAS
from lightning_nas.strategies.pcdarts import PCDARTS
from lightning_nas.strategies.random_sampling import RandomSampling
from lightning_nas.strategies.spos import SPOS
from lightning_nas.strategies.standalone import Standalone

STRATEGIES: Registry[type[SearchStrategy]] = Registry("search strategy")
STRATEGIES.register("spos")(SPOS)
STRATEGIES.register("standalone")(Standalone)
STRATEGIES.register("darts")(DARTS)
STRATEGIES.register("gdas")(GDAS)
STRATEGIES.register("pcdarts")(PCDARTS)
STRATEGIES.register("enas")(ENAS)
STRATEGIES.register("fairnas")(FairNAS)
STRATEGIES.register("random_sampling")(RandomSampling)

__all__ = ["DARTS", "ENAS", "GDAS", "PCDARTS", "SPOS", "STRATEGIES", "FairNAS", "RandomSampling", "SearchStrategy",
           "Standalone"]
