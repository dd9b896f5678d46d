"""Build: C source -> cffi extension module, cached by content hash.

A build happens in a temporary directory inside the cache and is renamed into
place atomically, so concurrent builds of the same model never see half a file.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from functools import lru_cache
from pathlib import Path

import cffi

OPENMP_FLAG = "-fopenmp"
NATIVE_FLAGS = ("-O3", "-march=native", OPENMP_FLAG)   # fastest on this machine
PORTABLE_FLAGS = ("-O2",)                               # runs on any CPU of the architecture
FLAG_PRESETS = {"native": NATIVE_FLAGS, "portable": PORTABLE_FLAGS}
DEFAULT_FLAGS = NATIVE_FLAGS
_loaded: dict = {}


class BuildError(RuntimeError):
    pass


class CacheDirError(BuildError, OSError):
    """The build cache directory cannot be created or written."""


def cache_dir() -> Path:
    """$DLC_CACHE_DIR, else $XDG_CACHE_HOME/dlc, else ~/.cache/dlc; created if missing,
    else a CacheDirError naming the setting it came from and the path."""
    return usable_directory(*cache_location())


def cache_location() -> tuple:
    """(the build cache's path, where that path comes from)."""
    if os.environ.get("DLC_CACHE_DIR"):
        return Path(os.environ["DLC_CACHE_DIR"]), "$DLC_CACHE_DIR"
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]) / "dlc", "$XDG_CACHE_HOME/dlc"
    return Path.home() / ".cache" / "dlc", "~/.cache/dlc (set DLC_CACHE_DIR to use another)"


def usable_directory(path: Path, source: str) -> Path:
    """``path``, a writable directory (created if missing), or a CacheDirError."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        problem = "it exists and is not a directory"
    except OSError as exc:
        problem = f"the directory cannot be created ({exc.strerror})"
    else:
        if os.access(path, os.W_OK | os.X_OK):
            return path
        problem = "the directory is not writable"
    hint = ("" if source.startswith("the ")
            else "; point DLC_CACHE_DIR at a writable directory")
    raise CacheDirError(f"dlc cannot use {str(path)!r} (from {source}) as its build cache: "
                        f"{problem}{hint}")


def compiler_command(cc=None) -> list:
    return shlex.split(cc or os.environ.get("CC") or "cc")


@lru_cache(maxsize=None)
def compiler_identity(cc: tuple) -> str:
    try:
        done = subprocess.run([*cc, "--version"], capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        raise BuildError(f"C compiler {' '.join(cc)!r} not found; install gcc or clang, "
                         "or set the CC environment variable") from None
    return done.stdout.splitlines()[0] if done.stdout else " ".join(cc)


@lru_cache(maxsize=1)
def cpu_identity() -> str:
    """What -march=native depends on."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return sys.platform
    return next((l for l in text.splitlines() if l.startswith("flags")), "")


def resolve_flags(flags) -> tuple:
    """A preset name ("native", "portable") or a sequence of flags, as a tuple."""
    if isinstance(flags, str):
        if flags not in FLAG_PRESETS:
            raise ValueError(f"unknown flag preset {flags!r}; use one of {sorted(FLAG_PRESETS)} "
                             "or a list of compiler flags")
        flags = FLAG_PRESETS[flags]
    try:
        flags = tuple(flags)
    except TypeError:
        raise TypeError(f"flags must be a preset name {sorted(FLAG_PRESETS)} or a list of "
                        f"compiler flags, got {flags!r}") from None
    if not all(isinstance(flag, str) for flag in flags):
        raise TypeError(f"flags must be strings, got {list(flags)!r}")
    return flags


def cache_key(*parts: str) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()[:24]


def build(header: str, source: str, cc=None, flags=DEFAULT_FLAGS, directory=None):
    """Compile (or fetch from the cache) a cffi module; returns (ffi, lib)."""
    def emit(c_file: Path, name: str) -> None:
        ffi = cffi.FFI()
        ffi.cdef(header)
        # Quietly: cffi would announce "generating ...", and redirecting sys.stdout around
        # it is not thread-safe (two threads building at once leave stdout swallowed).
        ffi.set_source(name, source, compiler_verbose=False)
        ffi.emit_c_code(str(c_file))

    module = _cached_module("_dlc", emit, (header, source, cffi.__version__), cc, flags,
                            directory, unique_name=True)
    return module.ffi, module.lib


def build_extension(c_file: Path, include: str, version: str, cc=None, directory=None):
    """Compile (or fetch from the cache) a plain CPython extension whose module name is
    the file's stem, against the headers in ``include`` of a library at ``version``;
    returns the module."""
    source = Path(c_file).read_text()
    return _cached_module(Path(c_file).stem, lambda out, name: out.write_text(source),
                          (source, version), cc, ("-O2", f"-I{include}"), directory,
                          unique_name=False)


def _cached_module(prefix: str, emit, content: tuple, cc, flags, directory, unique_name: bool):
    """Load the module built from ``content`` (``emit(c_file, name)`` writes its C),
    compiling it first unless the cache has it.  A cffi module's name carries the key;
    a plain extension keeps the name its init function was written for."""
    cc = tuple(compiler_command(cc))
    flags = resolve_flags(flags)
    native = cpu_identity() if any("native" in f for f in flags) else ""
    suffix = sysconfig.get_config_var("EXT_SUFFIX") or ".so"
    key = cache_key(*content, compiler_identity(cc), " ".join(flags), native, suffix)
    file_stem = f"{prefix}_{key}"
    if file_stem in _loaded:
        return _loaded[file_stem]
    name = file_stem if unique_name else prefix
    directory = (cache_dir() if directory is None
                 else usable_directory(Path(directory), "the directory= argument"))
    target = directory / (file_stem + suffix)
    if not target.exists():
        _compile(name, emit, cc, flags, target)
    _loaded[file_stem] = _load(name, target)
    return _loaded[file_stem]


def _compile(name, emit, cc, flags, target) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".build-", dir=target.parent))
    try:
        c_file = work / f"{name}.c"
        emit(c_file, name)
        out = work / target.name
        include = sysconfig.get_paths()["include"]
        command = [*cc, *flags, "-shared", "-fPIC", f"-I{include}", str(c_file), "-o", str(out), "-lm"]
        try:
            run_compiler(command)
        except BuildError:
            if OPENMP_FLAG not in flags:
                raise
            # A compiler without OpenMP: the same code runs on one thread.
            run_compiler([f for f in command if f != OPENMP_FLAG])
        os.replace(out, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run_compiler(command: list) -> None:
    try:
        done = subprocess.run(command, capture_output=True, text=True)
    except FileNotFoundError:
        raise BuildError(f"C compiler {command[0]!r} not found; install gcc or clang, "
                         "or set the CC environment variable") from None
    if done.returncode != 0:
        raise BuildError(f"the C compiler failed (exit {done.returncode}):\n"
                         f"$ {' '.join(command)}\n{done.stderr.strip() or done.stdout.strip()}")


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
