"""The types of IR values: a static shape whose leading dimension may be the batch
symbol ``B``, and a dtype: a float (f32, f64) or, in quantized graphs, an integer
(i8, i16, i32).  The op registry's shape rules and the IR both speak in these types, so
they sit below both."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BATCH = "B"
FLOAT_DTYPES = {"f32": np.dtype(np.float32), "f64": np.dtype(np.float64)}
INT_DTYPES = {"i8": np.dtype(np.int8), "i16": np.dtype(np.int16), "i32": np.dtype(np.int32)}
DTYPES = {**FLOAT_DTYPES, **INT_DTYPES}


def dtype_code(dtype) -> str:
    """'f32' or 'f64' for anything NumPy understands as float32/float64."""
    try:
        dt = np.dtype(dtype)
    except TypeError as exc:
        raise TypeError(f"unknown dtype {dtype!r}; use 'float32' or 'float64'") from exc
    for code, known in FLOAT_DTYPES.items():
        if dt == known:
            return code
    raise TypeError(f"unsupported dtype {dtype!r}; use 'float32' or 'float64'")


def value_dtype_code(dtype) -> str:
    """The code of any dtype an IR value may have: the floats and the integers of
    quantized graphs."""
    dt = np.dtype(dtype)
    for code, known in DTYPES.items():
        if dt == known:
            return code
    raise TypeError(f"unsupported dtype {dtype!r} for an IR value; use one of "
                    f"{[str(d) for d in DTYPES.values()]}")


@dataclass(frozen=True)
class TensorType:
    shape: tuple
    dtype: str

    def __str__(self) -> str:
        return f"{self.dtype}[{','.join(str(d) for d in self.shape)}]"

    @property
    def batched(self) -> bool:
        return bool(self.shape) and self.shape[0] == BATCH

    @property
    def row_size(self) -> int:
        """Elements per batch row (or in total, for an unbatched value)."""
        dims = self.shape[1:] if self.batched else self.shape
        return int(np.prod(dims, dtype=np.int64))

    @property
    def np_dtype(self) -> np.dtype:
        return DTYPES[self.dtype]

    @property
    def is_integer(self) -> bool:
        return self.dtype in INT_DTYPES


def type_of(array: np.ndarray) -> TensorType:
    return TensorType(tuple(array.shape), value_dtype_code(array.dtype))
