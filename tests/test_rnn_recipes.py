"""Every PTB recipe runs through train.py on a tiny corpus (shrunk network, one epoch, few candidates)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, run_train
from test_ptb import write_corpus

RECIPES = sorted(p.name for p in (ROOT / "recipes").glob("darts_rnn*.yaml"))


def shrink(recipe: dict, data: Path) -> dict:
    recipe["trainer"].update(max_epochs=1, accelerator="cpu", enable_progress_bar=False,
                             enable_model_summary=False)
    init = recipe["model"]["init_args"]
    init["network"].update(embedding_size=8, hidden_size=8)
    init.get("space_options", {})["num_nodes"] = 3
    if "architecture" in init:
        init["architecture"] = "sigmoid~0|relu~1|tanh~1"
        # the CLI tests every stand-alone run; until it skips data modules without a test split
        # (PTBDataModule.has_test), give it one
        recipe["data"]["init_args"]["test_file"] = "valid.txt"
    recipe["data"]["init_args"].update(data_dir=str(data), batch_size=4, eval_batch_size=4, bptt=5)
    if recipe["data"]["init_args"].get("arch_split"):
        recipe["data"]["init_args"]["arch_split"] = 0.5
    recipe["benchmark"] = None
    for key in ("ranking", "selection"):
        if recipe.get(key, {}).get("num_architectures"):
            recipe[key].update(num_architectures=6, num_batches=2, **({"top_k": 2} if key == "selection" else {}))
    if "decoding" in recipe:
        recipe["decoding"]["num_batches"] = 2
    return recipe


@pytest.mark.parametrize("name", RECIPES)
def test_recipe_runs_on_a_tiny_corpus(name: str, tmp_path: Path) -> None:
    data = write_corpus(tmp_path / "ptb", lines=60, names=("test.txt", "valid.txt"))
    recipe = shrink(yaml.safe_load((ROOT / "recipes" / name).read_text()), data)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(recipe))
    assert run_train(["--recipe", path, "--run_dir", tmp_path / "run"], cwd=ROOT) == 0
    assert (tmp_path / "run" / "metrics.csv").is_file()
    if recipe.get("selection", {}).get("num_architectures"):
        assert json.loads((tmp_path / "run" / "selection.json").read_text())["score"] == "loss"
