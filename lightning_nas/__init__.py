"""lightning_nas: weight-sharing neural architecture search on PyTorch Lightning.

The package is organised by concept: ``spaces`` (architectures only), ``nn`` (super-nets and
stand-alone networks), ``strategies`` (search algorithms as LightningModules), ``data``
(deterministic DataModules), ``benchmarks`` (ground-truth tables) and ``metrics`` (ranking
statistics).
"""

__version__ = "0.1.0"
