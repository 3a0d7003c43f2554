"""How many examples a property test explores.

CI (the default) runs the `ci` profile: derandomized (the same examples on every run, so a
failure reproduces), no example database, and at most `CI_EXAMPLES` examples a test.
`pytest --run-slow` loads the `long` profile and each test's own, larger budget: the random
exploration that finds new counterexamples. tests/conftest.py picks the profile before the
test modules are imported, which is when `examples()` is evaluated.
"""

from hypothesis import settings

CI_EXAMPLES = 20

settings.register_profile(
    "ci", max_examples=CI_EXAMPLES, derandomize=True, database=None, deadline=None
)
settings.register_profile("long", deadline=None)

long_run = False


def use(*, long: bool, profile: str | None = None) -> None:
    """`profile`: a `--hypothesis-profile` given on the command line wins."""

    global long_run
    long_run = long
    settings.load_profile(profile or ("long" if long else "ci"))


def examples(full: int, *, ci: int = CI_EXAMPLES) -> int:
    """`full` under `--run-slow`, otherwise at most `ci`."""

    return full if long_run else min(full, ci)
