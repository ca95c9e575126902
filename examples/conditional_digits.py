"""
Class-conditional digits by classifier-free guidance
====================================================

scikit-learn's 8 x 8 digits, one model for every class.

.. code-block:: bash

    python examples/conditional_digits.py [--max-time 120] [--guidance 1.0] [--out digits_out]
                                          [--quiet]

Fits one score model to the dequantised digits with their labels (label dropout 10%, so the
same network also learns the unconditional score), draws 16 samples of each class with
``model.sample(16, y=k, guidance_scale=w)`` and saves a 4 x 4 PNG grid per class (the
figure it leaves open shows eight of each class). As a
check it prints how often a logistic-regression classifier trained on the real digits
recognises the generated ones as the class they were drawn for.
"""
import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402

import sdescore  # noqa: E402
from sdescore.datasets import dequantize  # noqa: E402

parser = argparse.ArgumentParser(description="Class-conditional digits by classifier-free guidance.")
parser.add_argument("--max-time", type=float, default=120.0, help="training budget, seconds")
parser.add_argument("--guidance", type=float, default=1.0, help="guidance scale w")
parser.add_argument("--out", default="digits_out", help="folder for the PNG grids")
parser.add_argument("--quiet", action="store_true", help="no progress bars")
args = parser.parse_args()

digits = load_digits()
levels = 17  # pixel values 0..16
x = dequantize(digits.data.astype(int), levels=levels, seed=0)  # (1797, 64) in [0, 1)
model = sdescore.fit(x, "subvp", labels=digits.target, max_time=args.max_time, seed=0,
                     progress=not args.quiet)
print(f"trained {model.history[-1]['step']} steps in {args.max_time:.0f} s")

judge = LogisticRegression(max_iter=2000).fit(digits.data / levels, digits.target)
out = Path(args.out)
out.mkdir(exist_ok=True)
hits = []
overview, rows = plt.subplots(10, 8, figsize=(6, 7.5))
for k in range(10):
    samples = model.sample(16, y=k, guidance_scale=args.guidance, seed=k,
                           progress=False if args.quiet else None).clamp(0, 1).numpy()
    hits.append((judge.predict(samples) == k).mean())
    fig, axes = plt.subplots(4, 4, figsize=(4, 4))
    for image, ax in zip(samples, axes.ravel()):
        ax.imshow(image.reshape(8, 8), cmap="gray_r", vmin=0, vmax=1)
        ax.axis("off")
    fig.suptitle(f"class {k}, guidance {args.guidance:g}")
    fig.savefig(out / f"class_{k}.png", dpi=80)
    plt.close(fig)
    for image, ax in zip(samples, rows[k]):
        ax.imshow(image.reshape(8, 8), cmap="gray_r", vmin=0, vmax=1)
        ax.axis("off")
overview.suptitle(f"eight samples of each class (rows 0-9), guidance {args.guidance:g}")
print("generated digits recognised as their class: " +
      ", ".join(f"{k}: {h:.0%}" for k, h in enumerate(hits)) + f"; mean {np.mean(hits):.0%}")
print(f"saved {out}/class_0.png .. class_9.png")
