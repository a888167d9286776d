"""Memory a liquid's simulation holds on its device, from the tensors the simulators allocate (bytes).

Counted from the real tables of a built liquid (:class:`reservoir.spiking.fast.EventWeights`,
:class:`reservoir.spiking.plastic.PlasticTables`) plus the per-(neuron, sample) state of the loops
(docs/spiking.md, "Devices"). Transients of one step (the indices of the few neurons that fired) are left
out: at ~1 % of the neurons firing per ms they are small beside the state.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import torch

from reservoir.spiking.fast import EventWeights
from reservoir.spiking.liquid import Liquid
from reservoir.spiking.plastic import SUB_BATCH, PlasticTables

#: Bytes per (neuron, sample) of the fixed event loop: current, voltage, synaptic input, counts (float32),
#: last-spike step (int32), crossing mask (bool).
FIXED_STATE_BYTES = 4 * 4 + 4 + 1
#: Bytes per (neuron or input, sample) of the plastic loop: trace, synaptic input, current, voltage, counts
#: and two constant vectors (float32), last-spike step (int32), crossing mask (bool).
PLASTIC_STATE_BYTES = 7 * 4 + 4 + 1
F32 = 4


def _nbytes(obj: Any) -> int:
    """Bytes of the tensors of a (nested) dataclass."""
    total = 0
    for f in fields(obj):
        val = getattr(obj, f.name)
        if isinstance(val, torch.Tensor):
            total += val.numel() * val.element_size()
        elif hasattr(val, "__dataclass_fields__"):
            total += _nbytes(val)
    return total


def liquid_memory(
    liquid: Liquid,
    batch: int,
    *,
    plastic: bool,
    steps: int = 250,
    record: int = 20,
    sub_batch: int = SUB_BATCH,
) -> dict[str, int]:
    """Device bytes of one :func:`simulate_fixed` (event backend) or :func:`simulate_plastic` call of
    ``batch`` samples of ``steps`` ms, recording ``record`` rasters; keys are the parts and ``total``.

    Fixed: ``tables`` (padded outgoing synapses + dense input weights), ``state`` (n x batch x 21 B),
    ``inputs`` (n_in x batch float32), ``raster``. Plastic: ``tables``, ``input_spikes`` (steps x n_in x
    batch bool, drawn for the whole batch), ``weights_out`` (n_syn x batch float32, every sample's final
    weights), ``sub_batch_weights`` (the padded per-sample weight blocks of one sub-batch), ``state``
    ((n + n_in + 1) x sub-batch x 33 B), ``raster``.
    """
    n, n_in = liquid.n, liquid.n_in
    raster = steps * n * min(record, batch)
    if not plastic:
        ew = EventWeights.build(liquid)
        parts = {
            "tables": _nbytes(ew) + ew.post.numel() * 8,  # + the post index scaled by the batch
            "state": n * batch * FIXED_STATE_BYTES,
            "inputs": n_in * batch * F32,
            "raster": raster,
        }
    else:
        tab = PlasticTables.build(liquid)
        b = min(batch, sub_batch)
        parts = {
            "tables": _nbytes(tab),
            "input_spikes": steps * n_in * batch,
            "weights_out": liquid.n_syn * batch * F32,
            "sub_batch_weights": b * (tab.liq.block + tab.inp.block) * F32,
            "state": (n + n_in + 1) * b * PLASTIC_STATE_BYTES,
            "raster": raster,
        }
    parts["total"] = sum(parts.values())
    return parts


def features_bytes(n_samples: int, n: int) -> int:
    """Host bytes of the spike-count features of ``n_samples`` samples (float64, kept by the caller)."""
    return n_samples * n * 8
