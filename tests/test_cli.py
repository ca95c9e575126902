"""The ``sdescore`` command (issue 18): its files match the Python API, and bad input ends
with status 2 and one line that names the problem."""
import copy
import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import sdescore
from sdescore.baselines import fit_flow
from sdescore.cli import main, read_table

ROOT = Path(__file__).resolve().parents[1]


def _run(*argv, cwd):
    """The command as a user runs it: a new Python process."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "sdescore", *map(str, argv)], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=300)


def _read_csv(path):
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))
    return rows[0], np.array(rows[1:], dtype=np.float64)


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    x = np.random.default_rng(0).normal(size=(300, 2)) * [1.0, 2.0]
    labels = np.arange(300) % 3
    with open(folder / "train.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["height", "class", "width"])
        writer.writerows([[a, k, b] for (a, b), k in zip(x, labels)])
    return folder, x


def test_fit_log_prob_and_sample_match_the_python_api(table, capsys):
    folder, x = table
    done = _run("fit", "train.csv", "-o", "model.pt", "--steps", 60, "--seed", 0,
                "--columns", "height", "width", "--quiet", cwd=folder)
    assert done.returncode == 0, done.stderr
    assert "300 rows x 2 columns" in done.stdout and "60 steps" in done.stdout
    model = sdescore.load(folder / "model.pt")
    assert model.feature_names == ["height", "width"]
    # the same fit from Python: same seed, same machine, same steps -> the same model
    again = sdescore.fit(x, steps=60, seed=0, progress=False)
    probe = torch.tensor([[0.3, -1.0], [1.5, 2.0]])
    torch.testing.assert_close(model.score(probe, 0.5), again.score(probe, 0.5))

    assert main(["log-prob", str(folder / "model.pt"), str(folder / "train.csv"),
                 "-o", str(folder / "lp.csv")]) == 0
    header, values = _read_csv(folder / "lp.csv")
    assert header == ["height", "width", "log_prob"]
    np.testing.assert_allclose(values[:, :2], x)
    np.testing.assert_allclose(values[:, 2], model.log_prob(x).double().numpy(), rtol=1e-6)
    assert main(["log-prob", str(folder / "model.pt"), str(folder / "train.csv"),
                 "-o", str(folder / "lp_errors.csv"), "--errors"]) == 0
    header, values = _read_csv(folder / "lp_errors.csv")
    assert header == ["height", "width", "log_prob", "solver_error"]  # exact trace: no stderr
    answer = model.log_prob(x, return_error=True)
    np.testing.assert_allclose(values[:, 2:], torch.stack(answer[:2], 1).double().numpy(),
                               rtol=1e-6)

    assert main(["sample", str(folder / "model.pt"), "-n", "7", "-o", str(folder / "s.csv"),
                 "--seed", "3"]) == 0
    header, samples = _read_csv(folder / "s.csv")
    assert header == ["height", "width"]
    np.testing.assert_allclose(samples, model.sample(7, seed=3).double().numpy(), rtol=1e-6)
    assert main(["sample", str(folder / "model.pt"), "-n", "7", "-o", str(folder / "d.npy"),
                 "--method", "dpm", "--steps", "12", "--seed", "3"]) == 0
    np.testing.assert_allclose(np.load(folder / "d.npy"),
                               model.sample(7, "dpm", steps=12, seed=3).double().numpy(),
                               rtol=1e-6)
    assert main(["sample", str(folder / "model.pt"), "-n", "50", "-o",
                 str(folder / "s.png")]) == 0
    assert (folder / "s.png").stat().st_size > 0

    capsys.readouterr()
    assert main(["info", str(folder / "model.pt")]) == 0
    info = capsys.readouterr().out
    assert "format sdescore-model-2" in info and "columns height, width" in info
    assert "residual parameterisation, envelope snr" in info  # a table's default
    scale = ", ".join(f"{v:.4g}" for v in model.datamap.scale.tolist())
    assert f"scale [{scale}]" in info and "60 steps" in info
    shrinkage = model.history[0]["shrinkage"]  # the reference's, as a percentage
    assert f"covariance shrunk {100 * shrinkage:.3g}% of the way to its diagonal" in info


def test_labels_column_trains_a_conditional_model(table):
    folder, _ = table
    assert main(["fit", str(folder / "train.csv"), "-o", str(folder / "cond.pt"), "--steps",
                 "5", "--labels", "class", "--quiet"]) == 0
    model = sdescore.load(folder / "cond.pt")
    assert model.classes == 3 and model.feature_names == ["height", "width"]


def test_log_prob_on_a_wide_table_takes_seed_errors_probes_and_trace(tmp_path):
    """Over 64 columns the trace is Hutchinson's: with --seed a row's value is the Python
    API's with that seed, the same on a second run and, up to float32 rounding, when the row
    is scored among fewer rows; without a seed two runs draw different probes. --errors adds
    the Python API's solver_error and (with --probes 3) trace_stderr; --trace exact the
    exact trace."""
    x = np.random.default_rng(3).normal(size=(12, 70))
    np.savetxt(tmp_path / "wide.csv", x, delimiter=",")
    np.savetxt(tmp_path / "few.csv", x[5:8], delimiter=",")
    sdescore.fit(x, steps=3, progress=False, validation=0).save(tmp_path / "wide.pt")
    model = sdescore.load(tmp_path / "wide.pt")

    def scored(data, *seed):
        out = tmp_path / "lp.csv"
        out.unlink(missing_ok=True)
        assert main(["log-prob", str(tmp_path / "wide.pt"), str(tmp_path / data), "-o",
                     str(out), *seed]) == 0
        return _read_csv(out)[1][:, -1]
    seeded = scored("wide.csv", "--seed", "4")
    np.testing.assert_allclose(seeded, model.log_prob(x, seed=4).double().numpy(), rtol=1e-6)
    np.testing.assert_array_equal(scored("wide.csv", "--seed", "4"), seeded)
    out = tmp_path / "errors.csv"
    assert main(["log-prob", str(tmp_path / "wide.pt"), str(tmp_path / "wide.csv"), "-o",
                 str(out), "--seed", "4", "--errors", "--probes", "3"]) == 0
    header, values = _read_csv(out)
    assert header[-3:] == ["log_prob", "solver_error", "trace_stderr"]
    answer = model.log_prob(x, seed=4, probes=3, return_error=True)
    np.testing.assert_allclose(values[:, -3:], torch.stack(answer, 1).double().numpy(),
                               rtol=1e-6)
    assert (values[:, -1] > 0).all()
    exact = tmp_path / "exact.csv"
    assert main(["log-prob", str(tmp_path / "wide.pt"), str(tmp_path / "few.csv"), "-o",
                 str(exact), "--trace", "exact"]) == 0  # 70 pullbacks a step, no probes
    np.testing.assert_allclose(_read_csv(exact)[1][:, -1],
                               model.log_prob(x[5:8], trace="exact").double().numpy(),
                               rtol=1e-6)
    # among fewer rows only float32's batched arithmetic moves a row (about 1e-3 nats)
    np.testing.assert_allclose(scored("few.csv", "--seed", "4"), seeded[5:8], rtol=0, atol=2e-3)
    assert np.abs(scored("wide.csv") - scored("wide.csv")).max() > 1e-6


def test_log_prob_checks_rows_on_a_float64_copy_at_a_tight_tolerance(tmp_path):
    """--float64 --atol 1e-7 scores on a float64 copy of the model at that tolerance (the
    check the likelihood guide shows): the values and solver_error are the Python API's on
    copy.deepcopy(model).double(), and the default's values are within the check's reach."""
    x = np.random.default_rng(4).normal(size=(40, 3))
    np.savetxt(tmp_path / "rows.csv", x, delimiter=",")
    sdescore.fit(x, steps=3, progress=False, validation=0).save(tmp_path / "m.pt")
    model = sdescore.load(tmp_path / "m.pt")
    assert main(["log-prob", str(tmp_path / "m.pt"), str(tmp_path / "rows.csv"), "-o",
                 str(tmp_path / "checked.csv"), "--float64", "--atol", "1e-7", "--rtol", "1e-7",
                 "--errors"]) == 0
    header, values = _read_csv(tmp_path / "checked.csv")
    assert header[-2:] == ["log_prob", "solver_error"]
    tight = copy.deepcopy(model).double().log_prob(torch.as_tensor(x), atol=1e-7, rtol=1e-7,
                                                   return_error=True)
    np.testing.assert_array_equal(values[:, -2], tight.log_prob.numpy())
    np.testing.assert_array_equal(values[:, -1], tight.solver_error.numpy())
    default = model.log_prob(x).double().numpy()
    assert np.abs(default - values[:, -2]).max() <= 2e-3


def test_log_prob_takes_the_dpm_presets_steps(tmp_path, capsys):
    """--method dpm --steps S is the Python API's log_prob(method="dpm", steps=S), values and
    solver_error; --steps without --method dpm is refused in one line."""
    x = np.random.default_rng(5).normal(size=(30, 2))
    np.savetxt(tmp_path / "rows.csv", x, delimiter=",")
    sdescore.fit(x, steps=3, progress=False, validation=0).save(tmp_path / "m.pt")
    model = sdescore.load(tmp_path / "m.pt")
    assert main(["log-prob", str(tmp_path / "m.pt"), str(tmp_path / "rows.csv"), "-o",
                 str(tmp_path / "dpm.csv"), "--method", "dpm", "--steps", "120",
                 "--errors"]) == 0
    values = _read_csv(tmp_path / "dpm.csv")[1]
    expected = model.log_prob(x, method="dpm", steps=120, return_error=True)
    np.testing.assert_array_equal(values[:, -2], expected.log_prob.double().numpy())
    np.testing.assert_array_equal(values[:, -1], expected.solver_error.double().numpy())
    capsys.readouterr()
    assert main(["log-prob", str(tmp_path / "m.pt"), str(tmp_path / "rows.csv"), "-o",
                 str(tmp_path / "ode.csv"), "--steps", "120"]) == 2
    assert "--steps goes with --method dpm" in capsys.readouterr().err
    assert not (tmp_path / "ode.csv").exists()


def test_a_flow_file_scores_and_samples_and_refuses_score_model_options(table, capsys):
    """A flow saved from Python (fit_flow) is a model file the command reads: log-prob and
    sample give its own log_prob and samples; the options only a score model takes are
    refused by name."""
    folder, x = table
    flow = fit_flow(x, "realnvp", steps=5, hidden=8, layers=1, seed=0, progress=False)
    flow.save(folder / "flow.pt")
    np.savetxt(folder / "two_columns.csv", x, delimiter=",")
    assert main(["log-prob", str(folder / "flow.pt"), str(folder / "two_columns.csv"),
                 "-o", str(folder / "flow_lp.csv")]) == 0
    np.testing.assert_allclose(_read_csv(folder / "flow_lp.csv")[1][:, -1],
                               flow.log_prob(x).double().numpy(), rtol=1e-6)
    assert main(["sample", str(folder / "flow.pt"), "-n", "4", "--seed", "2",
                 "-o", str(folder / "flow_s.csv")]) == 0
    np.testing.assert_allclose(_read_csv(folder / "flow_s.csv")[1],
                               flow.sample(4, seed=2).double().numpy(), rtol=1e-6)
    capsys.readouterr()
    assert main(["log-prob", str(folder / "flow.pt"), str(folder / "two_columns.csv"),
                 "-o", str(folder / "flow_dpm.csv"), "--method", "dpm", "--errors"]) == 2
    assert "is a realnvp flow: --method, --errors only apply to score models" in \
        capsys.readouterr().err
    assert main(["log-prob", str(folder / "flow.pt"), str(folder / "two_columns.csv"),
                 "-o", str(folder / "flow_f64.csv"), "--float64", "--atol", "1e-7"]) == 2
    assert "--atol, --float64 only apply to score models" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["fit", "missing.csv", "-o", "refused.pt", "--steps", "5"], "missing.csv: no such file"),
    (["fit", "train.csv", "-o", "refused.pt"], "give a budget"),
    (["fit", "train.csv", "-o", "refused.pt", "--steps", "5", "--sde", "foo"], "invalid choice: 'foo'"),
    (["fit", "train.csv", "-o", "refused.pt", "--steps", "5", "--columns", "depth"],
     "no column 'depth'; columns are height, class, width"),
    (["fit", "words.csv", "-o", "refused.pt", "--steps", "5"], "column 'b', row 2: 'many' is not a number"),
    (["fit", "train.csv", "-o", "refused.pt", "--steps", "0"], "steps must be > 0"),
    (["log-prob", "train.csv", "train.csv", "-o", "refused_lp.csv"], "is not a sdescore model file"),
    (["log-prob", "model.pt", "three.csv", "-o", "refused_lp.csv"], "rows have 3 columns; the model expects 2"),
    (["log-prob", "model.pt", "three.csv", "-o", "refused_lp.csv", "--seed", "-1"],
     "seed must be"),
    (["log-prob", "model.pt", "three.csv", "-o", "refused_lp.csv", "--errors",
      "--bits-per-dim"], "--errors goes with log_prob in nats, not with --bits-per-dim"),
    (["log-prob", "model.pt", "two.csv", "-o", "refused_lp.csv", "--probes", "2"],
     "probes"),
    (["log-prob", "model.pt", "two.csv", "-o", "refused_lp.csv", "--atol", "1e-7"],
     "atol=1e-07 is below what float32 resolves"),
    (["log-prob", "model.pt", "two.csv", "-o", "refused_lp.csv", "--method", "dpm", "--atol",
      "1e-6"], "unexpected keyword argument 'atol' for method 'dpm'"),
    (["sample", "model.pt", "-n", "5", "-o", "refused_s.csv", "--method", "magic"],
     "argument --method: invalid choice: 'magic'"),
    (["fit", "train.csv", "-o", "refused.pt", "--steps", "5", "--lr-schedule", "warm"],
     "argument --lr-schedule: invalid choice: 'warm'"),
    (["fit", "train.csv", "-o", "refused.pt", "--steps", "5", "--ema", "1.5"], "ema must be in [0, 1)"),
    (["sample", "model.pt", "-n", "5", "-o", "refused_s.csv", "--y", "1"],
     "y needs a class-conditional model"),
    (["sample", "model.pt", "-n", "5", "-o", "refused_s.csv", "--method", "langevin", "--steps", "9"],
     "unexpected keyword argument 'steps' for method 'langevin'"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
])
def test_bad_input_ends_with_one_line_naming_the_problem(table, argv, message, monkeypatch,
                                                         capsys):
    """In-process for speed; an unknown command also through a new process (no traceback)."""
    folder, _ = table
    (folder / "words.csv").write_text("a,b\n1,2\n3,many\n")
    (folder / "three.csv").write_text("1,2,3\n4,5,6\n")
    (folder / "two.csv").write_text("1,2\n4,5\n")
    if not (folder / "model.pt").exists():
        sdescore.fit(np.random.default_rng(1).normal(size=(50, 2)), steps=2,
                     progress=False).save(folder / "model.pt")
    if argv[0] == "frobnicate":
        done = _run(*argv, cwd=folder)
        assert done.returncode == 2 and "Traceback" not in done.stderr
        lines = done.stderr.strip().splitlines()
    else:
        monkeypatch.chdir(folder)
        assert main(argv) == 2
        lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], lines


def test_compare_writes_the_side_by_side_report(table, capsys):
    folder, _ = table
    assert main(["compare", str(folder / "train.csv"), "--columns", "height", "width",
                 "--models", "score", "--max-time", "1", "-o", str(folder / "report")]) == 0
    report = (folder / "report" / "compare.md").read_text()
    assert "| train | sdescore subvp |" in report
    assert (folder / "report" / "compare.png").stat().st_size > 0


def test_every_option_of_every_command_has_help_and_fit_lists_every_training_field():
    """A new user reads --help: every argument says what it is, and fit offers each
    TrainConfig field that can be written on a command line, with its default."""
    import argparse
    import dataclasses

    from sdescore.cli import _parser
    from sdescore.training import TrainConfig

    commands = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction))
    for name, sub in commands.choices.items():
        for action in sub._actions:
            assert action.help, f"{name} {action.dest} has no help"
    fit_options = {a.dest: a for a in commands.choices["fit"]._actions}
    for option in dataclasses.fields(TrainConfig):
        if option.metadata["text"] is not None:
            assert "default:" in fit_options[option.name].help, option.name


def test_version_and_training_options_reach_fit(table, capsys):
    folder, _ = table
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0 and capsys.readouterr().out.startswith("sdescore ")
    assert main(["fit", str(folder / "train.csv"), "-o", str(folder / "small.pt"), "--steps",
                 "7", "--log-every", "3", "--validation", "none", "--batch-size", "8",
                 "--lr", "1e-3", "--seed", "2", "--quiet"]) == 0
    model = sdescore.load(folder / "small.pt")
    assert [r["step"] for r in model.history] == [3, 6, 7]
    assert not any("val_loss" in r for r in model.history)  # --validation none
    x, _, _ = read_table(folder / "train.csv")
    same = sdescore.fit(x, steps=7, log_every=3, validation=None, batch_size=8, lr=1e-3,
                        seed=2, progress=False)
    torch.testing.assert_close(model.log_prob(x[:5]), same.log_prob(x[:5]))


def test_y_scores_and_samples_a_conditional_model_per_class(table):
    """--y K conditions log-prob and sample on class K: the CSV holds log p(x | y = K), the
    Python API's value, and samples of different classes differ."""
    folder, _ = table
    cond = folder / "cond_y.pt"
    assert main(["fit", str(folder / "train.csv"), "-o", str(cond), "--steps", "20",
                 "--labels", "class", "--quiet", "--seed", "0"]) == 0
    model = sdescore.load(cond)
    x, _, _ = read_table(folder / "train.csv", columns=["height", "width"])
    for label in (0, 2):
        out = folder / f"lp{label}.csv"
        assert main(["log-prob", str(cond), str(folder / "train.csv"), "-o", str(out),
                     "--y", str(label)]) == 0
        written = np.loadtxt(out, delimiter=",", skiprows=1)[:, -1]
        np.testing.assert_allclose(written, model.log_prob(x, y=label).double().numpy(),
                                   rtol=0, atol=1e-4)
    draws = []
    for label in (0, 2):
        out = folder / f"s{label}.npy"
        assert main(["sample", str(cond), "-n", "6", "-o", str(out), "--y", str(label),
                     "--seed", "1", "--method", "dpm"]) == 0
        draws.append(np.load(out))
    assert not np.allclose(draws[0], draws[1])
