"""Where parameters live: the packed parameter block, its panel-packed weight matrices,
and the packed blocks the matrix multiply needs (sized at generation time)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .ir import DTYPES, Graph
from .passes.plan_memory import aligned

# The matrix multiply's packed blocks (runtime/gemm.h) are planned with its default block
# sizes and every register tile it may take (rows: 6 with 16 vector registers, 14 with 32;
# columns: two vectors, up to 64 bytes each); gemm.h refuses to compile with larger ones.
GEMM_MC, GEMM_NC, GEMM_KC_BYTES = 72, 1024, 1024
GEMM_MRS, GEMM_NR_MAX_BYTES = (6, 14), 128
GEMM_SMALL_M = 4        # fewer rows stream through B without packing
GEMM_IN_PLACE_BYTES = 1024      # rows of an untransposed A this close are read in place


@dataclass(frozen=True)
class GemmBlocks:
    """One task's packed blocks: values of A's block, then of B's."""
    a_elements: int = 0
    b_elements: int = 0

    @property
    def elements(self) -> int:
        return self.a_elements + self.b_elements

    def union(self, other: "GemmBlocks") -> "GemmBlocks":
        return GemmBlocks(max(self.a_elements, other.a_elements),
                          max(self.b_elements, other.b_elements))


def round_up(n, multiple: int) -> int:
    return -(-n // multiple) * multiple


def gemm_blocks(M, N, K, itemsize: int, lda=math.inf, trans_a=False, b_panels=False,
                trans_b=False) -> GemmBlocks:
    """The blocks of a product op(A) (M, K) x op(B) (K, N), M, N or K at most as given
    (math.inf: any): A's min(M, MC) rows (MC cut to whole tiles) rounded up to the register
    tile by min(K, KC), for the largest of the tiles (one tile of rows when A's rows are
    close enough to be read in place), B's min(N, NC) columns rounded up to the widest
    panel by min(K, KC).  Narrower than a panel (N < NR at some width), the turned tile
    packs one block of NR rows of A by min(K, KC) (and op(B)^T's N columns, within B's
    block).  A panel-packed B is read in place; fewer than GEMM_SMALL_M rows of an
    untransposed B pack nothing."""
    if M < GEMM_SMALL_M and not trans_b:
        return GemmBlocks()
    kc = min(K, GEMM_KC_BYTES // itemsize)
    a_in_place = not trans_a and lda * itemsize <= GEMM_IN_PLACE_BYTES
    a = max((mr if a_in_place else round_up(min(M, GEMM_MC // mr * mr), mr)) * kc
            for mr in GEMM_MRS)
    nr_max = GEMM_NR_MAX_BYTES // itemsize
    if N < nr_max:
        a = max(a, nr_max * kc)
    b = 0 if b_panels else round_up(min(N, GEMM_NC), GEMM_NR_MAX_BYTES // itemsize) * kc
    return GemmBlocks(aligned(a), aligned(b))


# The host int8 dense kernel (runtime/quant.h, AVX2) widens DLC_QMR = 6 rows of DLC_QKC = 1024
# inputs to int16 at a time, into the first task's blocks of the workspace.
QDENSE_ROWS_BYTES = 6 * 1024 * 2


def qdense_blocks(itemsize: int) -> GemmBlocks:
    """The blocks of a host int8 dense layer: its widened rows, as an A block."""
    return GemmBlocks(aligned(-(-QDENSE_ROWS_BYTES // itemsize)))


# Inference weight matrices are stored as column panels one cache line wide (see
# dlc_b_column in runtime/gemm.h): the matrix multiply reads them in place, never copies.
PANEL_BYTES = 64


@dataclass(frozen=True)
class ParamLayout:
    offsets: dict     # param ref -> element offset in the packed parameter block
    size: int
    panels: dict = field(default_factory=dict)   # param ref -> panel width, if panel-packed
    ragged: bool = False    # the last panel as wide as the columns left, else zero-padded


def param_layout(graph: Graph, panels: dict = None, ragged: bool = False) -> ParamLayout:
    """Offsets of the parameters in one block; the matrices in ``panels`` take the
    room of their panel-packed form (``ragged``: see as_panels).  A quantized model's
    integer parameters are not in it: they are static arrays of their own type
    (program.Constant)."""
    panels = panels or {}
    offsets, size = {}, 0
    for ref, param in graph.params.items():
        if param.type.is_integer:
            continue
        offsets[ref] = size
        size += aligned(panels_size(param.value.shape, panels[ref], ragged) if ref in panels
                        else param.value.size)
    return ParamLayout(offsets, max(size, 1), panels, ragged)


def inference_layout(graph: Graph, width: int = None, ragged: bool = False) -> ParamLayout:
    """The parameter block of an inference library or export: dense weights as panels
    ``width`` columns wide (by default one cache line, zero-padded for the matrix
    multiply's full-width reads; a target's plain kernels ask for narrow ragged ones)."""
    return param_layout(graph, weight_panels(graph, width), ragged)


def weight_panels(graph: Graph, width: int = None) -> dict:
    """The weight matrices of an inference graph's dense layers, with their panel width."""
    width = width or PANEL_BYTES // DTYPES[graph.dtype].itemsize
    return {node.inputs[1]: width for node in graph.nodes
            if node.op == "dense" and node.inputs[1] in graph.params}


def panels_size(shape: tuple, width: int, ragged: bool = False) -> int:
    """Values in the panel-packed form of a (K, N) matrix."""
    K, N = shape
    return K * N if ragged else K * -(-N // width) * width


def as_panels(W: np.ndarray, width: int, ragged: bool = False) -> np.ndarray:
    """(K, N) as ceil(N / width) panels of K rows of ``width`` columns, flat: the last
    zero-padded, or with ``ragged`` as wide as the columns left."""
    K, N = W.shape
    whole = N - N % width if ragged else -(-N // width) * width
    padded = np.zeros((K, whole), W.dtype)
    padded[:, :min(N, whole)] = W[:, :whole]
    panels = padded.reshape(K, whole // width, width).transpose(1, 0, 2).reshape(-1)
    return np.concatenate([panels, W[:, whole:].reshape(-1)])


def pack_params(graph: Graph, layout: ParamLayout, dtype) -> np.ndarray:
    """The parameter block of ``layout``, aligned to a cache line."""
    block = aligned_zeros(layout.size, dtype)
    for ref, param in graph.params.items():
        if ref not in layout.offsets:       # an integer constant, baked into the source
            continue
        start = layout.offsets[ref]
        value = (as_panels(param.value, layout.panels[ref], layout.ragged)
                 if ref in layout.panels else param.value.reshape(-1))
        block[start:start + value.size] = value
    return block


def aligned_zeros(n: int, dtype, align: int = 64) -> np.ndarray:
    """n zeros starting on an ``align``-byte boundary (a cache line: the kernels' vector
    loads never straddle two lines when the data is packed at aligned offsets)."""
    dtype = np.dtype(dtype)
    raw = np.zeros(n * dtype.itemsize + align, np.uint8)
    start = -raw.ctypes.data % align
    return raw[start:start + n * dtype.itemsize].view(dtype)




def pack_int8_pairs(W: np.ndarray) -> np.ndarray:
    """A quantized dense layer's (K, N) int8 weights as runtime/quant.h reads them: panels
    of 8 output channels, in each, for each pair of inputs (k, k + 1), the 8 channels' two
    weights side by side; K rounded up to even and N to a multiple of 8 with zeros."""
    K, N = W.shape
    padded = np.zeros((-(-K // 2) * 2, -(-N // 8) * 8), W.dtype)
    padded[:K, :N] = W
    pairs, panels = padded.shape[0] // 2, padded.shape[1] // 8
    return padded.reshape(pairs, 2, panels, 8).transpose(2, 0, 3, 1).reshape(-1)


def pack_int8_quads(W: np.ndarray) -> np.ndarray:
    """A quantized dense layer's (K, N) int8 weights as the plain kernels read them from
    flash (runtime/portable_quant.h), no padding: for each group of 4 output channels, for
    each 4 inputs the 4 channels' 4 weights (16 bytes), then for each of the K % 4 last
    inputs the 4 channels' weights; then the N % 4 last channels, each one's K weights."""
    K, N = W.shape
    K4, N4 = K // 4 * 4, N // 4 * 4
    groups = W[:, :N4].reshape(K, N4 // 4, 4)                  # [k, group, channel]
    body = groups[:K4].reshape(K4 // 4, 4, N4 // 4, 4).transpose(2, 0, 3, 1)
    tail = groups[K4:].transpose(1, 0, 2)
    parts = [np.concatenate([body[g].reshape(-1), tail[g].reshape(-1)]) for g in range(N4 // 4)]
    return np.concatenate([*parts, W[:, N4:].T.reshape(-1)]).astype(W.dtype)


# How a kernel may read a parameter (ops.Kernel.packed, or a target's override, names one
# of these).
PACKINGS = {"int8_pairs": pack_int8_pairs, "int8_quads": pack_int8_quads}
