"""torch.distributed (issue 19), on the CPU with gloo and two processes started here:
identical weights on every rank, the averaged update of two ranks at batch b equals one
process at 2b on the same rows, sharded evaluation in input order, and max_time stopping
every rank together with the same learning rates."""
import faulthandler
import math
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import sdescore
from sdescore import distributed, training

pytestmark = pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(),
                                reason="torch.distributed with gloo is not available")


def _launch(worker, tmp_path, *args, processes=2, timeout=240):
    """Run worker(rank, processes, folder, *args) in ``processes`` new processes joined by
    a gloo group; fail (not hang) after ``timeout`` seconds."""
    context = mp.spawn(_entry, args=(processes, str(tmp_path), worker, args), nprocs=processes,
                       join=False)
    deadline = time.monotonic() + timeout
    try:
        while not context.join(timeout=5):
            if time.monotonic() > deadline:
                for process in context.processes:
                    process.terminate()
                pytest.fail(f"{worker.__name__} did not finish in {timeout} s (a rank waits "
                            f"for another); {_stages(tmp_path, processes)}")
    except mp.ProcessExitedException as err:
        pytest.fail(f"{worker.__name__}: {err}; {_stages(tmp_path, processes)}")
    return [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(processes)]


def _stages(folder, processes) -> str:
    """How far each rank got (``_entry`` marks its stages), for a failure's message."""
    return ", ".join(f"rank {r} reached {_reached(folder, r)}" for r in range(processes))


def _reached(folder, rank) -> str:
    marks = sorted(Path(folder).glob(f"rank{rank}.*.stage"))
    return marks[-1].name.split(".")[1][1:] if marks else "nothing"


def _entry(rank, processes, folder, worker, args):
    faulthandler.enable()  # a rank that aborts prints every thread's stack
    torch.set_num_threads(1)

    def mark(number, stage):
        Path(folder, f"rank{rank}.{number}{stage}.stage").touch()
    dist.init_process_group("gloo", init_method=f"file://{folder}/rendezvous", rank=rank,
                            world_size=processes)
    mark(1, "init")
    try:
        torch.save(worker(rank, *args), f"{folder}/rank{rank}.pt")
        mark(2, "saved")
    finally:
        dist.destroy_process_group()
        mark(3, "destroyed")
    # The result is on disk and the group gone: skip the interpreter's teardown, where a C++
    # abort would fail a test whose work is done (a rank once ended in SIGABRT, stage unknown).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _data():
    return torch.randn(400, 2, generator=torch.Generator().manual_seed(0)) * torch.tensor([1.0, 2.0])


def _fit_worker(rank):
    seen = []
    loss = sdescore.losses.DenoisingScoreMatching(sdescore.get_sde("subvp"))

    def spied(score_fn, x0, generator=None):
        seen.append(x0.detach().clone())
        return loss(score_fn, x0, generator=generator)

    model = sdescore.fit(_data(), loss=spied, steps=30, log_every=10, seed=rank + 5,
                         progress=False)
    flow = sdescore.baselines.fit_flow(_data(), "realnvp", steps=10, hidden=8, layers=1,
                                       log_every=5, progress=False)
    return {"weights": model.state_dict(), "history": model.history, "first_batch": seen[0],
            "flow": flow.state_dict()}


def test_every_rank_ends_with_the_same_weights_from_its_own_batches(tmp_path):
    ranks = _launch(_fit_worker, tmp_path)
    for name in ("weights", "flow"):
        first, second = ranks[0][name], ranks[1][name]
        assert all(torch.equal(first[k], second[k]) for k in first), name
    assert ranks[0]["history"] == ranks[1]["history"]
    # the ranks agreed on rank 0's seed, yet each drew its own batches
    assert not torch.equal(ranks[0]["first_batch"], ranks[1]["first_batch"])


def _squared_error(module, x0, generator=None):
    return (module(x0)[:, 0] - x0.sum(1)) ** 2


def _step_worker(rank, rows):
    module = torch.nn.Linear(2, 1)
    torch.manual_seed(0)
    module.reset_parameters()
    mine = rows[rank].expand(4, 2)  # every row of this rank is the same, so any batch is
    training.train_loop(module, torch.optim.SGD(module.parameters(), lr=0.1), _squared_error, (mine,), training.TrainConfig(steps=1, log_every=1, lr_schedule="constant", grad_clip=None, progress=False), batch_size=4)
    return {"weights": module.state_dict()}


def test_two_ranks_at_batch_b_update_like_one_process_at_2b(tmp_path):
    rows = torch.tensor([[1.0, -2.0], [0.5, 3.0]])
    ranks = _launch(_step_worker, tmp_path, rows)
    module = torch.nn.Linear(2, 1)
    torch.manual_seed(0)
    module.reset_parameters()
    both = torch.cat([rows[0].expand(4, 2), rows[1].expand(4, 2)])  # 2b rows, the same ones
    optimizer = torch.optim.SGD(module.parameters(), lr=0.1)
    _squared_error(module, both).mean().backward()
    optimizer.step()
    for rank in ranks:
        for key, value in module.state_dict().items():
            torch.testing.assert_close(rank["weights"][key], value, rtol=1e-6, atol=1e-7)


def _exact_model():
    mixture = sdescore.datasets.random_mixture(2, seed=2)
    sde = sdescore.get_sde("subvp")
    return mixture, sdescore.ScoreModel(sde, mixture.score_fn(sde), (2,))


def _evaluate_worker(rank):
    mixture, model = _exact_model()
    x = mixture.sample(7, seed=0).float()
    bad = x.clone()
    bad[-1, 0] = float("nan")  # in rank 1's share only
    try:
        distributed.log_prob(model, bad)
        refused = ""
    except ValueError as err:
        refused = str(err)
    return {"log_prob": distributed.log_prob(model, x, solver="rk4", steps=30),
            "adaptive": distributed.log_prob(model, x),
            "hutchinson": distributed.log_prob(model, x, trace="hutchinson", seed=5),
            # plain tuples: the results come back through a weights-only torch.load
            "errors": tuple(distributed.log_prob(model, x, return_error=True)),
            "hutchinson_errors": tuple(distributed.log_prob(model, x, trace="hutchinson",
                                                            probes=2, seed=5,
                                                            return_error=True)),
            "bound": distributed.nll_bound(model, x, draws=4, seed=1),
            # the same 4 rows in each rank's share, seed None: the ranks agree on one seed
            "fresh_hutchinson": distributed.log_prob(model, x[:4].repeat(2, 1),
                                                     trace="hutchinson"),
            "fresh_bound": distributed.nll_bound(model, x[:4].repeat(2, 1), draws=4),
            "samples": distributed.sample(model, 5, seed=3, method="ode"),
            "refused": refused}


def test_sharded_evaluation_matches_one_process_in_input_order(tmp_path):
    ranks = _launch(_evaluate_worker, tmp_path)
    mixture, model = _exact_model()
    x = mixture.sample(7, seed=0).float()
    alone = model.log_prob(x, solver="rk4", steps=30)
    adaptive = model.log_prob(x)  # per-row steps: a shard's rows solve as in one process
    hutchinson = model.log_prob(x, trace="hutchinson", seed=5)  # and per-row probes
    for rank in ranks:
        torch.testing.assert_close(rank["log_prob"], alone, rtol=0, atol=1e-5)
        torch.testing.assert_close(rank["adaptive"], adaptive, rtol=0, atol=1e-4)
        torch.testing.assert_close(rank["hutchinson"], hutchinson, rtol=0, atol=1e-4)
        errors = model.log_prob(x, return_error=True)
        assert rank["errors"][2] is None  # exact trace: no standard error
        torch.testing.assert_close(rank["errors"][:2], tuple(errors[:2]), rtol=0, atol=1e-4)
        torch.testing.assert_close(rank["hutchinson_errors"],
                                   tuple(model.log_prob(x, trace="hutchinson", probes=2,
                                                        seed=5, return_error=True)),
                                   rtol=0, atol=1e-4)
        torch.testing.assert_close(rank["bound"], model.nll_bound(x, draws=4, seed=1),
                                   rtol=0, atol=1e-5)  # per-row draws: the one-process bound
        for fresh in (rank["fresh_hutchinson"], rank["fresh_bound"]):
            torch.testing.assert_close(fresh[:4], fresh[4:], rtol=0, atol=1e-5)
        assert rank["samples"].shape == (5, 2)
        # a NaN in one rank's share is refused on every rank (no rank left waiting)
        assert "x contains NaN or inf" in rank["refused"]
    assert torch.equal(ranks[0]["samples"], ranks[1]["samples"])
    assert torch.equal(ranks[0]["bound"], ranks[1]["bound"])
    # rank 0 drew the first 2 samples with seed 3, rank 1 the last 3 with seed 4
    torch.testing.assert_close(ranks[0]["samples"][:2], model.sample(2, seed=3))
    torch.testing.assert_close(ranks[0]["samples"][2:], model.sample(3, seed=4))
    # without a process group the same calls are the one-process ones
    torch.testing.assert_close(distributed.log_prob(model, x, solver="rk4", steps=30), alone)


def _slow_rank_worker(rank):
    loss = sdescore.losses.DenoisingScoreMatching(sdescore.get_sde("subvp"))
    last_seen = {}

    def slow(score_fn, x0, generator=None):
        if rank == 1:
            time.sleep(0.01)  # rank 1 runs behind: rank 0's clock runs out first
        last_seen["weights"] = torch.cat([p.detach().flatten() for p in score_fn.parameters()])
        return loss(score_fn, x0, generator=generator)

    start = time.monotonic()
    model = sdescore.fit(_data(), loss=slow, max_time=1.5, validation=0, progress=False,
                         seed=0)
    return {"steps": model.history[-1]["step"], "seconds": time.monotonic() - start,
            "last_trained_weights": last_seen["weights"]}


def test_max_time_stops_every_rank_at_the_same_step(tmp_path):
    """Each rank reads its own clock; they agree on the step to stop at and, for the cosine
    learning rate, on the budget spent, so the weights they train stay identical (compared
    at the last step, before rank 0's are handed to every rank)."""
    ranks = _launch(_slow_rank_worker, tmp_path, timeout=120)
    assert ranks[0]["steps"] == ranks[1]["steps"] > 0
    assert all(rank["seconds"] < 30 for rank in ranks)
    assert torch.equal(ranks[0]["last_trained_weights"], ranks[1]["last_trained_weights"])


def test_the_command_runs_under_torchrun_unchanged(tmp_path):
    """`torchrun --nproc-per-node 2 -m sdescore fit ...`: two ranks train, rank 0 alone
    prints the summary and writes the model."""
    np.savetxt(tmp_path / "t.csv", np.random.default_rng(0).normal(size=(200, 2)),
               delimiter=",", header="a,b", comments="")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
           "OMP_NUM_THREADS": "1", "PYTHONFAULTHANDLER": "1"}  # an aborting rank shows its stack
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
         "-m", "sdescore", "fit", "t.csv", "-o", "m.pt", "--steps", "20", "--seed", "0",
         "--quiet"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-8000:]
    assert done.stdout.count("training:") == 1 and "20 steps" in done.stdout
    assert "no process group" not in done.stderr
    assert sdescore.load(tmp_path / "m.pt").feature_names == ["a", "b"]


def test_a_launched_process_without_a_process_group_is_told_it_trains_alone(monkeypatch):
    """A script under torchrun that fits before init_process_group trains each process on
    its own: it is told so, and how to train data-parallel; a process no launcher started
    (WORLD_SIZE unset, or 1) is not."""
    for size, told in (("3", True), ("1", False), (None, False)):
        if size is None:
            monkeypatch.delenv("WORLD_SIZE", raising=False)
        else:
            monkeypatch.setenv("WORLD_SIZE", size)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            sdescore.fit(_data(), steps=3, validation=0, progress=False, seed=0)
        alone = [w for w in caught if "no process group is initialised" in str(w.message)]
        assert bool(alone) == told, size
        if told:
            assert "3 processes were launched" in str(alone[0].message)
            assert "init_process_group()" in str(alone[0].message)


def _disagreeing_worker(rank):
    """Each call below gets different inputs on the two ranks, or fails on one: every rank
    must raise the same kind of error at once, never hang or return garbage."""
    torch.manual_seed(0)
    x = _data()
    model = sdescore.fit(x, steps=5, seed=0, progress=False)
    told = {}
    calls = {"rows": lambda: distributed.log_prob(model, x[:9 + rank]),
             "shifted": lambda: distributed.log_prob(model, x[:9] + rank),
             "samples": lambda: distributed.sample(model, 5 + rank, seed=0),
             "fit": lambda: sdescore.fit(x, steps=30 + 20 * rank, progress=False),
             "nan": lambda: distributed.log_prob(
                 model, x[:9] if rank == 0 else torch.full((9, 2), math.nan))}
    for name, call in calls.items():
        try:
            call()
            told[name] = "returned"
        except (ValueError, RuntimeError) as err:
            told[name] = f"{type(err).__name__}: {err}"
    return told


def test_ranks_that_disagree_or_fail_all_raise_instead_of_hanging(tmp_path):
    """Mismatched shapes, values, sample counts and fit options are refused on every rank
    before any collective; a rank whose input is bad makes the other raise too."""
    told = _launch(_disagreeing_worker, tmp_path, timeout=180)
    for name in ("rows", "shifted", "samples", "fit"):
        for rank in (0, 1):
            assert told[rank][name].startswith("ValueError: the ranks disagree"), (name, told)
    assert "contains NaN or inf" in told[1]["nan"]
    assert told[0]["nan"].startswith("RuntimeError: rank 1 failed, so every rank stops")
