"""The tabulation's protocol keys, fixed Trainer options and error type."""
from __future__ import annotations


PROTOCOL_KEYS = ("space", "space_options", "architectures", "sample_seed", "seeds", "max_epochs", "evaluate",
                 "model", "data", "trainer")
SPLITS = ("val", "test")
#: Trainer options the tabulation fixes itself (a recipe may not override them).
FIXED_TRAINER = dict(logger=False, enable_checkpointing=False, enable_progress_bar=False,
                     enable_model_summary=False, deterministic=True, num_sanity_val_steps=0)


from lightning_nas.errors import RecipeError  # noqa: E402


class TabulateError(RecipeError):
    """Bad recipe, options or table file; the message names the key or file."""
