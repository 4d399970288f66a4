"""Search spaces, by short name: ``SPACES.get("nb201")()``; each module registers its class.

Importing this package imports every module of it, so a new space file with its
``@SPACES.register`` decorator is registered without an import line here.
"""
from lightning_nas.registry import SPACES, import_modules
from lightning_nas.spaces.base import ArchitectureError, SearchSpace
from lightning_nas.spaces.decisions import Choice, WeightGroup
from lightning_nas.spaces.nb201 import NB201Architecture, NB201Space
from lightning_nas.spaces.darts_cnn import DartsCNNSpace, Genotype as DartsCNNGenotype
from lightning_nas.spaces.darts_rnn import DartsRNNArchitecture, DartsRNNSpace
from lightning_nas.spaces.nb101 import NB101Cell, NB101Space
from lightning_nas.spaces.nb1shot1 import NB1Shot1Architecture, NB1Shot1Space

import_modules(__name__, __path__)  # every other module: its decorator registers it


def build_space(name: str, **options) -> SearchSpace:
    return SPACES.get(name)(**options)


__all__ = ["SPACES", "ArchitectureError", "Choice", "DartsCNNGenotype", "DartsCNNSpace", "DartsRNNArchitecture", "DartsRNNSpace", "NB101Cell", "NB101Space",
           "NB1Shot1Architecture", "NB1Shot1Space", "NB201Architecture", "NB201Space", "SearchSpace", "WeightGroup",
           "build_space"]
