"""Where the real data sets are read from: never a default folder of the library's own."""
from __future__ import annotations

import os
from pathlib import Path

DATA_VARIABLE = "SDESCORE_DATA"


def data_folder(data_dir, what: str) -> Path:
    """``data_dir`` as a Path, else the folder named by the SDESCORE_DATA environment
    variable; with neither, ValueError saying how to name one (``what`` needs it)."""
    if data_dir is not None:
        return Path(data_dir)
    if os.environ.get(DATA_VARIABLE):
        return Path(os.environ[DATA_VARIABLE])
    raise ValueError(f"{what} is read from files: pass data_dir=FOLDER or set the environment "
                     f"variable {DATA_VARIABLE}=FOLDER (the docs' 'Tables and anomaly scores' "
                     "page lists the files)")
