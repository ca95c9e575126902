"""
MNIST end to end
================

Train on uint8 images, report test bits/dim, save a grid of samples.

.. code-block:: bash

    python examples/mnist.py [--max-time S] [--device cuda|cpu] [--train-images N]
                             [--test-images N] [--data-dir DIR] [--out mnist_samples.png]

Needs the four MNIST IDX files (train-images-idx3-ubyte, train-labels-idx1-ubyte,
t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte, gzipped or not) in --data-dir (default:
$SDESCORE_DATA/mnist); they come from http://yann.lecun.com/exdb/mnist/ and its mirrors.

The model is ``sdescore.fit`` on the uint8 images: each batch is dequantised afresh to
(k + u) / 256, the default U-Net learns the sub-VP score, and the held-out tenth chooses the
weights. Test bits/dim come from the exact probability-flow ODE (Hutchinson's trace, one
probe: 784 dimensions) beside the SDE bound. On a GPU the defaults train on all 60,000
images for 10 minutes; on a CPU the script says so and takes a subset (2,000 training
images, 100 test images, a narrower U-Net, 4 minutes of training), which stays under 10
minutes in all and gives a model far from the GPU's figure. Not run in the docs build.
"""
import argparse
import sys
import time

import torch

import sdescore
from sdescore.datasets import load_mnist
from sdescore.nets import UNet
from sdescore.plot import image_grid

parser = argparse.ArgumentParser(description="Score-based model of MNIST with exact bits/dim.")
parser.add_argument("--max-time", type=float, default=None,
                    help="training seconds (default 600 on a GPU, 240 on a CPU)")
parser.add_argument("--device", default=None, help="cuda or cpu (default: cuda when present)")
parser.add_argument("--train-images", type=int, default=None,
                    help="training images (default all on a GPU, 2000 on a CPU)")
parser.add_argument("--test-images", type=int, default=None,
                    help="test images scored (default 2000 on a GPU, 100 on a CPU)")
parser.add_argument("--data-dir", default=None, help="folder of the MNIST IDX files")
parser.add_argument("--out", default="mnist_samples.png", help="PNG of 64 samples")
args = parser.parse_args()

device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
gpu = device.type == "cuda"
try:
    train_images, _ = load_mnist(args.data_dir, "train")
    test_images, _ = load_mnist(args.data_dir, "test")
except (FileNotFoundError, ValueError) as err:
    sys.exit(f"MNIST is not here, so this example stops: {err}\n(here: --data-dir FOLDER, or set SDESCORE_DATA=FOLDER)")

max_time = args.max_time or (600.0 if gpu else 240.0)
n_train = args.train_images or (len(train_images) if gpu else 2000)
n_test = args.test_images or (2000 if gpu else 100)
if not gpu:
    print(f"On a CPU: {n_train} training images, {n_test} test images, a U-Net 16 wide and "
          f"{max_time:.0f} s of training, so that the run ends within 10 minutes. Expect far "
          "from the GPU's bits/dim; pass --device cuda on a machine with a GPU.")
net = None if gpu else UNet(1, width=16, embed_dim=64)
model = sdescore.fit(train_images[:n_train], "subvp", net=net, max_time=max_time,
                     batch_size=512 if gpu else 64, device=device, seed=0)
chosen = next(r for r in model.history if r.get("selected"))
print(f"trained {model.history[-1]['step']} steps in {model.history[-1]['seconds']:.0f} s; "
      f"weights of step {chosen['step']} (held-out NLL bound {chosen['val_loss']:.1f} nats)")

# one dequantisation of the test images, scored by the exact ODE and by the bound
test = torch.as_tensor(test_images[:n_test], dtype=torch.float32)
x = (test + torch.rand(test.shape, generator=torch.Generator().manual_seed(0))) / 256
start = time.perf_counter()
bits = model.bits_per_dim(x, seed=0)
seconds = time.perf_counter() - start
evaluations = model.last_score_evals
bound = sdescore.bits_per_dim(model.nll_bound(x, draws=16, seed=0).double(), model.dim,
                              levels=256)
print(f"test bits/dim on {n_test} images: {bits.mean():.4f} +- "
      f"{bits.std() / n_test ** 0.5:.4f} (exact ODE, {evaluations} score evaluations, "
      f"{seconds:.0f} s); SDE bound {bound.mean():.4f} (16 draws)")

samples = model.sample(64, seed=0).clamp(0, 1)
image_grid(samples, columns=8, title=f"sdescore, {model.history[-1]['step']} steps").savefig(
    args.out, dpi=120)
print(f"saved 64 samples to {args.out}")
