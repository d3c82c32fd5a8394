"""Random access to a built dataset, each reference decoded once.

A pair dataset stores every reference image once, in its split ``"references"``, and each example
of ``"full"`` points at its reference by ``ref_id`` (:mod:`birqa_jax.data.base`).
:class:`IQASource` joins them again: ``source[i]`` is the example with ``ref`` and ``dist``, as a
dataset whose examples held both images would give it, but the reference comes from a bounded
cache of decoded references, so a reference is decoded once and not once per pair (decoding
it is about half the reading cost of a KADID-10k pair; benchmarks/README.md has the numbers).
"""

from __future__ import annotations

import collections
import concurrent.futures
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

# Decoded references kept per source (per process): every reference of the supported datasets
# fits (KADID-10k's 81 references of 512x384 take 48 MB, PIPAL's 200 of 288x288 50 MB).
REFERENCE_CACHE_BYTES = 1 << 30


class IQASource:
    """A built dataset's examples, as :func:`birqa_jax.data.load_source` returns them.

    ``len(source)`` examples; ``source[i]`` is a dict of numpy values: for a pair dataset
    ``ref`` and ``dist`` uint8 [H, W, 3] (the reference read-only: it is shared through the
    cache), ``mos``, ``mos_raw``, ``ref_id``, ``ref_name``, ``dist_name``, ``dist_type``,
    ``dist_level``; for a dataset without shared references (``bapps_2afc``) the stored example
    as it is. ``dataset_info`` is the build's ``tfds`` DatasetInfo (metadata included).

    The cache of decoded references holds at most ``cache_bytes`` (least recently used out
    first; 0: none, every pair decodes its reference again). It is shared by the threads that
    read one source, and a reference asked for by several threads at once is decoded once;
    processes (and pickled copies) have their own. ``reference_decodes`` counts the decodes.

    Args:
      examples: ``tfds`` data source of the split ``"full"``.
      references: ``tfds`` data source of the split ``"references"``, or None (no shared
        references: examples are returned as stored).
      reference_ids: the ``ref_id`` of each row of ``references``, in row order.
      cache_bytes: bound of the cache of decoded references, in bytes.
    """

    def __init__(
        self,
        examples: Any,
        references: Any = None,
        reference_ids: Sequence[int] = (),
        cache_bytes: int = REFERENCE_CACHE_BYTES,
    ):
        self.examples = examples
        self.references = references
        self.reference_rows = {int(ref_id): row for row, ref_id in enumerate(reference_ids)}
        self.cache_bytes = int(cache_bytes)
        self._new_cache()

    def _new_cache(self) -> None:
        self._lock = threading.Lock()
        self._cache: collections.OrderedDict[int, np.ndarray] = collections.OrderedDict()
        self._cached_bytes = 0
        self._pending: dict[int, concurrent.futures.Future] = {}
        self.reference_decodes = 0

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        for key in ("_lock", "_cache", "_cached_bytes", "_pending", "reference_decodes"):
            del state[key]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._new_cache()

    @property
    def dataset_info(self) -> Any:
        """The build's ``tfds`` DatasetInfo, metadata included."""
        return self.examples.dataset_info

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int) -> dict[str, Any]:
        example = self.examples[index]
        if self.references is None:
            return example
        example = dict(example)
        dist = example.pop("image")
        return {"ref": self.reference(int(example["ref_id"])), "dist": dist, **example}

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def __repr__(self) -> str:
        refs = f", {len(self.reference_rows)} references" if self.references is not None else ""
        return f"IQASource({self.dataset_info.full_name}, {len(self)} examples{refs})"

    def reference(self, ref_id: int) -> np.ndarray:
        """The reference image ``ref_id``, uint8 [H, W, 3], read-only; decoded on first use."""
        with self._lock:
            image = self._cache.get(ref_id)
            if image is not None:
                self._cache.move_to_end(ref_id)
                return image
            future = self._pending.get(ref_id)
            decoding_here = future is None
            if decoding_here:
                future = self._pending[ref_id] = concurrent.futures.Future()
        if not decoding_here:  # another thread is decoding it
            return future.result()
        try:
            image = self._decode_reference(ref_id)
        except BaseException as e:
            with self._lock:
                del self._pending[ref_id]
            future.set_exception(e)
            raise
        with self._lock:
            del self._pending[ref_id]
            self.reference_decodes += 1
            self._keep(ref_id, image)
        future.set_result(image)
        return image

    def _decode_reference(self, ref_id: int) -> np.ndarray:
        if self.references is None:
            raise KeyError(f"{self!r} stores no references apart from its examples")
        row = self.reference_rows.get(ref_id)
        if row is None:
            raise KeyError(f"{self!r} has no reference with ref_id {ref_id}")
        image = np.asarray(self.references[row]["image"])
        image.flags.writeable = False
        return image

    def _keep(self, ref_id: int, image: np.ndarray) -> None:
        """Caches ``image`` (lock held), dropping the least recently used beyond the bound."""
        if image.nbytes > self.cache_bytes:
            return
        self._cache[ref_id] = image
        self._cached_bytes += image.nbytes
        while self._cached_bytes > self.cache_bytes:
            _, dropped = self._cache.popitem(last=False)
            self._cached_bytes -= dropped.nbytes
