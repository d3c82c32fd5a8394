"""The device mesh of data parallelism: one axis over every (global) device.

Training (``train.step``) and scoring (``evaluation.runner``) shard their batches over this
axis: the pmap programming model written with ``jax.shard_map``, multi-host ready (the mesh
holds ``jax.devices()``, every process's devices).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import numpy as np
from jax.sharding import Mesh

# The one mesh axis name: batches are split along it, and collectives (pmean, all_gather) name it.
AXIS = "batch"


def make_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A 1-D ``Mesh`` over ``devices`` (default: every device of every process), axis ``AXIS``."""
    devices = np.asarray(list(devices) if devices is not None else jax.devices(), dtype=object)
    return Mesh(devices.reshape(-1), (AXIS,))
