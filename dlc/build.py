"""Build: C source -> cffi extension module, cached by content hash.

A build happens in a temporary directory inside the cache and is renamed into
place atomically, so concurrent builds of the same model never see half a file.

Loading a shared object runs its code, so the cache is guarded like ssh guards its
keys: the directory is made 0700 and one that another user owns, or that group or
others may write, is refused unless $DLC_CACHE_INSECURE=1.  Each entry's file name
carries the sha256 of its bytes, checked before it is loaded: a truncated, altered or
foreign entry is removed and rebuilt with a CacheWarning.  $DLC_CACHE_MAX_BYTES caps
the cache's size by evicting the least recently used modules.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import shlex
import shutil
import subprocess
import sys
import stat
import sysconfig
import tempfile
import warnings
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path

import cffi

from .checks import check_int

OPENMP_FLAG = "-fopenmp"
# The flags that make a link add crtfastmath.o (see compile_and_link).
FAST_MATH_LINK_FLAGS = ("-ffast-math", "-Ofast", "-funsafe-math-optimizations")
NATIVE_FLAGS = ("-O3", "-march=native", OPENMP_FLAG)   # fastest on this machine
PORTABLE_FLAGS = ("-O2",)                               # runs on any CPU of the architecture
FLAG_PRESETS = {"native": NATIVE_FLAGS, "portable": PORTABLE_FLAGS}
DEFAULT_FLAGS = NATIVE_FLAGS
_loaded: dict = {}


class BuildError(RuntimeError):
    pass


class CacheDirError(BuildError, OSError):
    """The build cache directory cannot be created or written, or is not private."""


class CacheWarning(UserWarning):
    """A damaged or foreign cache entry was found and is being rebuilt."""


INSECURE_VARIABLE = "DLC_CACHE_INSECURE"
MAX_BYTES_VARIABLE = "DLC_CACHE_MAX_BYTES"


def cache_dir() -> Path:
    """$DLC_CACHE_DIR, else $XDG_CACHE_HOME/dlc, else ~/.cache/dlc; created (0700) if
    missing, else a CacheDirError naming the setting it came from and the path."""
    return usable_directory(*cache_location())


def cache_subdirectory(name: str) -> Path:
    """A private directory inside the cache (the compiled templates live in one)."""
    root = cache_dir()
    return usable_directory(root / name, f"the {name!r} directory of the cache at {root}")


def cache_location() -> tuple:
    """(the build cache's path, where that path comes from)."""
    if os.environ.get("DLC_CACHE_DIR"):
        return Path(os.environ["DLC_CACHE_DIR"]), "$DLC_CACHE_DIR"
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]) / "dlc", "$XDG_CACHE_HOME/dlc"
    return Path.home() / ".cache" / "dlc", "~/.cache/dlc (set DLC_CACHE_DIR to use another)"


def usable_directory(path: Path, source: str) -> Path:
    """``path``, a writable directory (created 0700 if missing) that only this user may
    write (unless $DLC_CACHE_INSECURE=1), or a CacheDirError."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except FileExistsError:
        problem = "it exists and is not a directory"
    except OSError as exc:
        problem = f"the directory cannot be created ({exc.strerror})"
    else:
        if not os.access(path, os.W_OK | os.X_OK):
            problem = "the directory is not writable"
        else:
            check_private(path, source)
            return path
    hint = ("" if source.startswith("the ")
            else "; point DLC_CACHE_DIR at a writable directory")
    raise CacheDirError(f"dlc cannot use {str(path)!r} (from {source}) as its build cache: "
                        f"{problem}{hint}")


def check_private(path: Path, source: str) -> None:
    """A CacheDirError unless ``path`` is owned by this user and writable by no one else:
    whoever can write there can run code as the user who loads its modules."""
    if os.environ.get(INSECURE_VARIABLE) == "1" or not hasattr(os, "geteuid"):
        return
    info = path.stat()
    if info.st_uid != os.geteuid():
        problem = (f"it is owned by another user (uid {info.st_uid}, you are uid "
                   f"{os.geteuid()})")
        fix = "point DLC_CACHE_DIR at a directory of your own"
    elif info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        others = [who for who, bit in (("group", stat.S_IWGRP), ("others", stat.S_IWOTH))
                  if info.st_mode & bit]
        problem = (f"it is writable by {' and '.join(others)} "
                   f"(mode {stat.S_IMODE(info.st_mode):04o})")
        fix = f"run chmod go-w {shlex.quote(str(path))}"
    else:
        return
    raise CacheDirError(
        f"dlc refuses {str(path)!r} (from {source}) as its build cache: {problem}, so "
        f"someone else could plant code that dlc would load and run; {fix}, or set "
        f"{INSECURE_VARIABLE}=1 to use it anyway")


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
        if isinstance(flags, (bytes, dict, set, frozenset)):
            raise TypeError
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


def build(header: str, source: str, cc=None, flags=DEFAULT_FLAGS, directory=None,
          parts=()):
    """Compile (or fetch from the cache) a cffi module; returns (ffi, lib).  ``parts``:
    more C translation units linked into it, compiled beside its own, in parallel."""
    def emit(c_file: Path, name: str) -> list:
        ffi = cffi.FFI()
        ffi.cdef(header)
        # Quietly: cffi would announce "generating ...", and redirecting sys.stdout around
        # it is not thread-safe (two threads building at once leave stdout swallowed).
        ffi.set_source(name, source, compiler_verbose=False)
        ffi.emit_c_code(str(c_file))
        for i, text in enumerate(parts):
            c_file.with_name(f"part{i}.c").write_text(text)
        return [c_file.with_name(f"part{i}.c") for i in range(len(parts))]

    module = _cached_module("_dlc", emit, (header, source, *parts, cffi.__version__), cc,
                            flags, directory, unique_name=True)
    return module.ffi, module.lib


def build_extension(c_file: Path, include: str, version: str, cc=None, directory=None):
    """Compile (or fetch from the cache) a plain CPython extension whose module name is
    the file's stem, against the headers in ``include`` of a library at ``version``;
    returns the module."""
    source = Path(c_file).read_text()

    def emit(out: Path, name: str) -> list:
        out.write_text(source)
        return []

    return _cached_module(Path(c_file).stem, emit,
                          (source, version), cc, ("-O2", f"-I{include}"), directory,
                          unique_name=False)


def _cached_module(prefix: str, emit, content: tuple, cc, flags, directory, unique_name: bool):
    """Load the module built from ``content`` (``emit(c_file, name)`` writes its C and
    returns the paths of the other C files to compile and link with it),
    compiling it first unless the cache has a sound copy.  A cffi module's name carries
    the key; a plain extension keeps the name its init function was written for."""
    cc = tuple(compiler_command(cc))
    flags = resolve_flags(flags)
    native = cpu_identity() if any("native" in f for f in flags) else ""
    suffix = module_suffix()
    key = cache_key(*content, compiler_identity(cc), " ".join(flags), native, suffix)
    file_stem = f"{prefix}_{key}"
    if file_stem in _loaded:
        return _loaded[file_stem]
    name = file_stem if unique_name else prefix
    directory = (cache_dir() if directory is None
                 else usable_directory(Path(directory), "the directory= argument"))
    module = _load_entry(name, directory, file_stem, suffix)
    if module is None:
        target = _compile(name, emit, cc, flags, directory, file_stem, suffix)
        module = _load(name, target)
        cap = max_cache_bytes()
        if cap is not None:
            prune_cache(cap, directory, keep=(target,))
    _loaded[file_stem] = module
    return module


def module_suffix() -> str:
    return sysconfig.get_config_var("EXT_SUFFIX") or ".so"


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _load_entry(name: str, directory: Path, file_stem: str, suffix: str):
    """The module of a sound cache entry ``{file_stem}-{sha256}{suffix}``, or None.  An
    entry whose bytes do not hash to its name, or that does not load, is removed."""
    for path in sorted(directory.glob(f"{file_stem}-*{suffix}")):
        recorded = path.name[len(file_stem) + 1:-len(suffix)]
        try:
            sound = file_digest(path) == recorded
        except OSError:         # removed meanwhile by a process that found it damaged
            continue
        if sound:
            try:
                module = _load(name, path)
            except ImportError as exc:
                problem = f"it does not load ({exc})"
            else:
                touch(path)
                return module
        else:
            problem = "its bytes do not match the sha256 it was stored with"
        warnings.warn(f"dlc's build cache entry {str(path)!r} is damaged or foreign: "
                      f"{problem}; rebuilding it", CacheWarning, stacklevel=4)
        path.unlink(missing_ok=True)
    return None


def touch(path: Path) -> None:
    """Marks an entry as just used: eviction takes the least recently used first."""
    try:
        os.utime(path)
    except OSError:
        pass


def _compile(name, emit, cc, flags, directory, file_stem, suffix) -> Path:
    """Builds the module into a temporary directory of the cache and renames it into
    place, its name carrying its sha256; returns its path."""
    work = Path(tempfile.mkdtemp(prefix=".build-", dir=directory))
    try:
        c_file = work / f"{name}.c"
        c_files = [c_file, *emit(c_file, name)]
        out = work / (file_stem + suffix)
        try:
            compile_and_link(cc, flags, c_files, out)
        except BuildError:
            if OPENMP_FLAG not in flags:
                raise
            # A compiler without OpenMP: the same code runs on one thread.
            compile_and_link(cc, tuple(f for f in flags if f != OPENMP_FLAG), c_files, out)
        target = directory / f"{file_stem}-{file_digest(out)}{suffix}"
        os.replace(out, target)
        return target
    finally:
        shutil.rmtree(work, ignore_errors=True)


def compile_and_link(cc: tuple, flags: tuple, c_files, out: Path) -> None:
    """``c_files`` (a path or several, compiled in parallel) compiled with ``flags``,
    then linked into the shared object ``out`` with
    them all (OpenMP, sanitizers, LTO need them there) but the fast-math ones: linked with
    -ffast-math, -Ofast or -funsafe-math-optimizations, gcc and clang add crtfastmath.o,
    whose constructor makes the CPU flush subnormals to zero in the whole process the
    module is loaded into, NumPy included."""
    include = sysconfig.get_paths()["include"]
    c_files = [c_files] if isinstance(c_files, (str, Path)) else list(c_files)
    objects = [Path(c).with_suffix(".o") for c in c_files]
    commands = [[*cc, *flags, "-fPIC", f"-I{include}", "-c", str(c), "-o", str(o)]
                for c, o in zip(c_files, objects)]
    with ThreadPoolExecutor(min(len(commands), os.cpu_count() or 1)) as pool:
        list(pool.map(run_compiler, commands))
    link_flags = [f for f in flags if f not in FAST_MATH_LINK_FLAGS]
    run_compiler([*cc, *link_flags, "-shared", *map(str, objects), "-o", str(out), "-lm"])


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


# ---------------------------------------------------------------- the cache's contents

def cache_modules(directory=None) -> list:
    """The compiled modules in the cache (``directory``, else cache_dir()), least
    recently used first."""
    root = cache_dir() if directory is None else Path(directory)
    if not root.is_dir():
        return []
    suffix = module_suffix()
    found = []
    for pattern in (f"_dlc_*{suffix}", f"_fastcall_*{suffix}"):
        for path in root.glob(pattern):
            try:
                found.append((path.stat().st_mtime_ns, path.name, path))
            except OSError:
                pass
    return [path for *_, path in sorted(found)]


def max_cache_bytes():
    """$DLC_CACHE_MAX_BYTES as a number of bytes (a suffix K, M or G multiplies by
    1024, 1024**2, 1024**3), or None when unset."""
    text = os.environ.get(MAX_BYTES_VARIABLE, "").strip()
    if not text:
        return None
    scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1].upper(), 1)
    digits = text[:-1] if scale > 1 else text
    if not digits.isdigit():
        raise ValueError(f"${MAX_BYTES_VARIABLE} must be a number of bytes such as "
                         f"500000000 or 500M, got {text!r}")
    return int(digits) * scale


def prune_cache(max_bytes: int, directory=None, keep=()) -> list:
    """Removes the least recently used compiled modules until those left take at most
    ``max_bytes`` (the modules in ``keep`` are never removed); returns the removed paths."""
    max_bytes = check_int(max_bytes, "max_bytes", low=0)
    modules = cache_modules(directory)
    sizes = {path: path.stat().st_size for path in modules if path.exists()}
    total, removed = sum(sizes.values()), []
    for path in modules:
        if total <= max_bytes:
            break
        if path in keep or path not in sizes:
            continue
        path.unlink(missing_ok=True)
        total -= sizes[path]
        removed.append(path)
    return removed
