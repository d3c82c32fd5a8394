"""Input pipeline speed: training pairs per second per host core, for each way of reading pairs.

    python -m benchmarks.input_speed                          # 384x384 crops of 512x384 pairs
    python -m benchmarks.input_speed --source-size 64x96 --size 48x48 --refs 2 --types 2 --batches 2
    python -m benchmarks.input_speed --synthetic-refs 8       # also the disk cost on kadid_synthetic

A fixture dataset is written to a temporary folder in KADID-10k's official layout (``images/I01.png``,
``images/I01_tt_ll.png``, ``dmos.csv``) at KADID-10k's size, 512x384 (W x H): crops of scikit-image's
photographs as references and ``data.distortions`` of them at level 3, labelled with KADID-10k's
type/level MOS. The ``kadid10k`` builder builds it twice, with PNG and with raw storage, and
``data.train_dataset`` draws batches of random crops (a fixed seed, so every path reads the same
pairs and crops) through three paths:

- ``old``: the pipeline before references were stored once: the reference and the distorted image
  of every pair decoded (``cache_bytes=0``: no reference cache), crops converted to float32 on the
  host;
- ``png``: PNG storage, each reference decoded once (the per-source cache), uint8 crops (converted
  on the device by the training step);
- ``raw``: raw storage: nothing to decode, uint8 crops.

Pairs/s per core = pairs / CPU seconds of the thread that loads the batches (``time.thread_time``,
batches loaded in the calling thread after one untimed pass over the data): less sensitive to
other processes on the machine than wall time. Wall-clock pairs/s are reported too, in the calling
thread and with ``--workers`` threads (``data.iterate``; default one per core), with the load
average before and after each path. The disk cost (bytes per pair of each storage: the stored
examples plus the references shared out over the pairs, records and files) comes from the
built datasets; ``--synthetic-refs N`` also builds ``kadid_synthetic`` (N references x 125 type/levels
at its default 192x256) in both storages and reports its bytes per pair.

Needs the ``data`` extras (tensorflow-datasets, grain, array-record), imported when the benchmark
runs: the module itself imports without them (and never imports TensorFlow).
"""

from __future__ import annotations

import argparse
import csv
import os
import pathlib
import sys
import tempfile
import time
from typing import Any, Sequence

import numpy as np

from benchmarks import common

PATHS = ("old", "png", "raw")
TARGET_PAIRS_PER_CORE = 500
# Distortion types of the fixture (1-based KADID-10k ids): blur, JPEG, white noise, brighten,
# pixelate, contrast change: PNG sizes from smooth to noisy, as in KADID-10k.
TYPES = (1, 10, 11, 16, 21, 25)
LEVEL = 3


def write_fixture(root: pathlib.Path, refs: int, types: Sequence[int], size: tuple[int, int]) -> int:
    """KADID-10k's layout under ``root``: ``refs`` references of ``size`` (H, W) (the first crops
    of ``data.reference_crops``: scikit-image photographs), each distorted by ``types`` at level
    ``LEVEL``. Returns the number of pairs."""
    from PIL import Image

    from birqa_jax.data import reference_crops, type_level_mos
    from birqa_jax.data.distortions import distort

    mean, _ = type_level_mos()
    images = root / "images"
    images.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    with (root / "dmos.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["dist_img", "ref_img", "dmos", "var"])
        for r, crop in enumerate(reference_crops(refs, size), start=1):
            ref = crop.image(size)
            Image.fromarray(ref).save(images / f"I{r:02d}.png")
            for t in types:
                name = f"I{r:02d}_{t:02d}_{LEVEL:02d}.png"
                Image.fromarray(distort(ref, t, LEVEL, rng)).save(images / name)
                writer.writerow([name, f"I{r:02d}.png", f"{mean[t - 1, LEVEL - 1]:.2f}", "0.1"])
    return refs * len(types)


def record_bytes(split_source: Any) -> int:
    """Bytes of the serialized examples of one split (a ``tfds`` ArrayRecord data source)."""
    records = split_source.data_source
    return sum(len(records[i]) for i in range(len(records)))


def file_bytes(data_dir: str, split: str) -> int:
    """Bytes of the ArrayRecord files of ``split`` in a built dataset's folder."""
    return sum(p.stat().st_size for p in pathlib.Path(data_dir).glob(f"*-{split}.array_record*"))


def disk_cost(png: Any, raw: Any) -> dict[str, Any]:
    """Bytes per pair of two builds of one dataset: the examples of ``full`` (a distorted image
    and the labels) plus the references (split ``references``) shared out over the pairs, as
    stored records and as files, and raw over PNG."""
    pairs, refs = len(png), len(png.reference_rows)
    out: dict[str, Any] = {"pairs": pairs, "references": refs}
    for name, source in (("png", png), ("raw", raw)):
        folder = source.dataset_info.data_dir
        out[f"{name}_bytes_per_example"] = record_bytes(source.examples) / pairs
        out[f"{name}_bytes_per_reference"] = record_bytes(source.references) / refs
        out[f"{name}_bytes_per_pair"] = (record_bytes(source.examples) + record_bytes(source.references)) / pairs
        out[f"{name}_file_bytes_per_pair"] = (file_bytes(folder, "full") + file_bytes(folder, "references")) / pairs
    out["raw_over_png"] = out["raw_bytes_per_pair"] / out["png_bytes_per_pair"]
    return out


def _time_path(source: Any, crop: tuple[int, int], batch: int, batches: int, uint8: bool, seed: int,
               workers: int) -> dict[str, Any]:
    """Timings of ``batches`` training batches read from ``source``."""
    from birqa_jax import data

    ds = data.train_dataset(source, np.arange(len(source)), batch_size=batch, crop_size=crop, seed=seed, uint8=uint8)
    steps = -(-len(source) // batch)
    for k in range(steps):  # untimed: one pass over the data (page cache, reference cache)
        ds[k]
    decodes_before = source.reference_decodes
    load_before = os.getloadavg()
    cpu0, wall0 = time.thread_time(), time.perf_counter()
    for k in range(steps, steps + batches):
        out = ds[k]
    cpu, wall = time.thread_time() - cpu0, time.perf_counter() - wall0
    decodes = source.reference_decodes - decodes_before
    pcpu0, wall0 = time.process_time(), time.perf_counter()
    stream = data.iterate(ds, start_step=steps + batches, prefetch=workers, workers=workers)
    for _ in range(batches):
        next(stream)
    threaded_cpu, threaded_wall = time.process_time() - pcpu0, time.perf_counter() - wall0
    stream.close()
    pairs = batch * batches
    return {
        "dtype": str(out["ref"].dtype),
        "pairs": pairs,
        "cpu_s": cpu,
        "wall_s": wall,
        "pairs_per_core_s": pairs / cpu,
        "pairs_per_s": pairs / wall,
        "workers": workers,
        "pairs_per_s_workers": pairs / threaded_wall,
        "pairs_per_cpu_s_workers": pairs / threaded_cpu,
        "reference_decodes_timed": decodes,
        "loadavg_before": list(load_before),
        "loadavg_after": list(os.getloadavg()),
    }


def run(
    source_size: tuple[int, int] = (384, 512),
    crop: tuple[int, int] = (384, 384),
    batch: int = 16,
    batches: int = 20,
    refs: int = 4,
    types: Sequence[int] = TYPES,
    workers: int | None = None,
    synthetic_refs: int = 0,
    seed: int = 0,
    tmp: str | None = None,
) -> dict[str, Any]:
    """Build the fixture in both storages under ``tmp`` (a new temporary folder if None) and
    time each path of ``PATHS``. Returns ``{"benchmark": "input_speed", "env", "settings",
    "rows", "disk", "best", "target_pairs_per_core", "target_met"}``."""
    from birqa_jax import data

    workers = data.default_workers() if workers is None else workers
    with tempfile.TemporaryDirectory(dir=tmp) as folder:
        root = pathlib.Path(folder)
        pairs = write_fixture(root / "kadid10k", refs, types, source_size)
        data_dir = str(root / "tfds")
        manual = str(root / "kadid10k")
        png = data.load_source("kadid10k", data_dir, manual, storage="png")
        raw = data.load_source("kadid10k", data_dir, manual, storage="raw")
        sources = {"old": data.load_source("kadid10k", data_dir, manual, cache_bytes=0), "png": png, "raw": raw}
        rows = []
        for path in PATHS:
            timing = _time_path(sources[path], crop, batch, batches, uint8=path != "old", seed=seed, workers=workers)
            rows.append({"what": path, "storage": "raw" if path == "raw" else "png", "batch": batch,
                         "height": crop[0], "width": crop[1], "source_height": source_size[0],
                         "source_width": source_size[1], **timing})
        disk = {"kadid10k_fixture": disk_cost(png, raw)}
        if synthetic_refs:
            config = data.KadidSyntheticConfig(name=f"input_speed_{synthetic_refs}", num_refs=synthetic_refs)
            syn = {s: data.load_source("kadid_synthetic", data_dir, config=config, storage=s) for s in ("png", "raw")}
            disk["kadid_synthetic"] = {"crop_size": list(config.crop_size), **disk_cost(syn["png"], syn["raw"])}
    best = max(rows, key=lambda r: r["pairs_per_core_s"])
    return {
        "benchmark": "input_speed",
        "env": common.environment(),
        "settings": {"source_size": list(source_size), "crop": list(crop), "batch": batch, "batches": batches,
                     "refs": refs, "types": list(types), "level": LEVEL, "pairs": pairs, "workers": workers,
                     "synthetic_refs": synthetic_refs, "seed": seed},
        "rows": rows,
        "disk": disk,
        "best": best["what"],
        "target_pairs_per_core": TARGET_PAIRS_PER_CORE,
        "target_met": best["pairs_per_core_s"] >= TARGET_PAIRS_PER_CORE,
    }


def markdown(result: dict) -> str:
    s = result["settings"]
    lines = [
        f"Training batches of {s['batch']} crops of {s['crop'][0]}x{s['crop'][1]} from "
        f"{s['source_size'][0]}x{s['source_size'][1]} pairs ({s['pairs']} pairs, KADID-10k layout):",
        "",
        "| path | storage | crops | pairs/s per core (CPU time) | pairs/s, 1 thread (wall) | "
        f"pairs/s, {s['workers']} threads (wall) | load average before / after |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in result["rows"]:
        load = f"{r['loadavg_before'][0]:.2f} / {r['loadavg_after'][0]:.2f}"
        lines.append(f"| {r['what']} | {r['storage']} | {r['dtype']} | {r['pairs_per_core_s']:,.0f} | "
                     f"{r['pairs_per_s']:,.0f} | {r['pairs_per_s_workers']:,.0f} | {load} |")
    met = "met" if result["target_met"] else "not met"
    lines += ["", f"Best path: {result['best']}; target {result['target_pairs_per_core']} pairs/s per core {met}.",
              "", "Disk (stored records; references shared out over the pairs):", "",
              "| dataset | pairs | references | PNG bytes/pair | raw bytes/pair | raw / PNG | PNG files, bytes/pair | "
              "raw files, bytes/pair |",
              "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, d in result["disk"].items():
        lines.append(f"| {name} | {d['pairs']} | {d['references']} | {d['png_bytes_per_pair']:,.0f} | "
                     f"{d['raw_bytes_per_pair']:,.0f} | {d['raw_over_png']:.2f} | "
                     f"{d['png_file_bytes_per_pair']:,.0f} | {d['raw_file_bytes_per_pair']:,.0f} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--source-size", type=common.parse_size, default=(384, 512),
                   help="HEIGHTxWIDTH of the fixture's images (default 384x512, KADID-10k's)")
    p.add_argument("--size", type=common.parse_size, default=(384, 384), help="crop HEIGHTxWIDTH (default 384x384)")
    p.add_argument("--batch", type=int, default=16, help="pairs per batch")
    p.add_argument("--batches", type=int, default=20, help="timed batches per path")
    p.add_argument("--refs", type=int, default=4, help="references of the fixture")
    p.add_argument("--types", type=int, default=len(TYPES), help=f"distortion types per reference (1-{len(TYPES)})")
    p.add_argument("--workers", type=int, help="threads of the threaded measurement (default one per core)")
    p.add_argument("--synthetic-refs", type=int, default=0,
                   help="also build kadid_synthetic with this many references in both storages (disk cost)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tmp", help="folder for the temporary datasets (default: the system's)")
    p.add_argument("--out", help="write the results as JSON here")
    a = p.parse_args(argv)
    result = run(a.source_size, a.size, batch=a.batch, batches=a.batches, refs=a.refs, types=TYPES[:a.types],
                 workers=a.workers, synthetic_refs=a.synthetic_refs, seed=a.seed, tmp=a.tmp)
    return common.report_result(result, markdown, a.out)


if __name__ == "__main__":
    main(sys.argv[1:])
