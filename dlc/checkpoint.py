"""Checkpoints: ``dlc.save(model_or_trainer, path)`` and ``dlc.load(path)``.

File format (version 1):
    magic    8 bytes   b"DLCCKPT\\n"
    version  4 bytes   big-endian unsigned
    length   8 bytes   big-endian unsigned, the size of the body
    sha256  32 bytes   of the body
    body             an .npz archive: the arrays, and "manifest" (UTF-8 JSON) describing
                     the model (layer configs, dtype, seed, IR text, parameter names) and,
                     for a trainer, its compile options and its ``state_dict``
The file is written to a temporary file in the same directory and renamed into
place, so a crash never leaves a half-written checkpoint under ``path``.
"""
from __future__ import annotations

import errno
import hashlib
import importlib
import inspect
import io
import json
import os
import struct
import tempfile
import zipfile

import numpy as np

from . import dsl
from .lower import lower
from .optim import Optimizer, Schedule
from .train import compile_trainer
from .version import __version__

MAGIC = b"DLCCKPT\n"
VERSION = 1
HEADER = struct.Struct(">8sIQ32s")


class CheckpointError(ValueError):
    """The file is not a dlc checkpoint, or it is corrupt, truncated or unsupported."""


# ---------------------------------------------------------------- the public API

def save(obj, path) -> None:
    """Write a ``dlc.Model`` or a trainer (mid-training) to ``path`` atomically."""
    arrays = Arrays()
    if isinstance(obj, dsl.Model):
        manifest = {"kind": "model", "model": model_manifest(obj, arrays)}
    elif hasattr(obj, "state_dict") and isinstance(getattr(obj, "net", None), dsl.Model):
        manifest = {"kind": "trainer", "model": model_manifest(obj.net, arrays),
                    "trainer": {"config": encode(trainer_config(obj), arrays, "config"),
                                "state": encode(obj.state_dict(), arrays, "state")}}
    else:
        raise TypeError(f"dlc.save takes a dlc.Model or a trainer, got {type(obj).__name__}")
    manifest.update(format="dlc-checkpoint", dlc_version=__version__)
    write_atomically(path, pack(manifest, arrays.table))


def load(path, *, cc=None, flags=None):
    """Read a checkpoint: a ``dlc.Model``, or a trainer ready to resume training.

    A trainer is recompiled with the loss, optimizer and regularization it was saved
    with (``cc``/``flags`` override the compiler options) and its full state
    restored, so further training is bit-identical to never having stopped.
    """
    manifest, arrays = unpack(read_bytes(path), path)
    kind = manifest.get("kind")
    if kind not in ("model", "trainer"):
        raise CheckpointError(f"{path}: unknown checkpoint kind {kind!r}")
    try:
        net = build_model(manifest["model"], arrays)
        if kind == "trainer":
            config = decode(manifest["trainer"]["config"], arrays)
            state = decode(manifest["trainer"]["state"], arrays)
    except (KeyError, TypeError, AttributeError) as exc:
        raise CheckpointError(f"{path}: malformed dlc checkpoint manifest ({exc!r})") from exc
    return net if kind == "model" else build_trainer(net, config, state, cc, flags)


# ---------------------------------------------------------------- the container

def pack(manifest: dict, arrays: dict) -> bytes:
    body = io.BytesIO()
    text = json.dumps(manifest, sort_keys=True).encode("utf-8")
    np.savez(body, manifest=np.frombuffer(text, np.uint8), **arrays)
    body = body.getvalue()
    return HEADER.pack(MAGIC, VERSION, len(body), hashlib.sha256(body).digest()) + body


def unpack(blob: bytes, path) -> tuple:
    if len(blob) < HEADER.size or not blob.startswith(MAGIC):
        if blob[:len(MAGIC)] == MAGIC[:len(blob)] and blob:
            raise CheckpointError(f"{path}: truncated dlc checkpoint ({len(blob)} bytes)")
        raise CheckpointError(f"{path} is not a dlc checkpoint (no dlc magic header)")
    _, version, length, digest = HEADER.unpack_from(blob)
    if version != VERSION:
        raise CheckpointError(f"{path}: dlc checkpoint format version {version} is not "
                              f"supported; this dlc reads version {VERSION}")
    body = blob[HEADER.size:]
    if len(body) != length:
        raise CheckpointError(f"{path}: truncated or padded dlc checkpoint: the header "
                              f"announces {length} bytes of data, the file holds {len(body)}")
    if hashlib.sha256(body).digest() != digest:
        raise CheckpointError(f"{path}: corrupt dlc checkpoint (sha256 checksum mismatch)")
    try:
        with np.load(io.BytesIO(body), allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
        manifest = json.loads(arrays.pop("manifest").tobytes().decode("utf-8"))
    except (ValueError, KeyError, OSError, zipfile.BadZipFile) as exc:
        raise CheckpointError(f"{path}: unreadable dlc checkpoint body ({exc})") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != "dlc-checkpoint":
        raise CheckpointError(f"{path}: the manifest is not a dlc checkpoint's")
    return manifest, arrays


def check_path(path, what: str) -> None:
    """A TypeError unless ``path`` names a file (an int would be taken for a descriptor)."""
    if not isinstance(path, (str, bytes, os.PathLike)):
        raise TypeError(f"{what} path must be a str or os.PathLike, got {type(path).__name__}")


def read_bytes(path) -> bytes:
    check_path(path, "dlc.load")
    with open(path, "rb") as f:
        return f.read()


def write_atomically(path, data: bytes) -> None:
    check_path(path, "dlc.save")
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    check_target(path, directory)
    try:
        fd, temp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.",
                                    suffix=".tmp")
    except OSError as exc:      # its message would name the temporary file, not the path
        raise type(exc)(exc.errno, f"cannot save to {path!r}: {exc.strerror} in the "
                                   f"directory {directory!r}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)
    except BaseException:
        if os.path.exists(temp):
            os.unlink(temp)
        raise


def check_target(path: str, directory: str) -> None:
    """Errors that name the user's path: a missing directory, a directory as the path."""
    if not os.path.isdir(directory):
        what = "is not a directory" if os.path.exists(directory) else "does not exist"
        error = NotADirectoryError if os.path.exists(directory) else FileNotFoundError
        raise error(errno.ENOTDIR if os.path.exists(directory) else errno.ENOENT,
                    f"cannot save to {path!r}: the directory {directory!r} {what}")
    if os.path.isdir(path):
        raise IsADirectoryError(errno.EISDIR, f"cannot save to {path!r}: it is a directory; "
                                              f"give a file name")


# ---------------------------------------------------------------- values <-> JSON

class Arrays:
    """Collects arrays for the archive; JSON refers to them by key."""

    def __init__(self):
        self.table = {}

    def add(self, value, hint: str) -> dict:
        key = f"a{len(self.table)}_{''.join(c if c.isalnum() else '_' for c in hint)[:40]}"
        self.table[key] = np.array(value, copy=True)
        return {"__scalar__" if isinstance(value, np.generic) else "__array__": key}


def encode(value, arrays: Arrays, where: str):
    """JSON-ready form of nested dicts/lists of arrays and Python scalars (exact)."""
    if isinstance(value, (np.ndarray, np.generic)):
        if value.dtype == object:
            raise TypeError(f"cannot save {where}: it holds an object array")
        return arrays.add(value, where)
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise TypeError(f"cannot save {where}: dict keys must be strings")
        return {"__dict__": {k: encode(v, arrays, f"{where}.{k}") for k, v in value.items()}}
    if isinstance(value, (list, tuple)):
        items = [encode(v, arrays, f"{where}[{i}]") for i, v in enumerate(value)]
        return {"__tuple__" if isinstance(value, tuple) else "__list__": items}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (Optimizer, Schedule)) and type(value).__module__.startswith("dlc."):
        return {"__object__": type(value).__name__, "module": type(value).__module__,
                "config": encode(constructor_config(value), arrays, where)}
    raise TypeError(f"cannot save {where}: values of type {type(value).__name__} are not "
                    f"supported (a Python callable, such as a custom schedule, cannot be "
                    f"saved: use a dlc schedule, or save the model alone)")


def decode(value, arrays: dict):
    if isinstance(value, list):
        return [decode(v, arrays) for v in value]
    if not isinstance(value, dict):
        return value
    if "__array__" in value:
        return arrays[value["__array__"]]
    if "__scalar__" in value:
        return arrays[value["__scalar__"]][()]
    if "__dict__" in value:
        return {k: decode(v, arrays) for k, v in value["__dict__"].items()}
    if "__list__" in value:
        return [decode(v, arrays) for v in value["__list__"]]
    if "__tuple__" in value:
        return tuple(decode(v, arrays) for v in value["__tuple__"])
    if "__object__" in value:
        cls = dlc_class(value["module"], value["__object__"])
        if not issubclass(cls, (Optimizer, Schedule)):
            raise CheckpointError(f"checkpoint names {cls.__name__}, which is not a dlc "
                                  f"optimizer or schedule")
        return cls(**decode(value["config"], arrays))
    raise CheckpointError(f"unknown value in checkpoint manifest: {sorted(value)}")


def constructor_config(obj) -> dict:
    """The constructor arguments that rebuild ``obj``: each parameter of ``__init__``
    read back from the attribute of the same name."""
    config = {}
    for name, param in inspect.signature(type(obj).__init__).parameters.items():
        if name == "self" or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        if not hasattr(obj, name):
            raise TypeError(f"cannot save {type(obj).__name__}: its constructor argument "
                            f"{name!r} is not kept as an attribute")
        config[name] = getattr(obj, name)
    return config


def dlc_class(module: str, name: str):
    """A class from a dlc module, by name; anything outside dlc is refused."""
    if module != "dlc" and not module.startswith("dlc."):
        raise CheckpointError(f"checkpoint refers to {module}.{name}, outside dlc")
    cls = getattr(importlib.import_module(module), name, None)
    if not inspect.isclass(cls):
        raise CheckpointError(f"checkpoint refers to unknown class {module}.{name}")
    return cls


# ---------------------------------------------------------------- models

def model_manifest(net: dsl.Model, arrays: Arrays) -> dict:
    layers = [{"type": type(layer).__name__, "module": type(layer).__module__,
               "config": encode(constructor_config(layer), arrays, layer.name),
               "inputs": list(sources)}
              for layer, sources in zip(net.layers, net.wiring)]
    return {"layers": layers, "outputs": list(net.output_layers), "dtype": np.dtype(net.dtype).name,
            "seed": encode(net.seed, arrays, "seed"), "n_inputs": net.n_inputs,
            "input_name": net.input_name, "ir": str(lower(net)),
            "params": {name: arrays.add(value, name) for name, value in net.params.items()}}


def build_model(spec: dict, arrays: dict) -> dsl.Model:
    inputs = dsl.Input(spec["n_inputs"], name=spec.get("input_name"))
    values = []
    for i, layer in enumerate(spec["layers"]):
        cls = dlc_class(layer["module"], layer["type"])
        if not issubclass(cls, dsl.Layer):
            raise CheckpointError(f"checkpoint layer type {layer['type']!r} is not a dlc layer")
        sources = layer.get("inputs", [i - 1])       # older checkpoints hold chains
        if not (isinstance(sources, list) and sources and all(
                type(s) is int and -1 <= s < i for s in sources)):
            raise CheckpointError(f"checkpoint layer {i} reads {sources!r}, not earlier layers")
        reads = [inputs if s < 0 else values[s] for s in sources]
        values.append(cls(**decode(layer["config"], arrays))(
            reads if issubclass(cls, dsl.Merge) else reads[0]))
    outputs = [values[k] for k in spec.get("outputs", [len(values) - 1])]
    net = dsl.Model(inputs, outputs if len(outputs) > 1 else outputs[0], dtype=spec["dtype"],
                    seed=decode(spec["seed"], arrays))
    if str(lower(net)) != spec["ir"]:
        raise CheckpointError("the model rebuilt from the checkpoint does not lower to the "
                              "saved IR (saved by an incompatible dlc version?)")
    net.set_params({name: decode(ref, arrays) for name, ref in spec["params"].items()})
    return net


# ---------------------------------------------------------------- trainers

def trainer_config(trainer) -> dict:
    """The ``dlc.compile(net, mode="train", ...)`` options that rebuild ``trainer``,
    with the compiler and flags it was built with (other flags, e.g. FMA
    contraction, would change the rounding and break bit-identical resumption)."""
    config = getattr(trainer, "config", None)
    if not isinstance(config, dict):
        raise TypeError(f"cannot save {type(trainer).__name__}: it does not expose its compile "
                        f"options as a .config dict")
    config = dict(config)
    backend = getattr(trainer, "backend", None)
    for key in ("cc", "flags"):
        if key not in config and hasattr(backend, key):
            config[key] = getattr(backend, key)
    if getattr(backend, "name", None) == "runner":
        config.setdefault("backend", "runner")
    return config


def build_trainer(net, config: dict, state: dict, cc, flags):
    if cc is not None:
        config["cc"] = cc
    if flags is not None:
        config["flags"] = flags
    trainer = compile_trainer(net, **config)
    trainer.load_state_dict(state)
    return trainer
