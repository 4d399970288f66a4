"""Random search's expected answer, exactly, from a complete table (no sampling).

Random search with n uniform draws with replacement that keeps the draw of best *validation* value
answers cell c with probability P(V_max = v(c)) / m(v(c)), where P(V_max = u) = F(u)^n - F_<(u)^n
(F, F_< the validation values' distribution functions) and m(u) the number of cells whose validation
value is u (equal validation values are equally likely to be the first drawn). Its expected test
regret is the sum over cells of that probability times the cell's test regret. Where validation is
the test metric this is ``metrics.random_baseline.RandomPolicy.best_of`` (Yu et al. 2020 Eq. 1);
with a separate validation metric it is what a search that selects by validation can expect.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np


def random_search_regret(valid: Sequence[float], test_regret: Sequence[float], n: int,
                         higher_is_better: bool = True) -> float:
    """E[test regret of the best-by-validation of ``n`` uniform draws] over the table's cells."""
    if n < 1:
        raise ValueError(f"random search needs n >= 1 draws, got {n}")
    v = np.asarray(valid, dtype=float) * (1.0 if higher_is_better else -1.0)
    r = np.asarray(test_regret, dtype=float)
    if v.shape != r.shape or v.ndim != 1 or len(v) == 0:
        raise ValueError("valid and test_regret must be equally long, non-empty sequences (one value per cell)")
    values, inverse, counts = np.unique(v, return_inverse=True, return_counts=True)
    upper = np.cumsum(counts) / len(v)
    lower = upper - counts / len(v)
    mass = upper ** n - lower ** n                      # P(V_max = u) per distinct validation value
    per_cell = mass[inverse] / counts[inverse]          # shared equally by the cells tied at u
    return float(np.sum(per_cell * r))
