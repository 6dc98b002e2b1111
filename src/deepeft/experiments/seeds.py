"""Per-task randomness derived only from (experiment seed, task index).

Every task gets its own independent stream ``SeedSequence(seed, spawn_key=(index,))`` — the same
stream NumPy's ``SeedSequence(seed).spawn(n)[index]`` would give. Nothing depends on the
scheduler, the number of workers, the order in which tasks finish, or on resuming.
"""

from __future__ import annotations

import dataclasses

import numpy as np

__all__ = ["TaskContext", "task_seed"]


def _sequence(seed: int, index: int) -> np.random.SeedSequence:
    return np.random.SeedSequence(int(seed), spawn_key=(int(index),))


def task_seed(seed: int, index: int) -> int:
    """A 64-bit integer that identifies task ``index``'s stream (recorded in ``data.zarr`` attributes)."""
    hi, lo = _sequence(seed, index).generate_state(2, np.uint32)
    return (int(hi) << 32) | int(lo)


@dataclasses.dataclass(frozen=True)
class TaskContext:
    """What a task's compute function gets besides its parameters: its index and its random streams."""

    index: int
    experiment_seed: int

    @property
    def seed(self) -> int:
        """The task's 64-bit seed (see :func:`task_seed`)."""
        return task_seed(self.experiment_seed, self.index)

    def rng(self) -> np.random.Generator:
        """A fresh NumPy generator on the task's stream (call once per task and keep it)."""
        return np.random.default_rng(_sequence(self.experiment_seed, self.index))

    def jax_key(self):
        """A JAX threefry key holding the task's 64-bit seed."""
        import jax
        import jax.numpy as jnp

        words = _sequence(self.experiment_seed, self.index).generate_state(2, np.uint32)
        return jax.random.wrap_key_data(jnp.asarray(words, dtype=jnp.uint32), impl="threefry2x32")
