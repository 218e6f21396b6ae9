"""Reading `.npz` archives (NumPy's format) without pickle, each failure one `ConfigError`.

`allow_pickle=False` throughout: an archive holding Python objects is refused, never executed.
Used by `gradflow.data.load_npz` (your data) and `gradflow.models.load_parameters` (your weights).
"""

from __future__ import annotations

import os
import zipfile

import numpy as np

from ._errors import ConfigError


def read_npz(path, field: str, what: str) -> dict[str, np.ndarray]:
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ConfigError(field, path, f"the path of a readable .npz file ({what})")
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {name: np.asarray(archive[name]) for name in archive.files}
    except ValueError as err:  # object arrays need pickle: refused
        raise ConfigError(field, path, f"a .npz of numeric arrays ({what}): {err}") from None
    except (OSError, zipfile.BadZipFile, EOFError) as err:
        raise ConfigError(field, path, f"a readable .npz file ({what}): {err}") from None


def numeric_array(field: str, name: str, array: np.ndarray) -> np.ndarray:
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise ConfigError(field, f"{name} of dtype {array.dtype}", "real numbers")
    if not np.all(np.isfinite(array)):
        raise ConfigError(field, f"{name} with non-finite entries", "finite numbers")
    return array.astype(np.float64)
