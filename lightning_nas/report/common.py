"""Names shared by the report's modules."""
from __future__ import annotations

from lightning_nas.errors import RecipeError

METRICS = {  # key -> (table heading, decimals)
    "ground_truth": ("ground truth", 2),
    "sparse_kendall_tau": ("sparse Kendall tau", 3),
    "kendall_tau": ("Kendall tau", 3),
    "supernet_accuracy": ("super-net accuracy", 2),
    "rank": ("rank in the table", 1),
    "p_beat_random": ("p(beat random), per run (n=1)", 3),
    "selected_supernet_accuracy": ("selected arch. super-net val acc", 2),
    "sw_ground_truth": ("shared-weight selection: ground truth", 2),
    "sw_rank": ("shared-weight selection: rank", 1),
}
TESTED = ("ground_truth", "sparse_kendall_tau", "supernet_accuracy", "selected_supernet_accuracy")  # t-tests
NAN = float("nan")


class ReportError(RecipeError):
    """Nothing to report, or a bad option; the message names it."""
