"""Names shared by the report's modules."""
from __future__ import annotations

METRICS = {  # key -> (table heading, decimals)
    "ground_truth": ("ground truth", 2),
    "sparse_kendall_tau": ("sparse Kendall tau", 3),
    "kendall_tau": ("Kendall tau", 3),
    "supernet_accuracy": ("super-net accuracy", 2),
    "rank": ("best rank", 1),
    "p_beat_random": ("p(beat random)", 3),
    "selected_supernet_accuracy": ("selected arch. super-net val acc", 2),
}
TESTED = ("ground_truth", "sparse_kendall_tau", "supernet_accuracy", "selected_supernet_accuracy")  # Welch t-tests
NAN = float("nan")


class ReportError(ValueError):
    """Nothing to report, or a bad option; the message names it."""
