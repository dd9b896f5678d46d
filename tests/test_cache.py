"""The build cache cannot be poisoned: a private directory, entries checked by sha256
before they are loaded (damaged ones rebuilt), and a size cap that evicts the least
recently used.  Loading a damaged module can kill the process (SIGBUS), so those
cases run in a subprocess: a regression fails the test instead of killing pytest."""
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import dlc
from dlc import build
from helpers import assert_matches

ROOT = Path(__file__).resolve().parent.parent
SUFFIX = build.module_suffix()

PREDICT = textwrap.dedent("""
    import sys, warnings, numpy as np, dlc
    warnings.simplefilter("always")
    width = int(sys.argv[2])
    net = dlc.Sequential([dlc.Input(5), dlc.Dense(width), dlc.Tanh(), dlc.Dense(3)],
                         dtype="float64", seed=width)
    X = np.random.default_rng(0).normal(size=(9, 5))
    np.save(sys.argv[1], dlc.compile(net).predict(X))
""")


def net_of_width(width: int):
    return dlc.Sequential([dlc.Input(5), dlc.Dense(width), dlc.Tanh(), dlc.Dense(3)],
                          dtype="float64", seed=width)


def predict_in_subprocess(cache: Path, out: Path, width: int = 6, **env):
    """Compiles and runs the model of ``width`` in a fresh process; returns it done."""
    env = dict(os.environ, DLC_CACHE_DIR=str(cache), **env,
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, "-c", PREDICT, str(out), str(width)], env=env,
                          capture_output=True, text=True, timeout=300)


def expected(width: int = 6) -> np.ndarray:
    X = np.random.default_rng(0).normal(size=(9, 5))
    return dlc.reference(net_of_width(width)).predict(X)


def entries(cache: Path, prefix: str) -> list:
    return sorted(cache.glob(f"{prefix}_*{SUFFIX}"))


def stem(path: Path) -> str:
    """An entry's name without its digest: what names the module it holds."""
    name = path.name[:-len(SUFFIX)]
    return name[:name.rindex("-")]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A cache holding the models of width 6 and 7 and the fast-call module, and the
    stems of their entries."""
    cache = tmp_path_factory.mktemp("built") / "cache"
    out = cache.parent / "out.npy"
    stems = {}
    for width in (6, 7):
        done = predict_in_subprocess(cache, out, width)
        assert done.returncode == 0, done.stderr
        new = {stem(p) for p in entries(cache, "_dlc")} - set(stems.values())
        stems[width], = new
    stems["_fastcall"], = [stem(p) for p in entries(cache, "_fastcall")]
    return cache, stems


def copy_of(built, tmp_path: Path) -> Path:
    cache = tmp_path / "cache"
    shutil.copytree(built[0], cache)
    return cache


def entry(cache: Path, stem: str) -> Path:
    path, = cache.glob(f"{stem}-*{SUFFIX}")
    return path


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 3])


def flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x40
    path.write_bytes(bytes(data))


def empty(path: Path) -> None:
    path.write_bytes(b"")


DAMAGE = {"truncated to a third": truncate, "one byte altered": flip_a_byte, "empty": empty}


@pytest.mark.parametrize("what", ["_dlc", "_fastcall"])
@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_damaged_entry_is_rebuilt_with_a_warning(built, tmp_path, damage, what):
    cache = copy_of(built, tmp_path)
    name = built[1][6 if what == "_dlc" else what]
    victim = entry(cache, name)
    DAMAGE[damage](victim)
    done = predict_in_subprocess(cache, tmp_path / "out.npy")
    assert done.returncode == 0, f"exit {done.returncode}: {done.stderr}"
    assert "CacheWarning" in done.stderr and "rebuilding it" in done.stderr, done.stderr
    assert str(victim) in done.stderr
    assert_matches(np.load(tmp_path / "out.npy"), expected(), np.float64)
    rebuilt = entry(cache, name)
    assert rebuilt.name == f"{name}-{build.file_digest(rebuilt)}{SUFFIX}"
    again = predict_in_subprocess(cache, tmp_path / "out.npy")     # now a clean cache hit
    assert again.returncode == 0 and "CacheWarning" not in again.stderr, again.stderr


def test_foreign_module_under_a_matching_digest_is_rebuilt(built, tmp_path):
    """Another model's module named as this model's entry, its sha256 correct: it loads
    as no module of this name, and is rebuilt."""
    cache = copy_of(built, tmp_path)
    mine, theirs = entry(cache, built[1][6]), entry(cache, built[1][7])
    mine.unlink()
    foreign = cache / f"{built[1][6]}-{build.file_digest(theirs)}{SUFFIX}"
    shutil.copyfile(theirs, foreign)
    done = predict_in_subprocess(cache, tmp_path / "out.npy")
    assert done.returncode == 0, done.stderr
    assert "does not load" in done.stderr and str(foreign) in done.stderr
    assert_matches(np.load(tmp_path / "out.npy"), expected(), np.float64)


def test_foreign_bytes_under_a_wrong_digest_are_rebuilt(built, tmp_path):
    cache = copy_of(built, tmp_path)
    mine, theirs = entry(cache, built[1][6]), entry(cache, built[1][7])
    shutil.copyfile(theirs, mine)
    done = predict_in_subprocess(cache, tmp_path / "out.npy")
    assert done.returncode == 0, done.stderr
    assert "do not match the sha256" in done.stderr
    assert_matches(np.load(tmp_path / "out.npy"), expected(), np.float64)


def test_cache_directory_and_templates_are_created_private(tmp_path, monkeypatch):
    cache = tmp_path / "deep" / "cache"
    monkeypatch.setenv("DLC_CACHE_DIR", str(cache))
    assert build.cache_dir() == cache
    assert cache.stat().st_mode & 0o777 == 0o700
    assert build.cache_subdirectory("templates").stat().st_mode & 0o777 == 0o700


@pytest.mark.parametrize("mode, who", [(0o770, "group"), (0o707, "others"),
                                       (0o777, "group and others"), (0o720, "group")])
def test_cache_writable_by_others_is_refused(tmp_path, monkeypatch, mode, who):
    cache = tmp_path / "shared"
    cache.mkdir()
    cache.chmod(mode)
    monkeypatch.setenv("DLC_CACHE_DIR", str(cache))
    monkeypatch.delenv("DLC_CACHE_INSECURE", raising=False)
    with pytest.raises(build.CacheDirError) as info:
        build.cache_dir()
    message = str(info.value)
    assert repr(str(cache)) in message and "$DLC_CACHE_DIR" in message
    assert f"writable by {who} (mode {mode:04o})" in message
    assert f"chmod go-w {cache}" in message and "DLC_CACHE_INSECURE=1" in message
    with pytest.raises(build.CacheDirError, match="writable by"):
        dlc.compile(net_of_width(11))           # a model this process has not loaded


def test_cache_owned_by_another_user_is_refused(tmp_path, monkeypatch):
    cache = tmp_path / "theirs"
    cache.mkdir(mode=0o700)
    me = os.geteuid()
    monkeypatch.setattr(os, "geteuid", lambda: me + 1)     # as if the directory were theirs
    monkeypatch.setenv("DLC_CACHE_DIR", str(cache))
    monkeypatch.delenv("DLC_CACHE_INSECURE", raising=False)
    with pytest.raises(build.CacheDirError,
                       match=rf"owned by another user \(uid {me}, you are uid {me + 1}\)"):
        build.cache_dir()
    with pytest.raises(build.CacheDirError, match="the directory= argument"):
        build.usable_directory(cache, "the directory= argument")


def test_insecure_cache_is_used_when_the_user_opts_in(tmp_path):
    cache = tmp_path / "shared"
    cache.mkdir()
    cache.chmod(0o777)
    done = predict_in_subprocess(cache, tmp_path / "out.npy", DLC_CACHE_INSECURE="1")
    assert done.returncode == 0, done.stderr
    assert_matches(np.load(tmp_path / "out.npy"), expected(), np.float64)
    refused = predict_in_subprocess(cache, tmp_path / "out.npy")
    assert refused.returncode != 0 and "CacheDirError" in refused.stderr


def fake_modules(cache: Path, sizes: list) -> list:
    """Module files of these sizes, the first the least recently used."""
    cache.mkdir(mode=0o700)
    paths = []
    for i, size in enumerate(sizes):
        path = cache / f"_dlc_{i:024x}-{'0' * 64}{SUFFIX}"
        path.write_bytes(b"x" * size)
        os.utime(path, ns=(10**18 + i * 10**9, 10**18 + i * 10**9))
        paths.append(path)
    return paths


def test_prune_evicts_the_least_recently_used_first(tmp_path):
    cache = tmp_path / "cache"
    a, b, c, d = fake_modules(cache, [100, 200, 300, 400])
    (cache / "notes.txt").write_bytes(b"y" * 5000)          # not dlc's: never counted
    os.utime(b, ns=(2 * 10**18, 2 * 10**18))                  # b used last
    assert build.cache_modules(cache) == [a, c, d, b]
    assert build.prune_cache(700, cache) == [a, c]            # 1000 -> 600
    assert build.cache_modules(cache) == [d, b] and (cache / "notes.txt").exists()
    assert build.prune_cache(0, cache, keep=(b,)) == [d]
    assert build.cache_modules(cache) == [b]
    assert build.prune_cache(10**9, cache) == []


def test_prune_rejects_a_bad_size(tmp_path):
    with pytest.raises(TypeError, match="max_bytes"):
        build.prune_cache("1M", tmp_path)
    with pytest.raises(ValueError, match="max_bytes"):
        build.prune_cache(-1, tmp_path)


@pytest.mark.parametrize("text, value", [("", None), ("123", 123), ("4K", 4096),
                                         ("2m", 2 << 20), ("1G", 1 << 30)])
def test_size_cap_from_the_environment(monkeypatch, text, value):
    monkeypatch.setenv("DLC_CACHE_MAX_BYTES", text)
    assert build.max_cache_bytes() == value


@pytest.mark.parametrize("text", ["lots", "-5", "1.5G", "M"])
def test_bad_size_cap_names_the_variable(monkeypatch, text):
    monkeypatch.setenv("DLC_CACHE_MAX_BYTES", text)
    with pytest.raises(ValueError, match=r"\$DLC_CACHE_MAX_BYTES .*" + repr(text)):
        build.max_cache_bytes()


def test_cache_hit_marks_the_entry_recently_used(built, tmp_path):
    cache = copy_of(built, tmp_path)
    used = entry(cache, built[1][6])
    os.utime(used, ns=(10**18, 10**18))
    done = predict_in_subprocess(cache, tmp_path / "out.npy")
    assert done.returncode == 0, done.stderr
    assert used.exists() and used.stat().st_mtime_ns > 10**18


def test_size_cap_evicts_after_each_build(tmp_path):
    """With a cap of one byte, each build leaves only the module just built: the
    fast-call module, which a model's first predict builds after the model."""
    cache = tmp_path / "cache"
    for width in (6, 7):
        done = predict_in_subprocess(cache, tmp_path / "out.npy", width,
                                     DLC_CACHE_MAX_BYTES="1")
        assert done.returncode == 0, done.stderr
        assert_matches(np.load(tmp_path / "out.npy"), expected(width), np.float64)
        module, = build.cache_modules(cache)
        assert module.name.startswith("_fastcall_")


def run_cli(cache: Path, *args, **env):
    env = dict(os.environ, DLC_CACHE_DIR=str(cache), **env,
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, "-m", "dlc", *args], env=env,
                          capture_output=True, text=True, timeout=120)


def test_cli_reports_the_cap_and_prunes(built, tmp_path):
    cache = copy_of(built, tmp_path)
    info = run_cli(cache, "cache", "info", DLC_CACHE_MAX_BYTES="5M").stdout
    assert f"size cap: {5 << 20} bytes ($DLC_CACHE_MAX_BYTES)" in info
    assert "size cap: none" in run_cli(cache, "cache", "info", DLC_CACHE_MAX_BYTES="").stdout
    bad = run_cli(cache, "cache", "info", DLC_CACHE_MAX_BYTES="lots")
    assert bad.returncode == 2 and "DLC_CACHE_MAX_BYTES" in bad.stderr
    newest = build.cache_modules(cache)[-1]
    keep = newest.stat().st_size
    done = run_cli(cache, "cache", "prune", str(keep))
    assert done.returncode == 0 and "removed 2 modules" in done.stdout, done.stderr
    assert build.cache_modules(cache) == [newest]
