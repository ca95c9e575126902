"""Benchmark data sets and the side-by-side comparison."""
import importlib
import math
from pathlib import Path

import numpy as np
import pytest
import torch

import sdescore
from sdescore.comparison import compare, write_report
from sdescore.datasets import Split, load_benchmark, random_mixture

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"no data folder at {DATA}")


@needs_data
@pytest.mark.parametrize("name, sizes, dim", [
    ("redwine", (1296, 144, 159), 11), ("whitewine", (3969, 440, 489), 11),
    ("parkinsons", (4760, 528, 587), 15),
])
def test_ssm_paper_sets_have_the_papers_split_sizes_and_are_whitened(name, sizes, dim):
    split = load_benchmark(name, DATA)
    assert (len(split.train), len(split.validation), len(split.test)) == sizes
    whole = np.concatenate([split.train, split.validation, split.test])
    assert whole.shape[1] == dim
    np.testing.assert_allclose(np.cov(whole, rowvar=False), np.eye(dim), atol=1e-3)
    np.testing.assert_allclose(whole.mean(0), 0, atol=1e-4)


@needs_data
@pytest.mark.parametrize("name, dim", [("power", 5), ("protein", 9 + 1), ("magic", 10)])
def test_uci_tables_load_with_their_widths(name, dim):
    split = load_benchmark(name, DATA)
    assert split.train.shape[1] == dim and np.isfinite(split.train).all()


def test_missing_data_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="redwine needs the file .*absent/wine/"
                                                "winequality-red.csv .*Tables and anomaly scores"):
        load_benchmark("redwine", tmp_path / "absent")
    with pytest.raises(ValueError, match="Unknown data set 'wine'; choose one of: mixture2"):
        load_benchmark("wine")


def test_real_tables_are_read_only_from_a_folder_the_user_names(tmp_path, monkeypatch):
    """No default folder: data_dir, else $SDESCORE_DATA, else an error saying both."""
    monkeypatch.delenv("SDESCORE_DATA", raising=False)
    for load in (lambda: load_benchmark("power"), lambda: sdescore.datasets.load_mnist()):
        with pytest.raises(ValueError, match="pass data_dir=FOLDER or set the environment "
                                             "variable SDESCORE_DATA=FOLDER"):
            load()
    monkeypatch.setenv("SDESCORE_DATA", str(tmp_path / "mine"))
    with pytest.raises(FileNotFoundError, match="mine/uci/power-plant.txt"):
        load_benchmark("power")
    with pytest.raises(FileNotFoundError, match="is missing from .*mine/mnist"):
        sdescore.datasets.load_mnist()


def test_digits_are_dequantised_to_the_unit_cube_with_17_levels():
    split = load_benchmark("digits")
    assert split.levels == 17 and split.train.shape[1] == 64
    assert split.train.min() >= 0 and split.train.max() < 1
    assert len(np.unique(np.floor(split.train * 17))) == 17


def test_compare_reports_the_true_entropy_and_a_nonnegative_kl_gap(tmp_path):
    """With the data's law known, the entropy column estimates the mixture's differential
    entropy (checked against 200,000 fresh draws, within 4 standard errors of the 200 test
    rows' estimate), and the KL gap, a KL divergence, is not below 0 beyond noise."""
    mixture = random_mixture(2, seed=0)
    data = mixture.sample(3000, seed=0).float().numpy()
    split = Split("tiny", data[:2500], data[2500:2700], data[2700:], oracle=mixture)
    rows = compare(split, ["score", "realnvp"], max_time=1.0, test_points=200)
    assert [r["model"] for r in rows] == ["sdescore subvp", "realnvp"]
    entropy = -mixture.log_prob(mixture.sample(200_000, seed=5)).mean().item()
    spread = mixture.log_prob(torch.as_tensor(split.test[:200]).double()).std().item()
    for row in rows:
        assert abs(row["entropy"] - entropy) < 4 * spread / 200**0.5
        assert row["kl_gap"] > -0.05
        assert row["fit_s"] >= 1.0 and row["log_prob_per_s"] > 0
    assert math.isfinite(rows[0]["nll_bound"]) and math.isnan(rows[1]["nll_bound"])
    table = write_report(rows, tmp_path / "report", "test")
    assert "sdescore subvp" in table and (tmp_path / "report.png").stat().st_size > 0
    assert (tmp_path / "report.json").exists() and (tmp_path / "report.md").exists()


def test_compare_runs_glow_on_image_rows_and_refuses_it_on_vectors():
    data = np.random.default_rng(0).normal(size=(400, 16)).astype(np.float32)
    vectors = Split("vectors", data[:300], data[300:350], data[350:])
    with pytest.raises(ValueError, match="model 'glow' needs image data; vectors has no image_shape"):
        compare(vectors, ["glow"], max_time=0.1)
    images = Split("images", data[:300], data[300:350], data[350:], image_shape=(1, 4, 4))
    [row] = compare(images, ["glow"], max_time=0.5, test_points=50)
    assert row["model"] == "glow" and math.isfinite(row["test_nll"])


def test_compare_gives_the_score_model_image_rows_as_images(monkeypatch):
    """On a split with an image_shape the score model is fitted to (n, c, h, w) images (fit's
    U-Net), and its exact test NLL by the DPM solver matches that of N(0, I), the data's law;
    the flows keep vectors. The score model trains for 100 steps (not the budget, which
    would tie the check to the machine's speed)."""
    compare_module = importlib.import_module("sdescore.comparison")
    fit, fit_flow, shapes = compare_module.fit, compare_module.fit_flow, []

    def fit_100_steps(data, *args, **kwargs):
        shapes.append(tuple(data.shape))
        return fit(data, *args, **{**kwargs, "max_time": None, "steps": 100})

    def fit_flow_and_record(data, *args, **kwargs):
        shapes.append(tuple(data.shape))
        return fit_flow(data, *args, **kwargs)

    monkeypatch.setattr(compare_module, "fit", fit_100_steps)
    monkeypatch.setattr(compare_module, "fit_flow", fit_flow_and_record)
    data = np.random.default_rng(0).normal(size=(400, 16)).astype(np.float32)
    images = Split("images", data[:300], data[300:350], data[350:], image_shape=(1, 4, 4))
    with pytest.raises(ValueError, match="method 'rk45'"):
        compare(images, ["score"], max_time=0.1, method="rk45")
    score, flow = compare(images, ["score", "realnvp"], max_time=1.0, method="dpm")
    assert shapes == [(300, 1, 4, 4), (300, 16)]
    truth = -torch.distributions.Normal(0.0, 1.0).log_prob(torch.as_tensor(data[350:])).sum(1)
    assert abs(score["test_nll"] - truth.mean().item()) < 0.5
    assert math.isfinite(score["nll_bound"]) and math.isfinite(flow["test_nll"])
