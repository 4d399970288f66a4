"""The factors of "How to Train Your Super-Net" (Yu et al., Table 1) as recipe values: each changes
what it should, is deterministic under the run seed, and is refused in one line where it cannot apply."""
from __future__ import annotations

from collections import Counter

import pytest
from scipy import stats

from lightning_nas.errors import UnsupportedCombinationError
from lightning_nas.registry import NETWORKS, SPACES
from lightning_nas.seeding import generator
from lightning_nas.strategies import SPOS
from lightning_nas.strategies.sampling import ArchitectureSampler

NB101_TINY = {"num_vertices": 4}  # 423 decided cells, 91 graph hashes: 78 single, one spelt 153 ways


def _spos(space: str, space_options: dict, **options) -> SPOS:
    return SPOS(space=space, space_options=space_options, network=dict(NETWORKS.get(space).tiny_options),
                num_classes=3, in_channels=1, seed=7, **options)


def _key_counts(sampler: ArchitectureSampler, key_of: dict, draws: int, seed: int = 0) -> Counter:
    gen = generator(seed, "test-sampling")
    return Counter(key_of[sampler(gen)] for _ in range(draws))


# ---------------------------------------------------------------------------------------------- sampling
def test_random_a_is_uniform_over_keys_where_per_decision_is_not():
    """NB101 (4 vertices): per-decision picks favour cells with many spellings (one hash has 153 of the
    423 valid decided cells); Random-A draws each of the 91 hashes equally often (chi-square)."""
    space = SPACES.get("nb101")(**NB101_TINY)
    key_of = {a: space.key(a) for a in space.enumerate()}  # hashing once keeps the test fast
    keys = set(key_of.values())
    draws = 30 * len(keys)
    for sampling, uniform in (("architectures", True), ("per_decision", False)):
        counts = _key_counts(ArchitectureSampler(space, sampling), key_of, draws)
        assert set(counts) <= keys
        observed = [counts.get(k, 0) for k in sorted(keys)]
        p = stats.chisquare(observed).pvalue
        assert (p > 1e-3) if uniform else (p < 1e-12), (sampling, p)


def test_random_a_reuses_the_spaces_sampler_where_keys_are_decisions():
    """NB201 keeps the default key: each valid decision combination is its own architecture, so both
    rules draw the same architectures from the same generator."""
    space = SPACES.get("nb201")()
    a, b = generator(3, "x"), generator(3, "x")
    per_decision, architectures = ArchitectureSampler(space, "per_decision"), ArchitectureSampler(space, "architectures")
    assert [per_decision(a) for _ in range(20)] == [architectures(b) for _ in range(20)]
    assert not architectures.groups


def test_spos_sampling_option_is_seeded_and_changes_the_draws():
    """The option reaches SPOS' training draws; the same seed gives the same sequence."""
    runs = [_spos("nb101", NB101_TINY, sampling=s) for s in ("architectures", "architectures", "per_decision")]
    sequences = [[str(r.sample_architecture()) for _ in range(30)] for r in runs]
    assert sequences[0] == sequences[1]
    assert sequences[0] != sequences[2]


def test_random_a_is_refused_in_one_line_where_the_space_cannot_be_listed():
    with pytest.raises(UnsupportedCombinationError, match=r"model.max_enumerate=10\b") as error:
        ArchitectureSampler(SPACES.get("nb101")(**NB101_TINY), "architectures", max_enumerate=10)
    assert "\n" not in str(error.value)
    with pytest.raises(UnsupportedCombinationError, match="cannot be enumerated") as error:
        ArchitectureSampler(SPACES.get("nb101")(num_vertices=6), "architectures", max_enumerate=10**9)
    assert "\n" not in str(error.value)
