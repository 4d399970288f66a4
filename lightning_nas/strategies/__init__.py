"""Search strategies as LightningModules, by short name (``STRATEGIES.get("spos")``).

Adding a strategy: write ``strategies/<name>.py`` with a ``SearchStrategy`` subclass decorated
``@STRATEGIES.register("<name>")``; importing this package imports every module of it, so the
strategy is registered (and run by the registry-driven tests) without an import line here.
Recipes name it by class path (``lightning_nas.strategies.<module>.<Class>``, or
``lightning_nas.strategies.<Class>`` for the classes exported below) or class name.
"""
from lightning_nas.registry import STRATEGIES, import_modules
from lightning_nas.strategies.base import FixedArchitecture, SearchStrategy
from lightning_nas.strategies.bilevel import BilevelStrategy
from lightning_nas.strategies.darts import DARTS
from lightning_nas.strategies.enas import ENAS
from lightning_nas.strategies.fairnas import FairNAS
from lightning_nas.strategies.gdas import GDAS
from lightning_nas.strategies.pcdarts import PCDARTS
from lightning_nas.strategies.random_sampling import RandomSampling
from lightning_nas.strategies.settings import ArchitectureOptimizer, WeightOptimizer
from lightning_nas.strategies.spos import SPOS
from lightning_nas.strategies.standalone import Standalone

import_modules(__name__, __path__)  # every other module: its decorator registers it

__all__ = ["DARTS", "ENAS", "GDAS", "PCDARTS", "SPOS", "STRATEGIES", "ArchitectureOptimizer", "BilevelStrategy",
           "FairNAS", "FixedArchitecture", "RandomSampling", "SearchStrategy", "Standalone", "WeightOptimizer"]
