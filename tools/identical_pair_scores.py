"""Identical-pair scores of every packaged BiRQA weight set: ``python tools/identical_pair_scores.py``.

Scores each image against itself: six scikit-image photographs at full size and as 32x32,
96x96 and 256x192 (width x height) centre crops, plus a few textureless images for contrast.
Prints each set's (lowest, median, highest) over the photographs (the range rounded outwards) in the form of
``birqa_jax.metric.IDENTICAL_PAIR``; copy them there and into docs/using.md's "The score's scale"
when a weight file changes.
"""

import math

import numpy as np
from skimage import data

import birqa_jax
from birqa_jax.metric import METRICS, LearnedMetric

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field")
CROPS = ((32, 32), (96, 96), (256, 192))  # width x height


def photographs() -> dict[str, np.ndarray]:
    out = {}
    for name in PHOTOS:
        im = getattr(data, name)()
        h, w = im.shape[:2]
        out[f"{name} {w}x{h}"] = im
        for cw, ch in CROPS:
            y, x = (h - ch) // 2, (w - cw) // 2
            out[f"{name} {cw}x{ch} crop"] = im[y:y + ch, x:x + cw]
    return out


def main() -> None:
    photos = photographs()
    flat = {"uniform grey 64x64": np.full((64, 64, 3), 128, np.uint8),
            "retina 96x96 centre crop (dark)": data.retina()[658:754, 658:754]}
    by_file = {m.weights: name for name, m in METRICS.items() if isinstance(m, LearnedMetric)}  # "birqa": an alias
    for name in by_file.values():
        m = birqa_jax.create_metric(name)
        scores = np.array([m(x, x) for x in photos.values()])
        lo, hi = math.floor(scores.min() * 100) / 100, math.ceil(scores.max() * 100) / 100  # ranges hold every value
        print(f'"{name}": ({lo:.2f}, {np.median(scores):.2f}, {hi:.2f}),  '
              f"# {scores.min():.4f} .. {scores.max():.4f} over {len(scores)} photographs")
        for label, x in flat.items():
            print(f"    {label}: {m(x, x):.4f}")


if __name__ == "__main__":
    main()
