"""Orbax checkpoints of the train state: the last K, plus the best by validation SROCC.

Two managers under ``workdir/checkpoints``: ``latest/`` keeps the last ``keep`` steps (for
resuming), ``best/`` keeps the single step with the highest validation SROCC. Orbax writes each
step to a temporary folder and renames it when complete, so a crash never leaves a partial
checkpoint that looks finished; a damaged step of ``latest/`` (disk error, manual edits) is
skipped on restore with a warning, falling back to the previous step.
"""

from __future__ import annotations

import os
import warnings

import jax
import orbax.checkpoint as ocp


class Checkpoints:
    """The two checkpoint managers of a run; every save is synchronous.

    Args:
      workdir: the run's folder; checkpoints go to ``<workdir>/checkpoints/latest`` and
        ``<workdir>/checkpoints/best``.
      keep: how many of the latest steps ``latest/`` keeps.
    """

    def __init__(self, workdir: str, keep: int = 2):
        root = os.path.join(os.path.abspath(workdir), "checkpoints")
        self.latest = ocp.CheckpointManager(
            os.path.join(root, "latest"),
            options=ocp.CheckpointManagerOptions(max_to_keep=keep, enable_async_checkpointing=False),
        )
        self.best = ocp.CheckpointManager(
            os.path.join(root, "best"),
            options=ocp.CheckpointManagerOptions(
                max_to_keep=1, best_fn=lambda m: m["val_srocc"], best_mode="max",
                enable_async_checkpointing=False,
            ),
        )

    def save(self, step: int, state) -> None:
        """Writes ``state`` (a pytree of arrays) as step ``step`` of ``latest/``; steps beyond the
        last ``keep`` are deleted."""
        self.latest.save(step, args=ocp.args.StandardSave(state), force=True)

    def save_best(self, step: int, state, val_srocc: float) -> None:
        """Writes ``state`` as step ``step`` of ``best/`` with its validation SROCC; ``best/`` then
        keeps only the step with the highest SROCC saved there."""
        self.best.save(step, args=ocp.args.StandardSave(state), metrics={"val_srocc": float(val_srocc)}, force=True)

    def best_val_srocc(self) -> float | None:
        """The validation SROCC of the step ``best/`` keeps, or None when it keeps none."""
        step = self.best.best_step()
        if step is None:
            return None
        metrics = self.best.metrics(step)
        return None if metrics is None else float(metrics["val_srocc"])

    def restore_latest(self, template):
        """Restore the newest readable step into the structure/sharding of ``template``.

        Returns the restored state, or None when no checkpoint exists. Unreadable steps are
        skipped with a warning (newest first)."""
        return _restore_newest(self.latest, template)

    def restore_best(self, template):
        """Restore the step ``best/`` keeps into the structure/sharding of ``template``.

        Returns the restored state, or None when ``best/`` holds no step. An unreadable best
        step raises Orbax's error: ``best/`` keeps no other step to fall back on."""
        step = self.best.best_step()
        if step is None:
            return None
        return self.best.restore(step, args=ocp.args.StandardRestore(_abstract(template)))

    def close(self) -> None:
        """Releases both managers; the object is not used after."""
        self.latest.close()
        self.best.close()


def _abstract(template):
    return jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, template)


def _restore_newest(manager: ocp.CheckpointManager, template):
    for step in sorted(manager.all_steps(), reverse=True):
        try:
            return manager.restore(step, args=ocp.args.StandardRestore(_abstract(template)))
        except Exception as e:  # orbax/tensorstore raise many types for damaged files
            warnings.warn(f"checkpoint step {step} in {manager.directory} is unreadable ({type(e).__name__}: "
                          f"{str(e)[:200]}); falling back to the previous one", stacklevel=2)
    return None
