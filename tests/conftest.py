"""Shared fixtures: analytic Gaussian mixtures whose every p_t is known in closed form."""
import pytest

import torch

import sdescore
from sdescore.datasets import GaussianMixture, random_mixture
from sdescore.metrics import mmd

SDE_PARAMS = {"ve": {"sigma_max": 10.0}, "vp": {}, "subvp": {}}


def make_sde(name):
    """The three SDEs; VE with sigma_max = 10, several times the data's spread, so that its
    prior N(0, 100 I) matches p_T."""
    return sdescore.get_sde(name, **SDE_PARAMS[name])


@pytest.fixture(params=list(SDE_PARAMS))
def sde(request):
    return make_sde(request.param)


# Kernel bandwidths near the sampler mixture's own spread, where a spread error shows.
SAMPLER_BANDWIDTHS = (0.2, 0.5, 1.0)


@pytest.fixture(scope="session")
def sampler_mixture():
    """The two-component 2-D mixture that every sampler is judged on."""
    return GaussianMixture([[1.0, 0.5], [-1.0, -0.5]],
                           [[[0.3, 0.1], [0.1, 0.2]], [[0.1, 0.0], [0.0, 0.25]]])


def mmd_floor(mixture, n: int, pairs: int = 8) -> float:
    """Mean + 3 sd of the MMD (SAMPLER_BANDWIDTHS) between two fresh draws of n points of
    ``mixture``, over ``pairs`` pairs: the statistic's noise floor."""
    values = torch.tensor([mmd(mixture.sample(n, seed=2 * i), mixture.sample(n, seed=2 * i + 1),
                               SAMPLER_BANDWIDTHS) for i in range(pairs)])
    return (values.mean() + 3 * values.std()).item()


@pytest.fixture
def mixture2d():
    return random_mixture(2)


@pytest.fixture
def double_model():
    """Build a float64 ScoreModel on the exact score of a mixture."""
    def build(mixture, sde):
        return sdescore.ScoreModel(sde, mixture.score_fn(sde), (mixture.dim,)).double()
    return build


# The documentation is checked by two background processes started as soon as the tests are
# collected, so that they run beside the other tests on the second core (at a lower priority):
# the site's build and the run of the pages' Python examples. tests/test_docs.py runs last and
# waits for them.
DOCS_JOBS = {}


def start_docs_jobs(out):
    """Start the docs build into ``out``/html (warnings as errors, the gallery's examples at
    small budgets) and the run of the pages' examples into ``out``/pages.json; return
    {"build": process, "pages": process}, their output in ``out``/NAME.log."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, SDESCORE_DOCS_QUICK="1", OMP_NUM_THREADS="1")
    commands = {"build": ["-m", "sphinx", "-W", "--keep-going", "-q", str(root / "docs"), str(out / "html")],
                "pages": [str(root / "docs" / "run_examples.py"), str(out / "pages.json")]}
    jobs = {}
    for name, arguments in commands.items():
        with open(out / f"{name}.log", "w") as log:
            jobs[name] = subprocess.Popen([sys.executable, *arguments], cwd=root, env=env,
                                          stdout=log, stderr=subprocess.STDOUT,
                                          preexec_fn=lambda: os.nice(10))
    return jobs


def pytest_collection_modifyitems(session, config, items):
    docs = [item for item in items if item.path.name == "test_docs.py"]
    items[:] = [item for item in items if item.path.name != "test_docs.py"] + docs
    if any("docs_jobs" in item.fixturenames for item in docs):
        import tempfile
        from pathlib import Path

        out = Path(tempfile.mkdtemp(prefix="sdescore-docs-"))
        DOCS_JOBS.update(out=out, **start_docs_jobs(out))


def pytest_unconfigure(config):
    for name in ("build", "pages"):
        process = DOCS_JOBS.get(name)
        if process is not None and process.poll() is None:
            process.kill()
