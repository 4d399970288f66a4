"""Search spaces, by short name: ``SPACES.get("nb201")()``."""
from lightning_nas.registry import Registry
from lightning_nas.spaces.base import ArchitectureError, SearchSpace

SPACES: Registry[type[SearchSpace]] = Registry("search space")

from lightning_nas.spaces.nb201 import NB201Architecture, NB201Space  # noqa: E402

SPACES.register("nb201")(NB201Space)

from lightning_nas.spaces.darts_rnn import DartsRNNArchitecture, DartsRNNSpace  # noqa: E402

SPACES.register("darts_rnn")(DartsRNNSpace)


def build_space(name: str, **options) -> SearchSpace:
    return SPACES.get(name)(**options)


__all__ = ["SPACES", "ArchitectureError", "DartsRNNArchitecture", "DartsRNNSpace", "NB201Architecture", "NB201Space",
           "SearchSpace", "build_space"]
