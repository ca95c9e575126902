"""Files a user owns (issue 33, items 1-8, 16, 21): nothing but a regular file is replaced,
no input is overwritten, an existing output is kept unless --force, every output is checked
before any work and written atomically, a saved model loads back the same, and the
command's answers are one line."""
import datetime
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import sdescore
from sdescore import sde as sde_module
from sdescore.cli import main

ROOT = Path(__file__).resolve().parents[1]
X = np.random.default_rng(0).normal(size=(200, 2))


@pytest.fixture(scope="module")
def model():
    return sdescore.fit(X, steps=20, seed=0, progress=False, validation=0)


def _command(*argv, cwd, **options):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "sdescore", *map(str, argv)], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=300, **options)


def _one_error(capsys, message):
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], lines


def test_save_refuses_what_is_not_a_regular_file(model, tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match="exists and is not a regular file"):
        model.save(fifo)
    assert fifo.is_fifo()
    link = tmp_path / "link"
    link.symlink_to(fifo)
    with pytest.raises(ValueError, match="exists and is not a regular file"):
        model.save(link)
    with pytest.raises(ValueError, match="got an empty path"):
        model.save("")
    with pytest.raises(ValueError, match="not a regular file"):
        model.save(tmp_path)
    long_name = tmp_path / ("m" * 250)  # the temporary file's name must still fit
    model.save(long_name)
    assert sdescore.load(long_name).history == model.history
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["pipe", "link", "m" * 250])


class _Names:
    """What a pandas Index looks like to save: a sequence with ``tolist``."""

    def __init__(self, names):
        self.names = names

    def tolist(self):
        return list(self.names)

    def __iter__(self):
        return iter(self.names)


def test_save_writes_plain_types_and_they_load_back(model, tmp_path):
    saved = sdescore.fit(X, steps=4, seed=0, progress=False, validation=0)
    saved.feature_names = _Names([np.str_("a"), "b"])
    saved.history.append({"when": datetime.date(2026, 12, 2), "value": np.float32(1.5),
                          "count": np.int64(3), "name": np.str_("x"),
                          "stamp": np.datetime64("2026-12-02")})
    saved.save(tmp_path / "m.pt")
    loaded = sdescore.load(tmp_path / "m.pt")
    assert loaded.feature_names == ["a", "b"]
    assert loaded.history[-1] == {"when": "2026-12-02", "value": 1.5, "count": 3,
                                  "name": "x", "stamp": "2026-12-02"}
    saved.history.append({"object": object()})
    with pytest.raises(TypeError, match=r"history\[.*\]\['object'\] holds a"):
        saved.save(tmp_path / "m.pt")
    assert sdescore.load(tmp_path / "m.pt").history[-1]["count"] == 3  # the old file stands


class _ScaledVP(sde_module.VPSDE):
    """A registered SDE whose __init__ takes another argument than its params() name."""
    name = "scaled-vp-test"

    def __init__(self, factor=2.0):
        super().__init__(beta_max=10.0 * factor)


def test_a_model_that_would_not_load_back_is_not_saved(model, tmp_path):
    """The round trip is proved before the rename: an SDE whose params() do not rebuild it
    fails at save, and an older file at the path is left as it was."""
    sde_module.SDES[_ScaledVP.name] = _ScaledVP
    try:
        odd = sdescore.ScoreModel(_ScaledVP(), model.score_fn, (2,), datamap=model.datamap)
        model.save(tmp_path / "m.pt")
        before = (tmp_path / "m.pt").read_bytes()
        with pytest.raises(ValueError, match="would not load back"):
            odd.save(tmp_path / "m.pt")
        assert (tmp_path / "m.pt").read_bytes() == before
        assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]
    finally:
        del sde_module.SDES[_ScaledVP.name]


def test_loading_refuses_damaged_records_and_never_suggests_an_unsafe_load(model, tmp_path):
    (tmp_path / "empty.pt").write_bytes(b"")
    (tmp_path / "text.pt").write_text("not a model")
    import pickle
    (tmp_path / "pickle.pt").write_bytes(pickle.dumps({"a": 1}))
    for name, message in (("empty.pt", "is empty"), ("text.pt", "not a torch zip archive"),
                          ("pickle.pt", "not a torch zip archive")):
        with pytest.raises(ValueError, match=message) as caught:
            sdescore.load(tmp_path / name)
        assert "weights_only" not in str(caught.value)
    model.save(tmp_path / "m.pt")
    payload = torch.load(tmp_path / "m.pt", weights_only=True)
    for key, bad in (("history", "oops"), ("feature_names", [1, 2]), ("feature_names", ["a"])):
        torch.save({**payload, key: bad}, tmp_path / "bad.pt")
        with pytest.raises(ValueError, match="damaged"):
            sdescore.load(tmp_path / "bad.pt")


def test_outputs_that_are_inputs_or_exist_are_refused_before_any_work(model, tmp_path,
                                                                      monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    np.savetxt("d.csv", X, delimiter=",", header="a,b", comments="")
    model.save("m.pt")
    data, kept = Path("d.csv").read_bytes(), Path("m.pt").read_bytes()
    cases = [(["fit", "d.csv", "-o", "d.csv", "--steps", "2"], "is also an input"),
             (["log-prob", "m.pt", "d.csv", "-o", "m.pt"], "is also an input"),
             (["fit", "d.csv", "-o", "m.pt", "--steps", "2"], "exists: not overwritten"),
             (["sample", "m.pt", "-n", "5", "-o", "s"], "samples are written as"),
             (["sample", "m.pt", "-n", "5", "-o", "s.txt"], "samples are written as"),
             (["fit", "d.csv", "-o", "nowhere/m.pt", "--steps", "2"], "does not exist")]
    for argv, message in cases:
        assert main(argv) == 2
        _one_error(capsys, message)
    assert Path("d.csv").read_bytes() == data and Path("m.pt").read_bytes() == kept
    assert sorted(os.listdir()) == ["d.csv", "m.pt"]
    Path("report").write_text("a file")
    assert main(["compare", "d.csv", "-o", "report", "--max-time", "1"]) == 2
    _one_error(capsys, "exists and is not a folder")
    assert main(["fit", "d.csv", "-o", "m.pt", "--steps", "2", "--quiet", "--force"]) == 0
    assert Path("m.pt").read_bytes() != kept
    assert main(["sample", "m.pt", "-n", "5", "-o", "s.npy", "--seed", "0"]) == 0
    assert np.load("s.npy").shape == (5, 2) and not [p for p in os.listdir() if ".tmp" in p]
    assert main(["sample", "m.pt", "-n", "5", "-o", "S.PNG", "--seed", "0"]) == 0
    assert Path("S.PNG").read_bytes()[:4] == b"\x89PNG"  # the suffix in any case


def test_ctrl_c_exits_130_and_keeps_an_existing_model(model, tmp_path, monkeypatch, capsys):
    """An interrupted fit says so and exits 130; it writes a new file but does not replace an
    existing model unless --force. A Ctrl-C before the first step: one line, 130."""
    monkeypatch.chdir(tmp_path)
    np.savetxt("d.csv", X, delimiter=",")
    import sdescore.cli as cli

    def interrupted(*args, **options):
        fitted = sdescore.fit(X, steps=3, seed=0, progress=False, validation=0)
        fitted.history[-1]["interrupted"] = True
        return fitted
    monkeypatch.setattr(cli, "fit", interrupted)
    assert main(["fit", "d.csv", "-o", "new.pt", "--steps", "9"]) == 130
    assert "interrupted" in capsys.readouterr().out and Path("new.pt").is_file()
    model.save("old.pt")
    kept = Path("old.pt").read_bytes()
    assert main(["fit", "d.csv", "-o", "old.pt", "--steps", "9", "--force"]) == 130
    assert Path("old.pt").read_bytes() != kept
    model.save("older.pt")
    kept = Path("older.pt").read_bytes()
    monkeypatch.setattr(cli, "_check_outputs", lambda args: None)  # as if it appeared later
    assert main(["fit", "d.csv", "-o", "older.pt", "--steps", "9"]) == 130
    assert "was not replaced" in capsys.readouterr().out
    assert Path("older.pt").read_bytes() == kept

    def at_once(*args, **options):
        raise KeyboardInterrupt
    monkeypatch.setattr(cli, "fit", at_once)
    assert main(["fit", "d.csv", "-o", "never.pt", "--steps", "9"]) == 130
    _one_error(capsys, "interrupted before the first training step")
    assert not Path("never.pt").exists()


def test_csv_headers_are_read_as_the_user_says(tmp_path, monkeypatch, capsys):
    """A byte-order mark is not a header; a numeric header is one when --header says so;
    repeated names are refused; the summary says what was read."""
    monkeypatch.chdir(tmp_path)
    rows = "\n".join(",".join(f"{v:.6f}" for v in r) for r in X)
    Path("bom.csv").write_text(rows, encoding="utf-8-sig")
    Path("years.csv").write_text("2019,2020\n" + rows)
    Path("twice.csv").write_text("a,a\n" + rows)
    assert main(["fit", "bom.csv", "-o", "b.pt", "--steps", "2", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "200 rows x 2 columns (no header row)" in out
    assert main(["fit", "years.csv", "-o", "y.pt", "--steps", "2", "--quiet",
                 "--header"]) == 0
    assert "200 rows x 2 columns (a header row was read)" in capsys.readouterr().out
    assert sdescore.load("y.pt").feature_names == ["2019", "2020"]
    assert main(["fit", "years.csv", "-o", "y2.pt", "--steps", "2", "--quiet"]) == 0
    assert "201 rows" in capsys.readouterr().out  # guessed: numbers are data
    assert main(["fit", "twice.csv", "-o", "t.pt", "--steps", "2"]) == 2
    _one_error(capsys, "the header names 'a' more than once")


def test_arrays_keep_their_dtype_on_the_way_to_the_library(tmp_path, monkeypatch, capsys):
    """uint8 rows are dequantised like the library's (levels 256) and score back in bits/dim
    from their own file; bool and complex arrays are refused, not cast; unreadable arrays
    are one line."""
    monkeypatch.chdir(tmp_path)
    pixels = np.random.default_rng(1).integers(0, 256, size=(100, 4)).astype(np.uint8)
    np.save("u8.npy", pixels)
    np.save("bool.npy", pixels > 100)
    np.save("complex.npy", pixels.astype(complex) * 1j)
    Path("empty.npy").write_bytes(b"")
    Path("bad.npz").write_text("not a zip")
    assert main(["fit", "u8.npy", "-o", "u8.pt", "--steps", "2", "--quiet"]) == 0
    assert "256 levels" in capsys.readouterr().out
    assert main(["log-prob", "u8.pt", "u8.npy", "-o", "bits.csv", "--bits-per-dim"]) == 0
    bits = np.loadtxt("bits.csv", delimiter=",", skiprows=1)[:, -1]
    assert bits.shape == (100,) and np.isfinite(bits).all() and (bits > 0).all()
    assert main(["log-prob", "u8.pt", "u8.npy", "-o", "nats.csv"]) == 2
    _one_error(capsys, "use bits_per_dim")
    for name, message in (("bool.npy", "must hold real numbers"),
                          ("complex.npy", "must hold real numbers"),
                          ("empty.npy", "the file is empty"),
                          ("bad.npz", "not a NumPy .npz file")):
        assert main(["fit", name, "-o", "x.pt", "--steps", "2"]) == 2
        _one_error(capsys, message)


def test_python_refuses_integers_as_coordinates_of_an_integer_model():
    pixels = np.random.default_rng(2).integers(0, 256, size=(60, 3)).astype(np.uint8)
    model = sdescore.fit(pixels, steps=2, seed=0, progress=False)
    assert model.levels == 256
    with pytest.raises(TypeError, match="use bits_per_dim"):
        model.log_prob(pixels[:4])
    assert torch.isfinite(model.bits_per_dim(pixels[:4])).all()
    from sdescore.sklearn import ScoreDensity
    estimator = ScoreDensity(steps=2, seed=0).fit(pixels)
    assert estimator.model_.levels == 256
    expected = -estimator.model_.bits_per_dim(pixels[:4], seed=0).double().numpy() * 3 * np.log(2)
    np.testing.assert_allclose(estimator.score_samples(pixels[:4]), expected, rtol=1e-6)


def test_compare_report_is_strict_json_and_refuses_too_few_rows(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    np.savetxt("five.csv", X[:5], delimiter=",")
    assert main(["compare", "five.csv", "-o", "r", "--max-time", "1"]) == 2
    _one_error(capsys, "compare needs at least 20 rows")
    np.savetxt("d.csv", X, delimiter=",")
    assert main(["compare", "d.csv", "-o", "r", "--max-time", "0.5", "--models", "nsf"]) == 0
    capsys.readouterr()
    report = json.loads(Path("r/compare.json").read_text(),
                        parse_constant=lambda c: pytest.fail(f"{c} in compare.json"))
    assert report["rows"][0]["bpd"] is None  # not applicable: null, not NaN
    assert report["rows"][0]["test_rows"] == 20  # a tenth of the 200 rows
    assert main(["compare", "d.csv", "-o", "r", "--max-time", "0.5", "--models", "nsf"]) == 2
    _one_error(capsys, "exists: not overwritten")


def test_the_command_tells_warnings_in_one_line_and_survives_a_closed_pipe(model, tmp_path):
    model.save(tmp_path / "m.pt")
    np.savetxt(tmp_path / "d.csv", X[:60], delimiter=",")
    done = _command("fit", "d.csv", "-o", "w.pt", "--steps", "1", "--lr", "3", "--quiet",
                    cwd=tmp_path)
    warned = [line for line in done.stderr.splitlines() if line]
    assert done.returncode == 0 and warned and all(
        line.startswith("sdescore: warning: ") for line in warned), done.stderr
    reader = subprocess.Popen(["head", "-1"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    info = subprocess.run([sys.executable, "-m", "sdescore", "info", "m.pt"], cwd=tmp_path,
                          env=env, stdout=reader.stdin, stderr=subprocess.PIPE, text=True,
                          timeout=120)
    reader.stdin.close()
    assert reader.wait(timeout=60) == 0 and info.returncode == 0
    assert "Traceback" not in info.stderr and "BrokenPipe" not in info.stderr


def test_a_write_that_fails_late_leaves_the_old_file_and_no_temporary(model, tmp_path):
    """A file-size limit (RLIMIT_FSIZE) makes the write of samples fail: the command ends
    with one line, status 2, and the old samples file is intact; no temporary file stays."""
    import resource
    model.save(tmp_path / "m.pt")
    np.save(tmp_path / "keep.npy", np.arange(3.0))
    before = (tmp_path / "keep.npy").read_bytes()

    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
    done = _command("sample", "m.pt", "-n", "5000", "-o", "keep.npy", "--seed", "0", "--force",
                    cwd=tmp_path, preexec_fn=limit)
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.strip().splitlines()
             if not line.startswith("sample:")]  # the progress bar's lines
    assert len(lines) == 1 and "cannot write" in lines[0], lines
    assert (tmp_path / "keep.npy").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.npy", "m.pt"]


def test_a_folder_the_file_system_will_not_write_is_refused_before_training(tmp_path,
                                                                            monkeypatch,
                                                                            capsys):
    """Permissions can say yes where writing fails (/proc as root): the check makes a real
    temporary file, so fit refuses before training."""
    import sdescore._files as files
    import sdescore.cli as cli
    monkeypatch.chdir(tmp_path)
    np.savetxt("d.csv", X, delimiter=",")

    def refuse(*args, **options):
        raise OSError(13, "Permission denied")
    trained = []
    monkeypatch.setattr(files.tempfile, "mkstemp", refuse)
    monkeypatch.setattr(cli, "fit", lambda *a, **k: trained.append(1))
    assert main(["fit", "d.csv", "-o", "m.pt", "--steps", "2"]) == 2
    _one_error(capsys, "cannot be written (Permission denied)")
    assert not trained
