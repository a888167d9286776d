"""Liquid construction on a 3-D grid (Ivanov & Michmizos, NeurIPS 2021, `combra-lab/NALSM`).

Neurons sit on an integer grid (10x10x10 for 1000, 20x20x20 for 8000); 80 % excitatory, 20 % inhibitory at
random positions. A directed synapse j -> i exists with probability ``C[type_j, type_i] * exp(-(D/lambda)^2)``
(D in grid units). Input neurons project to the liquid with density 0.15 and weights +-1.

Synapses are stored as flat index lists (``pre``, ``post``) over a combined neuron index space: liquid neurons
are ``0..n-1``, input neurons ``n..n+n_in-1``. Dense/CSR matrices are built from the lists on demand.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch

# Connection constants from docs/methods.md / the NALSM paper (Table of liquid parameters).
LAMBDA = 3.0  # grid units
C_EE, C_EI, C_IE, C_II = 0.2, 0.1, 0.3, 0.05  # first letter = presynaptic type
FRACTION_EXC = 0.8
INPUT_DENSITY = 0.15
W_EXC_INIT, W_INH_INIT = 1.0, -1.0
# Weight bounds under plasticity (NALSM_RUN_MAIN_SIM_MNIST.py: MAX_RES_W 3.0).
W_EXC_BOUNDS = (0.0, 3.0)
W_INH_BOUNDS = (-3.0, 0.0)
W_INPUT_BOUNDS = (-3.0, 3.0)

# synapse class codes
SYN_EXC, SYN_INH, SYN_INPUT = 0, 1, 2
_BUILD_CHUNK = 1000  # postsynaptic rows per block when sampling connections


def grid_shape(n: int) -> tuple[int, int, int]:
    """The smallest near-cubic grid holding ``n`` neurons (10x10x10 for 1000, 20x20x20 for 8000)."""
    side = round(n ** (1 / 3))
    if side**3 == n:
        return (side, side, side)
    a = int(np.ceil(n ** (1 / 3)))
    b = a
    c = int(np.ceil(n / (a * b)))
    return (a, b, c)


@dataclass(frozen=True)
class Liquid:
    """An immutable liquid: neuron positions/types and the synapse list (pre, post, initial weight, class)."""

    n: int
    n_in: int
    positions: np.ndarray  # (n, 3) float64 grid coordinates
    is_exc: np.ndarray  # (n,) bool
    pre: np.ndarray  # (n_syn,) int64 in [0, n + n_in)
    post: np.ndarray  # (n_syn,) int64 in [0, n)
    w0: np.ndarray  # (n_syn,) float32 initial weights
    syn_class: np.ndarray  # (n_syn,) int8: SYN_EXC, SYN_INH or SYN_INPUT (by presynaptic neuron)

    @property
    def n_syn(self) -> int:
        """Number of synapses (liquid + input)."""
        return int(self.pre.size)

    @property
    def recurrent(self) -> np.ndarray:
        """Boolean mask over synapses: liquid -> liquid."""
        out: np.ndarray = self.syn_class != SYN_INPUT
        return out

    def lower_bounds(self) -> np.ndarray:
        """Per-synapse lower weight bound (float32)."""
        lo = np.array([W_EXC_BOUNDS[0], W_INH_BOUNDS[0], W_INPUT_BOUNDS[0]], dtype=np.float32)
        out: np.ndarray = lo[self.syn_class]
        return out

    def upper_bounds(self) -> np.ndarray:
        """Per-synapse upper weight bound (float32)."""
        hi = np.array([W_EXC_BOUNDS[1], W_INH_BOUNDS[1], W_INPUT_BOUNDS[1]], dtype=np.float32)
        out: np.ndarray = hi[self.syn_class]
        return out

    def dense(self, weights: np.ndarray | None = None) -> np.ndarray:
        """Dense weight matrix (n, n + n_in), rows = postsynaptic, columns = presynaptic (float32)."""
        w = self.w0 if weights is None else weights
        out = np.zeros((self.n, self.n + self.n_in), dtype=np.float32)
        np.add.at(out, (self.post, self.pre), w)
        return out

    def recurrent_mask(self) -> np.ndarray:
        """Liquid connectivity (n, n) bool, ``[post, pre]``."""
        m = np.zeros((self.n, self.n), dtype=bool)
        rec = self.recurrent
        m[self.post[rec], self.pre[rec]] = True
        return m


def connection_probability(
    positions: np.ndarray,
    is_exc: np.ndarray,
    lam: float = LAMBDA,
    c: tuple[float, float, float, float] | None = None,
    rows: slice | None = None,
) -> np.ndarray:
    """P[post, pre] = C[type_pre, type_post] exp(-(D/lambda)^2), zero for self connections (float64).

    rows: the postsynaptic rows to compute (default all): shape (len(rows), n).
    """
    c_ee, c_ei, c_ie, c_ii = c if c is not None else (C_EE, C_EI, C_IE, C_II)
    rows = rows if rows is not None else slice(0, len(positions))
    idx = np.arange(len(positions))[rows]
    d2 = ((positions[idx, None, :] - positions[None, :, :]) ** 2).sum(-1)
    pre_e = is_exc[None, :]
    post_e = is_exc[idx, None]
    cmat = np.where(pre_e, np.where(post_e, c_ee, c_ei), np.where(post_e, c_ie, c_ii))
    p: np.ndarray = cmat * np.exp(-d2 / lam**2)
    p[np.arange(len(idx)), idx] = 0.0
    return p


def build_liquid(
    n: int,
    n_in: int,
    seed: int,
    *,
    lam: float = LAMBDA,
    input_density: float = INPUT_DENSITY,
    fraction_exc: float = FRACTION_EXC,
) -> Liquid:
    """Sample a liquid of ``n`` neurons with ``n_in`` input neurons; deterministic for a given seed."""
    if n < 2 or n_in < 1:
        raise ValueError(f"need n >= 2 and n_in >= 1, got n={n}, n_in={n_in}")
    rng = np.random.default_rng(seed)
    gx, gy, gz = grid_shape(n)
    coords = np.stack(np.meshgrid(np.arange(gx), np.arange(gy), np.arange(gz), indexing="ij"), -1)
    positions = coords.reshape(-1, 3)[:n].astype(np.float64)
    is_exc = np.zeros(n, dtype=bool)
    is_exc[rng.permutation(n)[: round(fraction_exc * n)]] = True

    posts, pres = [], []
    for start in range(0, n, _BUILD_CHUNK):  # chunked over postsynaptic rows to bound memory at N = 8000
        rows = slice(start, min(n, start + _BUILD_CHUNK))
        p = connection_probability(positions, is_exc, lam, rows=rows)
        r_post, r_pre = np.nonzero(rng.random(p.shape) < p)
        posts.append(r_post + start)
        pres.append(r_pre)
    post, pre = np.concatenate(posts), np.concatenate(pres)
    w_rec = np.where(is_exc[pre], W_EXC_INIT, W_INH_INIT).astype(np.float32)
    cls_rec = np.where(is_exc[pre], SYN_EXC, SYN_INH).astype(np.int8)

    post_in, pre_in = np.nonzero(rng.random((n, n_in)) < input_density)
    w_in = np.where(rng.random(pre_in.size) < 0.5, 1.0, -1.0).astype(np.float32)

    return Liquid(
        n=n,
        n_in=n_in,
        positions=positions,
        is_exc=is_exc,
        pre=np.concatenate([pre, pre_in + n]).astype(np.int64),
        post=np.concatenate([post, post_in]).astype(np.int64),
        w0=np.concatenate([w_rec, w_in]),
        syn_class=np.concatenate([cls_rec, np.full(pre_in.size, SYN_INPUT, dtype=np.int8)]),
    )


def dense_weights(liquid: Liquid, weights: np.ndarray | None = None) -> torch.Tensor:
    """The (n + n_in, n) matrix ``W^T`` as a float32 tensor, so that ``I = S_all @ W^T``."""
    return torch.from_numpy(np.ascontiguousarray(liquid.dense(weights).T))


def csr_weights(liquid: Liquid, weights: np.ndarray | None = None, part: str = "all") -> torch.Tensor:
    """Weights as a torch sparse CSR tensor, rows = postsynaptic (float32).

    part: "all" -> (n, n + n_in); "recurrent" -> (n, n); "input" -> (n, n_in).
    """
    w = liquid.w0 if weights is None else weights
    if part == "all":
        sel, offset, cols = np.ones(liquid.n_syn, dtype=bool), 0, liquid.n + liquid.n_in
    elif part == "recurrent":
        sel, offset, cols = liquid.recurrent, 0, liquid.n
    elif part == "input":
        sel, offset, cols = ~liquid.recurrent, liquid.n, liquid.n_in
    else:
        raise ValueError(f"part must be 'all', 'recurrent' or 'input', got {part!r}")
    idx = torch.from_numpy(np.stack([liquid.post[sel], liquid.pre[sel] - offset]))
    vals = torch.from_numpy(np.asarray(w[sel], dtype=np.float32))
    coo = torch.sparse_coo_tensor(idx, vals, (liquid.n, cols), check_invariants=False).coalesce()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torch: "sparse CSR support is in beta"
        return coo.to_sparse_csr()
