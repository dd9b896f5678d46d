import os

import pytest
from hypothesis import HealthCheck, settings

# Hypothesis profiles.  "ci" (the default) is reproducible (derandomized: the same
# examples on every run) and sized so the fuzz files stay within the suite's budget;
# "long" draws fresh examples, 50 times as many:
#   pytest tests/test_fuzz.py tests/test_fuzz_api.py --hypothesis-profile=long
# A test sizes itself as a share of the profile's max_examples (tests/strategies.py
# examples()), so one switch scales every property.
SLOW = [HealthCheck.too_slow, HealthCheck.data_too_large]
settings.register_profile("ci", max_examples=100, deadline=None, derandomize=True,
                          print_blob=True, suppress_health_check=SLOW)
settings.register_profile("long", max_examples=5000, deadline=None, print_blob=True,
                          suppress_health_check=SLOW)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(scope="session", autouse=True)
def session_cache(tmp_path_factory):
    """Every test builds into one session cache, never into the source tree or ~/.cache."""
    path = tmp_path_factory.mktemp("dlc-cache")
    old = os.environ.get("DLC_CACHE_DIR")
    os.environ["DLC_CACHE_DIR"] = str(path)
    yield path
    if old is None:
        os.environ.pop("DLC_CACHE_DIR", None)
    else:
        os.environ["DLC_CACHE_DIR"] = old
