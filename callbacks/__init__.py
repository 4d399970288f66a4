"""Lightning callbacks that observe a search: they read the strategy, the benchmark and the
DataModule through the Trainer and never reach into network internals."""
from callbacks.decoding import ArchitectureDecoding
from callbacks.final_selection import FinalSelection
from callbacks.ranking import WeightSharingRanking

__all__ = ["ArchitectureDecoding", "FinalSelection", "WeightSharingRanking"]
