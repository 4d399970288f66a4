"""One-line notices: where a run does something other than what its recipe literally says.

A count above what exists (``ranking.num_architectures`` larger than the space), a ``top_k`` above
the candidates, a precision the device does not have: the run is still meaningful, but the user
must see the adjustment. A notice is one line on stderr from the process that owns the run (rank
zero), never a message at a log level that ``quiet_third_parties`` hides.
"""
from __future__ import annotations

import sys

from pytorch_lightning.utilities import rank_zero_only

PREFIX = "[lightning_nas] notice:"


@rank_zero_only
def notice(message: str) -> None:
    """Print ``[lightning_nas] notice: MESSAGE`` (one line) on stderr."""
    print(f"{PREFIX} {' '.join(str(message).split())}", file=sys.stderr, flush=True)
