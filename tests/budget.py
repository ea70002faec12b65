"""How many examples a property test runs: a fast budget on every developer run, the
deep one in the nightly `deep` job (env SPEC_HYPOTHESIS_PROFILE=deep, loaded by the
root conftest.py, or `--hypothesis-profile=deep`).

The deep budget of a test is never below what it ran before the fast default existed
(its `@settings(max_examples=...)` of then); the fast budget is sized so that no
single property test takes a worker's share of a run. Hypothesis's example database
replays a failure found by either, first, in both.
"""

from __future__ import annotations

from hypothesis import settings


def is_deep() -> bool:
    """Whether the deep profile is loaded (read when a test module is imported: the
    profile is chosen before collection)."""
    return settings.get_current_profile_name() == "deep"


def examples(*, fast: int, deep: int) -> int:
    """`deep` examples in the deep profile, `fast` otherwise."""
    return deep if is_deep() else fast
