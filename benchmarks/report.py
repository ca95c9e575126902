"""Write BENCHMARKS.md (and the docs' benchmark figures) from the JSON in benchmarks/results.

    python -m benchmarks.report [--check]

Every table of BENCHMARKS.md is rebuilt here from the result files the benchmark scripts
write (``common.write``: the command, the date, the machine and the rows). The docs'
benchmarks page includes BENCHMARKS.md, and ``docs/_static/samplers.png`` is drawn from
``samplers.json``. With ``--check`` nothing is written: the command fails when BENCHMARKS.md is not what the result
files give (the test suite runs it).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import textwrap
from pathlib import Path

from .common import RESULTS, number, table

ROOT = Path(__file__).resolve().parent.parent
MARKDOWN = ROOT / "BENCHMARKS.md"
FIGURE = ROOT / "docs" / "_static" / "samplers.png"
MACHINE = "the project's CI-sized machine (x86_64, 2 cores, no GPU)"


def load(name: str) -> dict:
    """One result file: {"command", "date", "machine", "rows"}."""
    return json.loads((RESULTS / f"{name}.json").read_text())


COMMAND_WIDTH = 76


def shell_lines(command: str) -> str:
    """``command`` as an indented code block of lines at most COMMAND_WIDTH long where it
    can be, broken before an option (``--name`` and its values stay together) with a
    backslash, so the docs page shows it without a scroll bar and it still pastes."""
    groups = []
    for word in command.split(" "):
        if word.startswith("--") or not groups:
            groups.append(word)
        else:
            groups[-1] += f" {word}"
    lines = [groups[0]]
    for group in groups[1:]:
        if len(lines[-1]) + 1 + len(group) > COMMAND_WIDTH:
            lines[-1] += " \\"
            lines.append(f"    {group}")
        else:
            lines[-1] += f" {group}"
    return "\n".join(f"    {line}" for line in lines)


def provenance(*payloads: dict) -> str:
    """The commands, dates and machine of one table."""
    commands = "\n".join(shell_lines(p["command"]) for p in payloads)
    dates = sorted({p["date"] for p in payloads})
    machines = sorted({p["machine"] for p in payloads})
    return (f"Regenerate with:\n\n{commands}\n\nRun {', '.join(dates)} on {MACHINE}; "
            f"{'; '.join(machines)}.")


# --- likelihood ---------------------------------------------------------------------------

RECIPE_NAMES = {"reference (scipy RK45, 1 probe)": "reference (RK45, 1 probe)",
                "ode dopri5 (default)": "**default** (dopri5 per row)",
                "ode dopri5 1e-4": "dopri5, 1e-4", "ode dopri5, hutchinson x1": "dopri5, Hutchinson x1",
                "ode bosh3 (torchdiffeq, shared steps)": "bosh3 (shared steps)",
                "ode rk4 10 steps": "rk4, 10 steps", "dpm 60 (preset)": "dpm, 60 (preset)",
                "dpm 120": "dpm, 120"}


# The recipes whose per-row error estimate is the solver's alone (Hutchinson's noise is not in it).
ESTIMATED = ("ode dopri5 (default)", "ode dopri5 1e-4")
# The dpm preset's solver_error was NaN before this date (its "covered" then counted nothing).
DPM_ESTIMATED = ("dpm 60 (preset)", "dpm 120")
DPM_ESTIMATE_SINCE = "2026-12-07"


def _share(value: float) -> str:
    """A share as a percentage; "-" where none was measured (NaN)."""
    return "-" if math.isnan(value) else f"{100 * value:.1f}%"


def likelihood_rows(payload: dict) -> str:
    rows = []
    estimated_recipes = ESTIMATED + (DPM_ESTIMATED if payload["date"] >= DPM_ESTIMATE_SINCE
                                     else ())
    for r in payload["rows"]:
        estimated = (r["recipe"] in estimated_recipes and r["covered"] is not None
                     and not math.isnan(r["covered"]))
        covered = _share(r["covered"]) if estimated else "-"
        rows.append([r["dim"], r["sde"], RECIPE_NAMES.get(r["recipe"], r["recipe"]),
                     f"{r['points_per_s']:.0f}", f"{r['speedup']:.2f}",
                     *(number(r[key], 2) for key in ("mean_err", "p99_err", "worst_err")),
                     number(r.get("far_worst_err", math.nan), 2), number(r["batch_effect"], 2),
                     covered])
    return table(["D", "SDE", "recipe", "points/s", "x ref.", "mean err", "p99 err",
                  "worst err", "far out", "batch effect", "covered"], rows)


def trained_rows(*payloads: dict) -> str:
    rows = [[r["data"], r["model"], r["recipe"], number(r["rows_per_s"], 3), number(r["vs_nsf"], 2),
             f"{r['mean_nll']:.2f}", r["checked_rows"] or "-", number(r["mean_err"], 2),
             number(r["worst_err"], 2), _share(r["covered"])]
            for payload in payloads for r in payload["rows"]]
    return table(["data", "model", "recipe", "rows/s", "x NSF", "mean test NLL", "rows checked",
                  "mean err", "worst err", "covered"], rows)


def far_rows(payload: dict) -> str:
    rows = [[number(r["scale"], 2), r["solver"], r["score_calls"], f"{r['seconds']:.1f}",
             number(r["log_p_min"], 2), number(r["worst_rel_err"], 2),
             number(r["reported_rel_err"], 2)] for r in payload["rows"]]
    return table(["scale", "solver", "network calls", "seconds", "lowest log p",
                  "worst rel. err", "reported rel. err"], rows)


def _exponent(value: float) -> str:
    """value as 1.2e-4 (no leading zero in the exponent)."""
    return f"{value:.1e}".replace("e-0", "e-").replace("e+0", "e+")


def _per_dimension(spans: list[str]) -> str:
    """'a (2 D), b (6 D) and c (16 D)'."""
    return spans[0] if len(spans) == 1 else ", ".join(spans[:-1]) + " and " + spans[-1]


def equal_trace_readings(payload: dict) -> dict:
    """From the equal-trace run, as text: per dimension, the exact-trace reference's points/s
    over the reference recipe's ("exact"), the default's over the exact-trace reference's
    ("default"), the exact-trace reference's worst rows ("worst") and how many times the
    default's are closer ("closer"); over every row, the default's worst ("default_worst") and
    the exact-trace reference's largest batch effect ("effect")."""
    exact, default = "reference integrator, exact trace", "ode dopri5 (default)"
    rows = {(r["dim"], r["sde"], r["recipe"]): r for r in payload["rows"]}
    pairs = {}  # dim -> [(exact-trace reference's row, default's row)], one pair per SDE
    for (dim, sde, recipe), row in rows.items():
        if recipe == exact:
            pairs.setdefault(dim, []).append((row, rows[dim, sde, default]))

    def spans(value, text):
        """text(lowest, highest) of value(exact-trace row, default row) over each
        dimension's SDEs, one span per dimension."""
        return _per_dimension([f"{text(min(v), max(v))} ({dim} D)" for dim, v in
                               ((dim, [value(e, d) for e, d in both]) for dim, both in
                                sorted(pairs.items()))])

    def ratio(low, high):
        return f"{low:.2f}-{high:.2f}x"

    def interval(low, high):
        return f"{_exponent(low)} to {_exponent(high)}"

    def times(low, high):
        return f"{low:.{1 if low < 10 else 0}f}-{high:.{1 if high < 10 else 0}f} times"
    everything = [row for both in pairs.values() for row in both]
    return {"exact": spans(lambda e, d: e["speedup"], ratio),
            "default": spans(lambda e, d: d["points_per_s"] / e["points_per_s"], ratio),
            "worst": spans(lambda e, d: e["worst_err"], interval),
            "closer": spans(lambda e, d: e["worst_err"] / d["worst_err"], times),
            "default_worst": _exponent(max(d["worst_err"] for _, d in everything)),
            "effect": _exponent(max(e["batch_effect"] for e, _ in everything))}


def trace_cost_rows(payload: dict) -> str:
    rows = [[r["model"], *(number(r[key], 3) for key in
                           ("drift_ms", "pullback_ms", "trace_ms", "jvp_trace_ms")),
             f"{r['trace_per_evaluation']:.1f}",
             *(number(r.get(key), 3) for key in ("reference_evaluations", "calls", "steps",
                                                  "traced_per_row", "break_even_traced"))]
            for r in payload["rows"]]
    return table(["model", "drift ms", "drift + 1 pullback ms", "exact trace ms",
                  "forward-mode trace ms", "trace / ref. evaluation", "ref. evaluations",
                  "default calls", "default steps per row", "default traced per row",
                  "break-even traced per row"], rows)


def trace_cost_variance_rows(payload: dict) -> str:
    rows = [[r["t"], number(r["whole_score"], 3), number(r["residual_alone"], 3),
             f"{r['ratio']:.2f}"] for r in payload["rows"]]
    return table(["t", "whole score", "residual alone", "ratio"], rows)


def trace_cost_reading(payload: dict) -> str:
    """The trace-cost table's reading, its figures taken from the rows."""
    mixtures = [r for r in payload["rows"] if "break_even_traced" in r]
    trained = [r for r in payload["rows"] if "break_even_traced" not in r]

    def listed(key):
        return _per_dimension([f"{r[key]:.1f} ({r['dim']} D)" for r in mixtures])

    def dims(rows):
        return _per_dimension([f"{r['dim']} D" for r in rows])
    over = [r for r in mixtures if r["traced_per_row"] > r["break_even_traced"]]
    starved = [r for r in mixtures if r["break_even_traced"] < r["steps"]]
    under = [r for r in mixtures if r["traced_per_row"] <= r["break_even_traced"]]
    slower = ", ".join(f"{r['jvp_trace_ms'] / r['trace_ms']:.1f}x" for r in mixtures + trained)
    text = (f"the reference's whole solve costs as much as {listed('break_even_traced')} "
            f"traced evaluations per row, where the default takes "
            f"{listed('traced_per_row')} (four per accepted step, its midpoint for the "
            f"estimate among them, and two more where a row has no usable previous step, its "
            f"first among them) for "
            f"{listed('steps')} accepted steps per row. In {dims(over)} the traces alone "
            f"cost more than the reference's whole solve")
    if starved:
        text += (f"; in {dims(starved)} it buys fewer traces than a row takes steps for its "
                 f"sample alone, so no rule that traced each step even once could match it "
                 f"there")
    for r in under:
        share = r["traced_per_row"] / r["break_even_traced"]
        text += (f". In {r['dim']} D the traces cost {share:.0%} of it, and the drift's "
                 f"{r['calls']} batched calls (the slowest row's stages, where the reference "
                 f"makes {r['reference_evaluations']} evaluations) take the default past it")
    text += (f". Forward-mode took {slower} the vectorised pullbacks' time (the mixtures by "
             f"dimension, then the trained network): the default keeps the pullbacks.")
    return textwrap.fill(text, 92)


def trace_variance_reading(payload: dict) -> str:
    """The Hutchinson-variance table's reading, its figures taken from the rows."""
    rows = payload["rows"]
    small = [r for r in rows if r["t"] <= 0.1]
    large = [r["ratio"] for r in rows if r["t"] > 0.1]
    most = max(r["ratio"] for r in small)
    text = (f"at t <= {small[-1]['t']:g}, where the variance is largest "
            f"({number(small[0]['whole_score'], 2)} at t = {small[0]['t']:g}), taking the "
            f"Gaussian part out leaves {1 / most:.2f} or more of it (a ratio of at most "
            f"{most:.2f}); only at larger t, where the variance is small anyway, does it fall "
            f"{min(large):.1f}-{max(large):.1f}x. The residual's own Jacobian carries "
            f"Hutchinson's noise: the lever is not taken.")
    return textwrap.fill(text, 92)


def likelihood_section() -> str:
    main, wide = load("likelihood_rows"), load("likelihood_rows_64")
    trained = (load("likelihood_trained_table"), load("likelihood_trained_digits"),
               load("likelihood_trained_power"))
    far = load("far_rows")
    widths = load("likelihood_trained_widths")
    equal_trace = load("likelihood_rows_exact_reference")
    by_dim = equal_trace_readings(equal_trace)
    trace_cost, trace_variance = load("trace_cost"), load("trace_cost_variance")
    trace_reading = trace_cost_reading(trace_cost)
    variance_reading = trace_variance_reading(trace_variance)
    at_defaults = {r["model"]: r for r in widths["rows"] if r["recipe"] in ("log_prob", "default")}
    flow, default = at_defaults.pop("nsf"), at_defaults.pop("sdescore")
    narrower = at_defaults  # "sdescore, W wide" -> its row
    gains = ", ".join(f"{r['rows_per_s'] / default['rows_per_s']:.1f}x "
                      f"{label.removeprefix('sdescore, ')}" for label, r in narrower.items())
    costs = ", ".join(f"{r['mean_nll'] - default['mean_nll']:.2f}" for r in narrower.values())
    fastest_gap = flow["rows_per_s"] / max(r["rows_per_s"] for r in narrower.values())
    worst_narrower = _exponent(max(r["worst_err"] for r in narrower.values()))
    return f"""## Likelihood: accuracy and speed

How close is `log_prob` to the true log-density for every row, does a row's value depend on
its batch, and what does it cost? Exact mixture scores (`random_mixture(D, 3, seed=D)`; VE
with sigma_max = 50); the truth is a float64 dopri8 solve of the same ODE at rtol = atol =
1e-10. Errors are per row in nats (mean, 99th percentile, worst of 1000 rows); the batch
effect is the largest change of a row's value between its batch and: the first 20 rows alone,
the batch reversed, the batch in two halves; "covered" is the share of rows whose
true error is at most the reported `solver_error`; "far out" is the worst error on 50
rows three times farther out than the mixture's draws (anomalies; not timed); "x ref." is
points/s over the reference
recipe's. points/s are medians alternated with the
reference recipe (score_sde_pytorch's: scipy RK45 on the whole batch, rtol = atol = 1e-5, one
Rademacher probe, its divergence one autograd pullback per evaluation as in its
`get_div_fn`) in the same run. Until 2026-12-06 the reference took that pullback through
sdescore's `torch.func` path, which made it 1.4-1.6x slower than the official code (a
throwaway comparison of the two on these mixtures, 2-16 D): the "x ref." of the runs before
then, in this file's history, overstate sdescore's speed by that much.

{provenance(main)}

{likelihood_rows(main)}

64 dimensions, one repeat, run beside the trained-model benchmarks below on the machine's
other core (so its points/s are rough):

{provenance(wide)}

{likelihood_rows(wide)}

At equal trace: the reference recipe's integrator (scipy RK45 on the whole batch, rtol =
atol = 1e-5) with the exact trace instead of its probe, beside the reference recipe and the
default, alternated in one run:

{provenance(equal_trace)}

{likelihood_rows(equal_trace)}

Reading: with the exact trace the reference's own integrator runs at
{by_dim["exact"]}
of the reference recipe's points/s, and the default at
{by_dim["default"]}
of that integrator's. There its worst rows are
{by_dim["worst"]}
nats off, against at most {by_dim["default_worst"]} for the default's
({by_dim["closer"]} closer),
and a row's value moves with its batch by up to {by_dim["effect"]} nats: its one step size
and its error norm are the whole batch's. The default's gap to the reference recipe is the
exact trace, D pullbacks each time it is taken against one probe's, and in 2 D the per-row
stepping: a batched call's cost is there mostly fixed, and the batch takes as many calls as
its slowest row. Since 2026-12-07 the default's stages evaluate the drift alone and each
step's divergence integral is a 4-point Gauss-Lobatto quadrature on the step's dense output,
the trace taken at three points per step (the end's reused by the next step) where the
stages took it at five of their six evaluations; the quadrature's error is estimated by the
degree-6 polynomial through its nodes and the previous step's and held to atol. In two
throwaway runs of that day (1000 rows, each alternated three times with the reference) it
took the default from 0.50-0.59x the reference to 0.55-0.69x in 2 D, from 0.33-0.45x to
0.41-0.51x in 6 D and from 0.16-0.21x to 0.26-0.29x in 16 D, with worst rows alike (at most
1.9e-4 nats). Since the second run of 2026-12-08 a fourth trace per step, at its midpoint,
enters the estimate: the larger of the degree-6 interpolant's on the previous step's first
three nodes and on its interior two with this midpoint. On ten mixtures the tables do not
list (3-32 D, 1-10 components, sharp ones, VE up to sigma_max = 378, VP with beta_max = 10;
300 rows each; throwaway, 2026-12-08) the worst row was 6.6e-4 nats off (32-D VP, beta_max
= 10), and there a row alone and in a batch of four differed by 6.4e-4: on one step over t =
0.567-0.752, where the divergence turns from one component to another, the rule was 6.5e-4
off on the true path and the estimate from the previous step's nodes 6.5e-6 (with the
midpoint 1.2e-4, enough to refuse the step); a batch of one rounded the score otherwise,
the dense output's defect, then noise-dominated, moved that row's error ratio from 0.12 to
0.22 and the steps onto that path. The defect now counts only beyond DEFECT_ROUNDING = 2 ulps
of the state's effect on log p, and the dense output is built from the step's increments
rather than from differences of the states, whose rounding (tens of ulps of |y| in each
coefficient) had swamped the defect on rows far out: the first of the float64 rows 1e6 times
out below, held to the ulp and scored alone, did not finish in max_steps = 5000 attempts
before, and takes 727 now (throwaway, 2026-12-08; in their batch of five the table's calls
are unchanged). On those ten mixtures the worst
rows are now at most 8.4e-5 nats, a row's value alone against its batch at most
3.6e-5 (1.7e-4 before), and under a score rounded at random (times 1 + 1e-7 z, three
seeds, 40 rows of the 32-D mixture) the rows spread over 3.8e-5 (1.5e-4 before; the test
suite checks it). Alternated three times in one process with the solver before (1000 rows,
throwaway, 2026-12-08) it took 1.05-1.22 times the time on the nine mixtures of 2-16 D, for
24-31% more traced evaluations per row (43.3 against 34.8 in 2-D VP, 66.5 against 51.0 in
16-D VP) and steps within 2%; the worst rows fell from 3.8e-5 to 1.9e-4 nats to 2.9e-5 to
7.4e-5, and solver_error covered all rows (97.3-100% before). Taken in float32, the
quadrature's estimate was the rounding of two nearly equal integrals
(quantised in steps of 4.8e-7 nats on a 64-D row) and moved the steps with the batch: a
64-D VP row alone differed from its batch's value by 1.03e-4 nats, 5.3e-5 with the estimate
summed in float64 as it now is. In a throwaway count (2026-12-08, VP, 1000 rows, before the
midpoint) the
default made 101 batched calls in 2 D (15 of them traced), 150 in 6 D (22) and 199 in 16 D
(29), against the reference's 56, 86 and 110, and traced 34,960, 44,512 and 51,022 row
evaluations (50,390, 68,000 and 84,000 with the stage quadrature), where the reference
pulled back 56,000, 86,000 and 110,000 single probes; a row took 9.0, 11.5 and 13.6 steps
on average and at most 12, 17 and 22. What the trace costs, and what the reference's
whole solve would buy of it, is in the trace-cost table below; one pullback of a batch
repeated D times took 1.4, 5.2 and 15.4 ms on the 2-16 D mixtures (1000 rows, one call;
throwaway, 2026-12-07), more than the vectorised pullbacks there. A higher order takes more
evaluations, not fewer: torchdiffeq's dopri8 on each of 40 rows alone took 1.5-1.7 times
dopri5's at rtol = atol = 1e-5 and 1e-6 (2-D VP, 16-D sub-VP) and about 4 times at 1e-7.
Would scipy RK45's step-size controller (a step that passed close to its tolerance shrinks
the next; none grows right after a rejection) pay, in place of torchdiffeq's, which never
shrinks after an accepted step and so meets a rising error with rejections? In a throwaway
comparison (2026-12-07, 1000 rows, the two alternated three times) it made 0-12% fewer
batched calls on the nine mixtures of 2-16 D (80 against 86 in 2-D VP, 248 against 266 in
16-D VE, equal only in 6-D VP) at 0.89-1.15 times the time, with worst rows alike (5.2e-5
to 2.7e-4 against 6.0e-5 to 1.9e-4), and 170 against 182 calls on 114 test rows of a 30-s
breast-cancer fit; on two 60-s power-plant fits its worst rows were 9.1e-3 and 3.0e-3
against 8.4e-3 and 7.4e-3. A growth cap of 5 or a safety factor of 0.8 on top of it saved
no further call. The tables here, run again with it at commit e6fd8bb (JSON not kept),
gave the default 0.54-0.62x the reference in 2 D, 0.36-0.46x in 6 D and 0.21-0.22x in 16 D,
but in 64 D a batch effect of 3.1e-4 nats on VP (4.6e-5 with torchdiffeq's controller,
above), over the 1e-4 a row may move with its batch (a likely cause, not checked: its next
step moves with the error ratio after every accepted step, where torchdiffeq's keeps the
step for ratios of 0.59-1, so float rounding in a batch reaches more of the later steps).
The controller stays torchdiffeq's.

What one exact trace costs against the reference's evaluation, and what the reference's
whole solve would buy of it: milliseconds per call on all rows at t = 0.3 (1000 rows of each
VP mixture, the 114 test rows of a breast-cancer fit; medians, the four alternated) of the
drift alone (a Runge-Kutta stage of the default), the drift and one pullback (the
reference's evaluation), the exact trace by D vectorised pullbacks (the default's) and by D
forward-mode products (`vmap` of `jvp`); then, for the mixtures, the reference's evaluations
and the default's accepted steps, traced evaluations per row and batched calls in one solve,
and the break-even: the traced evaluations per row that would cost as much as the
reference's whole solve, with nothing else paid for.

{provenance(trace_cost)}

{trace_cost_rows(trace_cost)}

Reading: {trace_reading}

For the trace of a trained table's score only the network's residual would need probes, the
divergence of `GaussianResidual`'s Gaussian part being analytic; Hutchinson's variance per
Rademacher probe (twice the sum of the Jacobian's off-diagonal squares, median over the 114
test rows) of the whole score and of the residual alone, on the same fit:

{trace_cost_variance_rows(trace_variance)}

Reading: {variance_reading}

On trained models: sdescore and NSF fitted for 60 s each (one thread) on scikit-learn's
breast-cancer table (455 training rows x 30 columns; sdescore's MLP), scored on its 114 test
rows, on its 8 x 8 digits (1437 training images at 17 levels, dequantised; sdescore's
U-Net), scored on 32 test images, and on the UCI power-plant table (`load_benchmark("power")`:
7751 training rows x 5 columns), scored on its 956 test rows. Errors are against a float64
solve of the same network (rtol = atol = 1e-8 on the breast-cancer table, 1e-7 on the
digits, 1e-9 on the power plant) on the rows checked (the float64 U-Net's exact trace, 64
pullbacks per evaluation, limits the digits to a few); "covered" is the share of those rows
whose error is at most the reported `solver_error`.

{provenance(*trained)}

{trained_rows(*trained)}

Reading: at the defaults (dopri5 with a step size and error control per row, each step's
error measured in log p through the score) every row is within 7.4e-5 nats of the truth in
2-16 D and 1.1e-4 in 64 D, rows three times farther out within 4.6e-4 in 2-16 D and 2.2e-3
in 64 D (a float32 row at log p = -1509, 18 ulps of it: its float64 copy is 2.6e-5 off,
and its solver_error of 9.8e-3 covers it), and a row's value moves with its batch only in
float32's last digits (at most
3.1e-5 nats in 2-16 D, 6.1e-5 in 64 D); at 0.49-0.52x the reference recipe's points/s in 2 D,
0.34-0.49x in 6 D, 0.20-0.25x in 16 D and 0.06-0.08x in 64 D, the last from one repeat beside
the trained-model benchmarks on the other core, so only roughly (0.025-0.044x in the quiet
run of 2026-12-06, with the stage quadrature). The exact trace costs D vector-Jacobian
products at each of four points per step, the reference's one probe one at every
evaluation (the trace-cost table above). Against the run before the midpoint entered the
estimate (earlier on 2026-12-08: worst rows 1.9e-4 nats in 2-16 D, at 0.57-0.60x,
0.42-0.54x and 0.26-0.28x the reference) the rows are 2-5 times closer, for the fourth
trace per step (1.05-1.22 times the time in the A/B above, within the noise between runs
of this table). Since 2026-12-08 a step's error in x, weighed by the score, is the larger of
the embedded pair's estimate and the dense output's defect integrated over the step (its
slope less the drift at the two Gauss-Lobatto interior nodes, which the trace's pass
evaluates anyway): in a throwaway A/B that day on the nine 2-16 D mixtures (1000 rows) it
moved each mixture's mean steps per row by at most 1% and its worst row by at most 2e-5
nats, and took the far-out 16-D VP rows from 1.8e-3 to 2.3e-4 (3.4e-4 in this run). That
1.8e-3 had been put down to float32's rounding (a float64 copy of the same 50 rows had its
worst at 1.3e-4; throwaway, 2026-12-07): part of it was a step's error in x that the
embedded pair missed. Hutchinson's probes are drawn
per row from the seed and the row's values, so its batch effect is float rounding too (at
most 2.5e-5 nats in 2-16 D, 6.1e-5 in 64 D; 4.6-33 nats with probes drawn for the batch, in
this file's history).
The default's solver_error covers every row in 2-64 D (97.3-100% before the midpoint), at
rtol = atol = 1e-4 99.2-100% in 2-16 D and 99.1-100% in 64 D (97.4-100% and
96.5-100% before it; 94.9-99.9% and 93.5-100% before the defect's estimate; 78.5-99.9% with
the stage quadrature before 2026-12-07: in a throwaway float64 solve of
the 2-D VP mixture at 1e-3 that day, the worst-covered row's second step, t from 0.07 to
0.37, passed over the fall of a bump of the divergence, 3.8 at t = 0.08 and 0.3 at 0.18,
and carried 4.5e-2 nats of quadrature error against an estimate of 2e-4, which both of
dopri5's embedded rules missed alike).
On the trained models it scores about a five-hundredth of NSF's rows per second on the
30-column table (7.7 rows/s, 1.7e-3x, worst row 1.4e-4 nats, solver_error covering every
row; 10.4 rows/s earlier on 2026-12-08, before the midpoint's trace, 10.3 and 11.2 in two
runs before the defect's estimate;
7.2 rows/s in the last run of 2026-12-07, with the stage quadrature, 6.1 in its first,
before the envelope below, and 4.4 on 2026-12-03, before the trace ran on plain autograd;
each for its own 60-s fit) and 1.3e-4 of them on the digits (0.19 rows/s against 0.29 and
0.31 earlier on 2026-12-08, before the midpoint, 0.25 in the last run of 2026-12-07 and 0.14
on 2026-12-03; worst of the 4 rows checked 6.3e-5 nats, all 4 covered). These trained-model runs shared the machine with the 64-D run above, one on each
core. The table's exact likelihood is compute-bound: in a throwaway count on a 60-s fit of it
(2026-12-08; the MLP 480 wide, 2.4 M parameters) a row took 145 evaluations of the drift and
69 of its exact trace (179 evaluations, five in six traced, with the stage quadrature), at
4.7 and 90 MFLOP per row (the forward pass, and it with the 30 pullbacks of 2.8 each, by
torch's FlopCounterMode on 2026-12-07), 6.9 GFLOP per row in all at 68 GFLOP/s, against 91
for one thread's 480-wide matrix product; 10x NSF's rows/s would need about 45 times fewer
operations per row, more than one Hutchinson probe (7.6 MFLOP per evaluation) or any step
count measured here removes. Until 2026-12-03 the U-Net's time embedding reached frequency 1000 in t (the MLP's stops at 30):
the same command (at commit 7e91939, 2 rows checked) then scored 0.021 digits per second. In a
throwaway script (two 60-s digits fits side by side, 2026-12-03) the flow of a row took 198
steps at frequency 1000 against 26 at 30, and on a 20-s fit at frequency 1000 four in five
evaluations fell at t > 0.1. There a digit's value alone and in a batch of 8 differed by
6.9e-5 nats at most (frequency 30, float32).

Would a narrower network close the gap to NSF? The same table, fitted at the default width
(16 d = 480 for 30 columns) and at narrower ones (`net=MLPScoreNet(30, hidden=width)`), each
for 60 s with seed 0, scored at the defaults:

{provenance(widths)}

{trained_rows(widths)}

Reading: narrower networks score more rows per second
({gains}), every row still within {worst_narrower} nats,
yet the fastest is {fastest_gap:.0f} times slower than NSF, and the test NLL moves by
{costs} nats against the default's (one fit each; the 256-wide fit's was 0.18 and 0.77 nats
above the default's in two runs of 2026-12-07 and the first of 2026-12-08, then 0.36 below
and 1.07 above it in the two runs before this one; this run shared the machine with the 64-D
benchmark). On the small-tables split of the
same table (throwaway runs of 2026-12-07: `small_tables --tables breast-cancer` with
`nets.default_width` capped, each beside an unpatched run, seeds 0 and 1, 20 s) a cap at
256 cost 1.64 and 0.75 nats, one at 128 1.64 and 3.48 (SE 3.3 at seed 1: a collapsed test
row); on the 11-15-column tables the cap at 128 moved the 20-s NLL by -0.27 and +0.08
(redwine-raw), -0.08 and -0.12 (whitewine-raw) and +0.04 and -0.01 (parkinsons). The
default width stays: on the small-tables split and at 128 and 64 wide here its NLL is what
the narrower networks give up for speed.

On the power-plant table the default's worst row is 1.3e-3 nats off and its solver_error
covers 98.4% of the rows (9.8e-4 and 94.6% on the fit earlier on 2026-12-08, before the
midpoint; each run fits its own network). Before the dense output's defect was in each step's error
(2026-12-08) the worst rows there were 8.8e-3 and 9.1e-3 nats, covered 68.7% and 34.0%, on
two 60-s fits earlier that day (6.6e-3 and 19.9% in the last run of 2026-12-07, with the
stage quadrature; 8.1e-3 and 17.9% before the envelope below). In a throwaway A/B on another
60-s fit (2026-12-08, seed 0, 300 test rows, the truth at rtol = atol = 1e-8) the defect took
the worst row from 2.2e-2 to 1.3e-3 nats and the coverage from 47% to 96% (float64 copy at the
default tolerances: 6.9e-3 to 1.2e-3, 45% to 93%); on each of the 12 worst rows (checked step
by step against a float64 dopri8 solve of each step) most of the error came from the one
step that covered t = 0.029-0.031, where the network's drift wiggles within about 0.003 of
t, and that step's estimate (the embedded pair's and the quadrature's) was 1e-3 to 8e-3 of
its error in log p (9.5e-3 nats estimated at 9.4e-6 on the worst row). A float64 copy at atol = 1e-7 brings the worst row to 2.6e-6
(covering every row; 1.0e-5 and 98.2% before the midpoint, 5.9e-5 and 95.0% before the
defect) at a sixth of the rows/s. The estimate
still measures the divergence along each step's dense output, not what the step's own error
in x does to the divergence along it. In throwaway 60-s fits of the
same file (2026-12-07, another split; seeds 0 and 1: worst rows 6.5e-3 and 3.9e-3, covered
9.3% and 23%; on kin8nm 1.0e-2 and 30%) the network's departure from the Gaussian is
constant below t = 0.028 and above t = 0.6 (its SiLUs saturated, the residual stream near
1e3) and switches on within about 0.002 of t at both ends, its rate in t reaching 1717
against at most 84 for the breast-cancer network's: a step of 0.026 passes over the switch,
and both of dopri5's embedded rules (the stage quadrature of then) miss it alike (5.5e-3
nats in one step, estimated at 6e-6). The switch is in the network's time path, the same for every row: on another 60-s
fit (seed 0; throwaway scripts of 2026-12-07, the fits below scored on 600 test rows) the
time embedding's rate in t rose from about 17 to 600 at t = 0.55-0.6, and above 0.6 the
departure did not move with t at any of 64 whitened inputs drawn at random (there the data are close to the fitted
Gaussian, and the network has switched itself off). The same seed stopped at 3250 steps
had a worst row of 5.4e-4 (covered 74.7%), against 3.3e-3 (28.5%) for the 9118 steps of
60 s. Tried on the model side, neither pays:
penalising the departure's rate in t while training (1e-3 per squared unit) brought the
worst row to 2.7-3.7e-4 (seeds 0 and 1) and log_prob's time from 1.31 to 0.56 s, but cost
0.13 nats of test NLL at about equal steps (3212 against 3250) and 0.35 in 60 s;
layer-normalised residual blocks cost 0.09-0.10 nats, for worst rows of 8.0e-4 and 2.4e-3
(seeds 0 and 1).

Since the second run of 2026-12-07 `fit` multiplies the network's departure from the
fitted Gaussian by m^2 / (m^2 + s^2) for vectors (`GaussianResidual(envelope="snr")`;
images and files saved before keep the departure itself, "none"), and every benchmark here
that fits a table was run again with it. In the throwaway 60-s fits of the power plant that led
to it (from N(0, I), without the fitted Gaussian, through `fit(parameterization=
functools.partial(GaussianResidual, envelope="snr"))`; 600 test rows) the test NLL fell from
15.25 and 15.24 to 15.22 and 15.21 (seeds 0 and 1), log_prob's time from 1.31-1.44 s to
0.78-1.08 s and the mean row error from 4.9e-4 and 7.7e-4 to 1.1e-4 and 2.0e-4, but the
worst row went from 3.3e-3 and 5.4e-3 to 2.0e-3 and 6.4e-3. With it, the 60-s fit of the
power table in the last run of 2026-12-07 (the stage quadrature): rows/s 520 against 410 in
the first run that day, worst row 6.6e-3 against 8.1e-3, and a test NLL of 15.21 against 15.15 (the power set's standard error is about 0.05; in the
flows comparison below, 15.20 and 15.21 against 15.16 and 15.20 at seeds 0 and 1). On
the breast-cancer table: test NLL -40.81 against -39.68, rows/s 7.2 against 6.1, worst
row 2.0e-4 against 1.7e-4. The envelope is thus no cure for the switch in t: on another
enveloped 60-s power fit (throwaway, 2026-12-07, seed 0, its 956 test rows: worst row
6.3e-3) the departure's rate in t stayed at most 47 above t = 0.6 at the 64 random
whitened inputs, where the switch there was, but the one at small t remained (constant
below t = 0.02, rate 1635 at t = 0.023); with the log-time embedding
(`MLPScoreNet(time_input="log")`, seeds 0 and 1) it moved to t = 0.03 and the worst rows
grew to 1.4e-2 and 1.2e-2. What the envelope changes on the other table benchmarks is in
their readings.


The dpm preset steps evenly in t on VE (in sqrt t on VP and sub-VP): on VE its mean error is
2-4x and its worst row 1.4-2x below the sqrt(t) grid's of the previous run, yet the worst row
is still 3.4 nats in 16 D (sub-VP's 2.7). Since 2026-12-07 its solver_error is the cubic
quadrature's disagreement with the trapezoid rule on the same nodes (NaN before; the 64-D
rows, from an earlier run, show none): it covers 99.2-100% of the rows in 2-16 D, yet not
those two worst rows (estimates near 0.3 nats in a throwaway script of 2026-12-07 on the
same mixtures), so it is an estimate, not a bound. The worst 16-D VE row's divergence has
a notch about 0.02 wide in sqrt(t) at t = 0.5, narrower than the traced nodes' spacing
there (0.024 at 60 steps): no fixed grid of this cost resolves it. Refining each row by
doubling its steps from 60 until two grids agree within 1e-2 (throwaway, 2026-12-07) held
the worst row to 1.0e-2 in 2 and 6 D at 0.14-0.42 s per 1000 rows, each refinement charged
a whole batch's time, against the default's 0.13-0.54 s (less only on VE) for worst rows
23-103 times closer; in 16 D nearly every row would be refined. Nor is the quadrature alone
the tail: refining only it, by adaptive Simpson per row where the cubic and the trapezoid
rule disagree by more than 1e-3 nats on an interval, on x interpolated (cubic Hermite)
between the 60 steps' nodes (throwaway, 2026-12-07), took 1.7-3.9 times the preset's time in
6 and 16 D and left worst rows of 1.6e-2 to 6.7e-2 (6 D) and 2.2e-2 to 1.6 nats (16 D). On
the worst 16-D sub-VP row (2.67 nats off) the remainder integrated densely (4001 points)
along the interpolated path is 0.98 nats from its value along the true path at 60 steps,
0.019 at 120 and 2.5e-3 at 240: the 60-step path itself passes the posterior's switch
between components (the integrand falls from +46 to -30 within 0.04 of sqrt t) off course,
though its end is within 6.6e-3 of the true x_T.

On a trained float32 network the network's own arithmetic changes with the batch (a row's
score by about 2e-7 of its size), so a row moves with it by more: 1.8e-3 nats at worst
against 3.9e-11 for its float64 copy (a throwaway script on a model of the power table,
2026-12-02, in this file's git history). That much only where a row's steps pass over a
switch in t like the power plant's, whose error then shifts with them: in throwaway scripts
of 2026-12-07, 2.5e-3 nats on a power-plant fit (its first 20 of 1000 test rows alone, all
reversed, in two halves; 2.1e-8 for its float64 copy), 4.9e-3 on another with its float32
network in a float64 solve, against 3.4e-5 on the breast-cancer fit. With the envelope
(throwaway, 2026-12-07, the same three comparisons): 4.6e-3 on the enveloped 60-s power fit
above (400 test rows; 9.8e-8 for its float64 copy; worst row 6.3e-3), 3.4e-5 on a 30-s
breast-cancer fit (114 test rows; 1.3e-13; worst row 1.1e-4).

Float64 rows far out: a float64 model of the two moons (300 steps) scores 5 test rows moved
1e3, 1e6 and 1e20 times farther from the data's mean, at the defaults and with each step held
to one ulp of the sample's effect on log p (GOAL_SCALE = inf, the solver before 2026-12-06);
errors are relative to |log p|, against a float64 dopri8 solve at rtol = atol = 1e-13;
seconds are one run each (the first row's includes the warm-up).

{provenance(far)}

{far_rows(far)}

Reading: below 1e7 nats of effect (the 1e3 rows) both solve alike, call for call; beyond, the
default takes a fifth of the network calls and holds the rows to about 1e-12 of their size
(within the error it reports) where the ulp-held solve reached 1e-14.
"""


# --- samplers -----------------------------------------------------------------------------

def sampler_family(name: str) -> str:
    if name.startswith("dpm"):
        return name.split(" steps")[0] + " " + name.split()[-1]
    return name.split()[0]


def samplers_table(payload: dict, target: str) -> str:
    rows = [r for r in payload["rows"] if r["target"] == target]
    by_sampler: dict[str, dict] = {}
    for r in rows:
        entry = by_sampler.setdefault(r["sampler"], {"evals": r["evals"]})
        entry[r["sde"]] = r["z"]
        if r["sde"] in ("vp", "-"):
            entry["seconds"] = r["seconds"]
    body = [[name, e["evals"], e.get("vp", e.get("-")), e.get("subvp"), e.get("ve"), e.get("seconds")]
            for name, e in by_sampler.items()]
    return table(["sampler", "evals", "VP z", "sub-VP z", "VE z", "seconds (VP)"], body)


def digits_samplers_table(payload: dict) -> str:
    rows = [r for r in payload["rows"] if r["target"] == "digits (U-Net)"]
    return table(["sampler", "evals", "energy distance", "seconds"],
                 [[r["sampler"], r["evals"], r["energy"], r["seconds"]] for r in rows])


def samplers_figure(payload: dict, target: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in payload["rows"] if r["target"] == target and r["evals"] > 0]
    names = list(dict.fromkeys(sampler_family(r["sampler"]) for r in rows))
    colours = dict(zip(names, plt.get_cmap("tab10").colors))
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6), sharey=True)
    for ax, sde in zip(axes, ["vp", "subvp", "ve"]):
        families: dict[str, list] = {}
        for r in rows:
            if r["sde"] == sde:
                families.setdefault(sampler_family(r["sampler"]), []).append((r["evals"], r["z"]))
        for family, points in families.items():
            points.sort()
            ax.plot([p[0] for p in points], [max(p[1], 0.1) for p in points], "o-",
                    color=colours[family], label=family)
        ax.axhline(4, color="grey", lw=0.8, ls="--")
        ax.set(xscale="log", yscale="log", title=sde, xlabel="score evaluations per sample")
    axes[0].set_ylabel("z of the energy distance\n(below 4: as exact draws; floored at 0.1)")
    axes[0].legend(fontsize=7, loc="upper right")
    fig.suptitle(f"Sample quality against score evaluations, {target}")
    fig.tight_layout()
    FIGURE.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(FIGURE, dpi=90)
    plt.close(fig)


def samplers_section(draw: bool) -> str:
    payload, formulas = load("samplers"), load("dpm_formulas")
    if draw:
        samplers_figure(payload, "random_mixture(16)")
    order_rows = [[r["dim"], r["order"], r["steps"], r["exact_err"], r["dpmsolver_err"],
                   f"{r['exact_over_dpmsolver']:.2f}"] for r in formulas["rows"]]
    return f"""## Sampling: quality against score evaluations

How many score evaluations does each sampler need before its samples are as good as exact
draws? Exact mixture scores; the energy distance between 2000 draws of each sampler and 2000
fresh draws of the mixture, mean over 3 seeds; z = (mean - floor mean) / (floor sd /
sqrt(3)), the floor being the same statistic between two fresh draws. Below about 4 a sampler
is indistinguishable from exact draws here. Evaluations include the final Tweedie step;
`dpm` at order 2 uses the official DPM-Solver++ midpoint form (the formula table below).
The seconds are for comparing samplers within one table: in the run of 2026-12-03 other work
shared the machine's second core during the mixture part.

{provenance(payload)}

![Sample quality against score evaluations](docs/_static/samplers.png)

`random_mixture(16, 3, seed=16)`:

{samplers_table(payload, "random_mixture(16)")}

The 2-D test mixture:

{samplers_table(payload, "2-D test mixture")}

On a trained network: a U-Net fitted for 150 s (one thread) to scikit-learn's 8 x 8 digits
(uint8, `levels=17`, 1437 training images), 1000 draws of each sampler against the 360
held-out digits (dequantised); the first row is 360 training digits against the same
held-out ones, what a model that had learnt the digits exactly would score up to sampling
noise. The U-Net has the time embedding of frequency up to 30 (`max_frequency`, the
likelihood section). Its machine ran the U-Net about 1.5x slower than the run of
2026-12-02 did (sde steps=300: 140 s against 90 s). Energy distance, lower is better:

{digits_samplers_table(payload)}

Reading: with an exact score, `dpm` at order 3 reaches exact-draw quality in 11-16
evaluations, the adaptive ODE in 80-98, and the stochastic samplers need hundreds to
thousands. On the trained U-Net (one seed, no noise floor between samplers measured), `dpm`
at order 2 from 10 steps on scored lowest (0.0045-0.0062), then predictor-corrector at 100
steps (0.0064), the adaptive ODE (0.0071, 104 evaluations; 302 with the frequency-1000
embedding of the earlier run), order 3 at 15-30 steps (0.0073-0.0081) and the reverse SDE
(0.0077-0.0100, worse with more steps); Langevin stayed far off (0.038). All are above the
training digits' -0.0017: this 150-s U-Net's samples are not yet as good as the data.

### DPM-Solver++ formulas

The mean distance of 500 samples (the same prior draws, float64) to the endpoint of a dopri8
solve, for the exact integral of the multistep polynomial and the official DPM-Solver++
formulas: on exact mixture scores (sub-VP, reference at 1e-11) and on a network fitted for
60 s to scikit-learn's breast-cancer table, 30 columns ("30 (trained)", its float64 copy,
reference at 1e-10).

{provenance(formulas)}

{table(["D", "order", "steps", "exact formula", "dpmsolver formula", "exact / dpmsolver"], order_rows)}

Reading: at order 2 the official midpoint form is closer everywhere, the trained network
included (1.9-3.1x), so `sample("dpm", order=2)` uses it. At order 3 neither wins
everywhere: the exact integral is closer in 2-D, at 10 steps in 6 and 16-D and on the
trained network (0.40-0.77), the official 3M at 20-40 steps in 6 and 16-D (1.13-1.32x).
On the trained network that is since its fit's departure is enveloped (the likelihood
section): the run of 2026-12-02, before, had 3M closer there (1.05-1.22x), and both
formulas' errors 2.0-5.7x larger at order 3 (0.034 against 0.0063 for the exact integral
at 40 steps). The exact integral stays the default: its error falls 8x per doubling of the
steps (tests/test_dpm_solver.py), the official 3M's about 5x from 20 to 40 steps on that test's 2-D mixture (the test run with
order 3 "dpmsolver" added, 2026-12-02). `formula="dpmsolver"` selects the official one.
"""


# --- tables against flows and scikit-learn -----------------------------------------------

def nine_sets_section() -> str:
    seeds = [0, 1]
    score = {s: load(f"compare_all_60s_floor2_seed{s}") for s in seeds}
    flows = {s: load(f"compare_all_60s_floor_flows_seed{s}") for s in seeds}
    digits = {s: load(f"compare_all_60s_digits_unet_seed{s}") for s in seeds}
    body, wins = [], {s: 0 for s in seeds}
    for data in [r["data"] for r in score[0]["rows"]]:
        row = [data]
        for s in seeds:
            ours = next(r for r in score[s]["rows"] if r["data"] == data)
            theirs = [r for r in flows[s]["rows"] if r["data"] == data and r["test_nll"] is not None]
            best = min(theirs, key=lambda r: r["test_nll"])
            win = ours["test_nll"] <= best["test_nll"]
            wins[s] += win
            mine = f"{ours['test_nll']:.4f} ({ours['test_nll_se']:.3f})"
            flow = f"{best['model']} {best['test_nll']:.4f}"
            row += [f"**{mine}**" if win else mine, flow if win else f"**{flow}**", ours["steps"]]
        body.append(row)
    image_rows = []
    for s in seeds:
        for r in digits[s]["rows"]:
            image_rows.append([s, r["model"], r["bpd"], r["test_nll"], r["steps"], r["fit_s"]])
    return f"""## Tables against normalizing flows

On the nine benchmark sets at 60 s of one CPU thread per model, which model has the lower
mean test NLL? sdescore (`fit` at its defaults, scored by the exact `log_prob`) against the
better of normflows' NSF and RealNVP (`fit_flow`, the same data preparation, budget and
held-out selection); 1000 test rows; nats per row, standard error in brackets, the lower of
the two in bold. The two seeds ran side by side. A flow whose training failed is left out
(RealNVP on protein at both seeds, on redwine at seed 1).

{provenance(*score.values(), *flows.values())}

{table(["set", "seed 0: sdescore (SE)", "seed 0: best flow", "seed 0: steps",
        "seed 1: sdescore (SE)", "seed 1: best flow", "seed 1: steps"], body)}

Reading: sdescore has the lower mean on {wins[0]} of {len(body)} sets at seed 0 and {wins[1]} at seed 1
(the digits, below, at both). Where a flow is lower the gap is within one standard error.
Against the run of 2026-12-02 (this file's history), before the departure's envelope became
fit's default for vectors (the likelihood section), no set-seed's mean moved by more than
one standard error (the 15 but protein at seed 0 by +0.015 nats on average, the power
plant by +0.04 and +0.01), and the one far test row of protein at seed 0 no longer
collapses (47.20, SE 1.675, then; 45.55, SE 0.146, now); `log_prob` scored 1.07-2.05x the points per
second (median 1.35x; the machine's speed may differ between the days).

## Images: the 8 x 8 digits

scikit-learn's digits as 1 x 8 x 8 uint8 images (dequantised at every batch), 60 s per model
on one CPU thread; sdescore trains its U-Net (32-row batches on a CPU) and is scored with
`method="dpm"` (61 evaluations: an exact 64-D trace by dopri5 is too slow on a CPU); the
flows see 64-D vectors, Glow images. Bits per dimension (lower is better) and nats per image.
The two seeds ran side by side.

{provenance(*digits.values())}

{table(["seed", "model", "bits/dim", "test NLL (nats)", "steps", "fit seconds"], image_rows)}

Reading: at both seeds sdescore has the lowest bits/dim, NSF next (0.07-0.09 bits/dim, or
3.1-4.0 nats per image, behind), RealNVP and Glow far behind. Before the U-Net's time
embedding stopped at frequency 30 (2026-12-03) sdescore led by 0.03 bits/dim, at 2.217-2.228
(the run this file's history holds).

Images keep the network's departure unscaled (envelope "none"; the tables' envelope is in
the likelihood section). In a throwaway check of 2026-12-07 the command above with
`--models score` ran at both seeds side by side with GaussianResidual's default patched to
"snr", then unpatched: 2.024 and 2.038 bits/dim with the envelope against 2.026 and 2.050
without (2286 and 2276 steps against 2122 and 2101; that machine trained about twice as
many steps in 60 s as the run above), but the energy distance of its dpm samples was 0.113
and 0.313 against 0.035 and 0.057 (standard errors 0.03-0.05).
"""


# --- small tables -------------------------------------------------------------------------

SMALL_MODELS = [("gaussian", "Gaussian"), ("gmm", "GMM (CV)"), ("kde", "KDE (CV)"), ("nsf", "NSF"),
                ("sdescore", "sdescore"), ("sdescore/5", "sdescore, budget / 5")]


def small_tables_section() -> str:
    runs = [load(f"small_tables_floor2_seed{s}") for s in (0, 1)]
    body = []
    for payload in runs:
        tables: dict[str, dict] = {}
        for r in payload["rows"]:
            tables.setdefault(r["table"], {})[r["model"]] = r
        for name, models in tables.items():
            first = next(iter(models.values()))
            best = min(m["mean_nll"] for m in models.values() if m["model"] != "sdescore/5")
            cells = []
            for key, _ in SMALL_MODELS:
                value = f"{models[key]['mean_nll']:.3f}"
                cells.append(f"**{value}**" if models[key]["mean_nll"] == best else value)
            ours = models["sdescore"]
            floor = (f"{ours['minus_gaussian']:+.3f} ({ours['paired_se']:.3f}; "
                     f"step {ours['selected_step']})")
            body.append([name, first["n"], first["d"], first["test"], first["seed"], *cells, floor])
    return f"""## Small tables: the fitted Gaussian as the floor

On tables of 100-1000 rows, is sdescore ever worse than the best Gaussian, and how does it
stand against scikit-learn's estimators and a flow? Mean test NLL in nats per row (the best
of the full-budget models in bold), 20 s per fit (sdescore also at 4 s). The last column is
sdescore minus the maximum-likelihood Gaussian on the same rows, with the paired standard
error and the selected step (step 0: `fit` returned its fitted Gaussian). sklearn tables: a
70/30 split; the others: the first n training rows and 500 test rows. GMM: 1-6 components
and full or diagonal covariance by 5-fold CV; KDE: bandwidth by 5-fold CV; NSF: `fit_flow`
for the same 20 s. The two seeds ran side by side, for about a third of the run beside a
test job.

{provenance(*runs)}

{table(["table", "n", "d", "test rows", "seed"] + [label for _, label in SMALL_MODELS]
       + ["sdescore - Gaussian (paired SE; step)"], body)}

Reading: at 20 s sdescore is below the fitted Gaussian on all 24 table-seeds; at 4 s three
are above it (breast-cancer at both seeds, diabetes-raw at seed 1), each within one standard
error and each the returned Gaussian itself. It is at least as good as the cross-validated
GMM on 8-9 of 12 tables and the KDE on 9-11; the GMM wins the raw diabetes table (integer
columns) by 1.4-3.2 nats. Against the run of 2026-12-02 (this file's history), before the
departure's envelope became fit's default for vectors (the likelihood section), the 20-s
fits are lower on 13 of 24 table-seeds, higher on 7 (by 0.25 nats on redwine-raw at seed 0,
at most 0.07 on the others) and the same on 4 (the returned Gaussian), by -0.19 nats on
average; breast-cancer -1.12 and -0.63, diabetes-raw -0.29 and -1.41 (seeds 0 and 1).
"""


# --- training cost ------------------------------------------------------------------------

def training_section() -> str:
    overhead, small, ranks = load("fit_overhead"), load("fit_overhead_small"), load("distributed")
    cost = [[r["device"], r["dim"], r.get("rows", 20_000), r["batch_size"], r["bare_steps_per_s"],
             r["bare_fused_steps_per_s"], r["fit_steps_per_s"],
             r.get("fit_selecting_steps_per_s", "-"), f"{r['fit_over_bare']:.2f}",
             f"{r['fit_over_bare_fused']:.2f}"]
            for r in overhead["rows"] + small["rows"]]
    small_batch, large = (next(r for r in overhead["rows"] if r["batch_size"] == size)
                          for size in (256, 4096))
    bare_fit = small_batch["fit_no_average_no_clip_steps_per_s"]
    average_and_clip = 100 * (1 - small_batch["fit_steps_per_s"] / bare_fit)
    over_bare = [r["fit_over_bare"] for r in overhead["rows"] + small["rows"]]
    tiny = small["rows"][0]
    tiny_selecting = tiny["fit_selecting_steps_per_s"]
    parallel = [[r["processes"], r["batch_per_rank"], r["fit_steps_per_s"], r["fit_examples_per_s"],
                 r["log_prob_points_per_s"]] for r in ranks["rows"]]
    one, two = (next(r for r in ranks["rows"] if r["processes"] == n) for n in (1, 2))
    log_prob_speedup = two["log_prob_points_per_s"] / one["log_prob_points_per_s"]
    step_cost = one["fit_steps_per_s"] / two["fit_steps_per_s"]
    examples_lost = 100 * (1 - two["fit_examples_per_s"] / one["fit_examples_per_s"])
    return f"""## Training cost

Does `fit` cost more per step than a bare PyTorch loop of the same network, loss and
optimiser? Steps per second, median of the repeats (`fit` with its weight average, clipping
and bookkeeping, no rows held out; "fused": the bare loop with Adam's fused kernel, as `fit`
uses; "selecting": the default call, rows held out and scored at every history record, by
its wall clock; "-": not measured in that run).

{provenance(overhead, small)}

{table(["device", "D", "rows", "batch", "bare steps/s", "bare fused steps/s", "fit steps/s",
        "fit, selecting steps/s", "fit / bare", "fit / bare fused"], cost)}

Reading: `fit` runs at {large["fit_over_bare_fused"]:.2f}x the bare fused loop's steps/s at batch 4096 and
{small_batch["fit_over_bare_fused"]:.2f}x at batch 256, where its weight average and clipping cost about
{average_and_clip:.0f}% ({bare_fit:.0f} steps/s without them); against the loop with Adam's default
implementation it runs at {min(over_bare):.2f}-{max(over_bare):.2f}x.
On a 100-row table a history record (and a held-out scoring) comes every 10 steps; scoring
the held-out rows' draws in one batched call instead of one call per draw (2026-12-03) took
the default fit there from 0.50x the fit without selection (the same command at commit
884517d, on 2026-12-03: 174.2 steps/s selecting against 350.1 without) to
{tiny_selecting / tiny["fit_steps_per_s"]:.2f}x ({tiny_selecting:.0f} steps/s in this run). Since 2026-12-07
the selecting fit's rate is per step taken: on these N(0, I) rows its patience can stop it long before
the steps asked for (at step 530 of 1500 in a check that day).

## Several processes (torch.distributed)

One and two CPU processes (gloo, one thread each) on the same 2-core machine: training steps
and examples per second, and `distributed.log_prob` points per second.

{provenance(ranks)}

{table(["processes", "batch per rank", "fit steps/s", "fit examples/s", "log_prob points/s"], parallel)}

Reading: two processes on two cores evaluate `log_prob` {log_prob_speedup:.1f}x faster (each row is
solved on its own, so the two shards need no exchange until the end); a training step costs
{step_cost:.1f}x as much with two processes (gradient averaging over gloo on a machine with no core
to spare), so examples per second fall by {examples_lost:.0f}%.

## On a GPU

`benchmarks/gpu.py` measures `log_prob`, sampling and an MNIST fit on a CUDA device. No GPU
was lent to the sessions that wrote these results, so it has not run and no GPU figure is
quoted.
"""


def document(draw: bool) -> str:
    sections = [likelihood_section(), samplers_section(draw), nine_sets_section(),
                small_tables_section(), training_section()]
    head = """# Benchmarks

Current results only, grouped by question; the history of earlier screens is in git. Each
table says the command that regenerates its JSON (in `benchmarks/results/`), the date and the
machine; this file is written from those JSON files by `python -m benchmarks.report`. The
benchmarks run from the repository root; the real tables come from `--data-dir` or
`$SDESCORE_DATA` (see the docs' "Tables and anomaly scores" page). Timings are medians on a
shared machine: compare within a table, not across tables.
"""
    return head + "\n" + "\n".join(sections)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Write BENCHMARKS.md from benchmarks/results.")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; fail when BENCHMARKS.md differs from the results")
    args = parser.parse_args(argv)
    text = document(draw=not args.check)
    if args.check:
        if MARKDOWN.read_text() != text:
            print("BENCHMARKS.md is not what benchmarks/results gives: run python -m benchmarks.report",
                  file=sys.stderr)
            return 1
        return 0
    MARKDOWN.write_text(text)
    print(f"wrote {MARKDOWN.relative_to(ROOT)} and {FIGURE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
