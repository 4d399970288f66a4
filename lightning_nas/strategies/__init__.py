"""Search strategies as LightningModules, by short name (``STRATEGIES.get("spos")``).

Adding a strategy: write ``strategies/<name>.py`` with a ``SearchStrategy`` subclass and
register it below. Recipes name it by class path (``lightning_nas.strategies.SPOS``) or class
name (``SPOS``).
"""
from lightning_nas.registry import Registry
from lightning_nas.strategies.base import SearchStrategy
from lightning_nas.strategies.spos import SPOS
from lightning_nas.strategies.standalone import Standalone

STRATEGIES: Registry[type[SearchStrategy]] = Registry("search strategy")
STRATEGIES.register("spos")(SPOS)
STRATEGIES.register("standalone")(Standalone)

__all__ = ["SPOS", "STRATEGIES", "SearchStrategy", "Standalone"]
