from lightning_nas.metrics.ranking import (kendall_tau, p_beat_random, p_random_as_good, sparse_kendall_tau,
                                           sparsify, spearman_rho)

__all__ = ["kendall_tau", "p_beat_random", "p_random_as_good", "sparse_kendall_tau", "sparsify", "spearman_rho"]
