"""How many rows one evaluation takes at once.

On a GPU all rows go in one batch (kernel launches, not arithmetic, are expected to bound
small batches there; not measured by this project), and a batch that runs out of memory is
halved and retried, so the batch is the largest that fits. On a CPU a fixed number of
rows, which bounds memory; torchdiffeq's shared-step solvers also cost every row of a batch
the steps of its hardest one.
"""
from __future__ import annotations

import torch
from tqdm.auto import tqdm

CPU_BATCH_ROWS = 2048
SAMPLE_BATCH_NUMBERS = 2**22  # numbers in one default sampling batch (rows x dim)


def batch_rows(n: int, batch_size: int | None, device: torch.device) -> int:
    """Rows per batch for n rows: ``batch_size`` when given, else n on CUDA and
    ``CPU_BATCH_ROWS`` elsewhere (at least 1)."""
    if batch_size is None:
        batch_size = n if torch.device(device).type == "cuda" else CPU_BATCH_ROWS
    return max(1, min(batch_size, n))


def in_batches(evaluate, n: int, rows: int, *, progress: bool | None = None,
               desc: str = "batches") -> torch.Tensor:
    """torch.cat of evaluate(slice) over consecutive slices of ``rows`` of range(n), each
    result (rows, ...). A slice that runs out of GPU memory is halved and retried, and the
    smaller size kept for the rest; one row that does not fit re-raises the error (a retried
    slice draws fresh randomness from any generator that ``evaluate`` uses). n = 0 gives
    evaluate(slice(0, 0)).
    progress: a bar over the rows (default: shown when there is more than one batch)."""
    if n == 0:
        return evaluate(slice(0, 0))
    show = n > rows if progress is None else progress
    results, start = [], 0
    with tqdm(total=n, disable=not show, desc=desc, unit="row") as bar:
        while start < n:
            stop = min(start + rows, n)
            try:
                results.append(evaluate(slice(start, stop)))
            except torch.cuda.OutOfMemoryError:
                if stop - start == 1:
                    raise
                rows = (stop - start + 1) // 2
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
                continue
            bar.update(stop - start)
            start = stop
    return torch.cat(results)
