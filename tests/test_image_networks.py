"""Networks for images (issue 17, item 3): the U-Net's options, files of its first layout,
and the convolutional noisy classifier against the exact classifier of a labelled mixture."""
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

import sdescore
from sdescore.datasets import GaussianMixture
from sdescore.nets import ConvClassifierNet, NoisyClassifierNet, UNet

DATA = Path(__file__).parent / "data"


def test_unet_files_of_the_first_layout_load_and_give_the_same_scores():
    """A U-Net model saved when its levels were fixed attributes (down1 ... up1, commit
    db4cf6e) loads into the levelled layout and gives that code's scores."""
    expected = json.loads((DATA / "legacy_unet_expected.json").read_text())
    loaded = sdescore.load(DATA / "legacy_unet_model.pt")
    assert loaded.levels == 256
    score = loaded.score(torch.tensor(expected["points"]), expected["t"])
    torch.testing.assert_close(score, torch.tensor(expected["score"]), rtol=1e-5, atol=1e-5)


def test_unet_options_are_checked_and_survive_save_load(tmp_path):
    net = UNet(1, width=8, embed_dim=16, channel_mults=(1, 2, 2, 4), attention_levels=(2, 3),
               dropout=0.2, max_frequency=1000.0, time_input="log")
    data = (torch.rand(64, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 256).byte()
    model = sdescore.fit(data, net=net, steps=3, validation=0, seed=0, progress=False)
    model.save(tmp_path / "unet.pt")
    loaded = sdescore.load(tmp_path / "unet.pt")
    assert loaded.score_fn.net.config == net.config
    x = torch.rand(4, 1, 8, 8)
    # dropout acts in training only: the returned model is deterministic
    torch.testing.assert_close(loaded.score(x, 0.5), model.score(x, 0.5), rtol=0, atol=0)
    torch.testing.assert_close(model.score(x, 0.5), model.score(x, 0.5), rtol=0, atol=0)
    with pytest.raises(ValueError, match="attention_levels must be level indices in 0..2"):
        UNet(1, attention_levels=(3,))
    with pytest.raises(ValueError, match="channel_mults must be two or more positive integers"):
        UNet(1, channel_mults=(1,))
    with pytest.raises(ValueError, match=r"dropout must be in \[0, 1\)"):
        UNet(1, dropout=1.0)


def _two_class_images(n, seed):
    """(1, 4, 4) images: class 0 bright on the left half, class 1 on the right, unit noise."""
    pattern = torch.tensor([1.0, 1.0, -1.0, -1.0]).repeat(4)
    mixture = GaussianMixture(torch.stack([pattern, -pattern]), 0.5 * torch.eye(16).expand(2, 16, 16))
    gen = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 2, (n,), generator=gen)
    x = torch.cat([mixture.component(k).sample(int((labels == k).sum()), seed=seed + k)
                   for k in range(2)])
    return mixture, x.float().reshape(n, 1, 4, 4), labels.sort().values


def test_the_convolutional_classifier_approaches_bayes_rule_on_noisy_images():
    """Trained on two classes of 4 x 4 images, a convolutional classifier's
    q(y | x_t, t) approaches the exact noisy posterior of the labelled mixture at a time
    where the classes overlap (t = 0.5 on the VP SDE, so neither 0 nor 1 is the answer)."""
    mixture, x, labels = _two_class_images(4000, seed=0)
    net = ConvClassifierNet(1, 2, width=8, channel_mults=(1, 2), embed_dim=32)
    classifier = sdescore.fit_classifier(x, labels, "vp", standardize=False, net=net,
                                         steps=400, lr=3e-3, seed=0, progress=False)
    sde = classifier.sde
    _, test, _ = _two_class_images(2000, seed=9)
    t = 0.5
    times = torch.full((2000,), t, dtype=torch.float64)
    noisy = sde.perturb(test.double(), times, torch.randn(test.shape, dtype=torch.float64,
                                                          generator=torch.Generator().manual_seed(3)))
    flat = noisy.reshape(2000, 16)
    exact = mixture.noisy_class_log_prob(sde)(torch.ones(2000, dtype=torch.long), flat, times).exp()
    learned = classifier.predict_proba(noisy.float(), t=t)[:, 1].double()
    # the posterior is graded (a hard 0/1 answer would be 0.12 off on average) ...
    hard_error = (exact - exact.round()).abs().mean()
    assert 0.1 < exact.mean() < 0.9 and hard_error > 0.1
    # ... and the learned one follows it to within 0.05 (0.042 at 400 steps here)
    assert (learned - exact).abs().mean() < min(0.05, 0.4 * hard_error)


def test_any_module_can_be_the_classifiers_net_and_anything_else_is_refused():
    labels = torch.arange(40) % 2
    x = torch.randn(40, 3)
    custom = NoisyClassifierNet(3, 2, hidden=8)
    assert sdescore.fit_classifier(x, labels, net=custom, steps=1, progress=False).net is custom
    with pytest.raises(TypeError, match="net must be a torch.nn.Module"):
        sdescore.fit_classifier(x, labels, net=lambda x, t, y: x, steps=1, progress=False)


def test_fit_classifier_dequantises_uint8_images_at_every_batch(monkeypatch):
    """Like fit: the training rows are k / 256 and each batch adds fresh u / 256, mapped."""
    import contextlib

    from sdescore.training import fits

    seen = {}
    original = fits.prepared

    @contextlib.contextmanager
    def spy(*args, **kwargs):
        with original(*args, **kwargs) as data:
            seen["data"] = data
            yield data

    monkeypatch.setattr(fits, "prepared", spy)
    images = np.random.default_rng(0).integers(0, 256, (100, 1, 4, 4)).astype(np.uint8)
    classifier = sdescore.fit_classifier(images, np.arange(100) % 2, steps=1, seed=0,
                                         progress=False)
    datamap, train, augment = classifier.datamap, seen["data"].train[0], seen["data"].augment
    levels = datamap.to_data(train) * 256
    torch.testing.assert_close(levels, levels.round(), rtol=0, atol=1e-3)
    first, second = (datamap.to_data(augment(train)) * 256 - levels for _ in range(2))
    assert 0 <= first.min() and first.max() < 1 and abs(first.mean().item() - 0.5) < 0.02
    assert abs(first.std().item() - 1 / math.sqrt(12)) < 0.02 and not torch.equal(first, second)
