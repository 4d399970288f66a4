from lightning_nas.metrics.ranking import (
                                           DEFAULT_SPARSE_VARIANT,
                                           GROUPINGS,
                                           SPARSE_VARIANTS,
                                           kendall_tau,
                                           p_beat_random,
                                           p_beat_random_over_runs,
                                           p_random_as_good,
                                           ranking_agreement,
                                           sparse_kendall_tau,
                                           sparsify,
                                           spearman_rho,
)

__all__ = ["DEFAULT_SPARSE_VARIANT", "GROUPINGS", "SPARSE_VARIANTS", "kendall_tau", "p_beat_random",
           "p_beat_random_over_runs", "p_random_as_good", "ranking_agreement", "sparse_kendall_tau", "sparsify",
           "spearman_rho"]
