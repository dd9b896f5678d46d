import os

import pytest


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
