"""Named arrays and JSON attributes in a NetCDF file, written atomically (interim version; the
checksummed one replaces it)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np

from ._errors import FileFormatError


def write_arrays(path, arrays: dict, attrs: dict, dims: dict | None = None) -> Path:
    import xarray as xr

    path = Path(path)
    variables = {}
    for name, a in arrays.items():
        a = np.asarray(a)
        d = (dims or {}).get(name) or tuple(f"{name}_d{j}" for j in range(a.ndim))
        variables[name] = (d, a)
    ds = xr.Dataset(variables, attrs={k: json.dumps(v) for k, v in attrs.items()})
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        ds.to_netcdf(tmp, engine="h5netcdf")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def read_arrays(path, expect_format: str | None = None) -> tuple[dict, dict]:
    import xarray as xr

    try:
        with xr.open_dataset(path, engine="h5netcdf") as ds:
            ds = ds.load()
        arrays = {name: ds[name].values for name in ds.data_vars}
        attrs = {k: json.loads(v) for k, v in ds.attrs.items()}
    except (OSError, ValueError, KeyError) as err:
        raise FileFormatError(path, str(err).splitlines()[0], "a gradflow NetCDF file") from None
    return arrays, attrs
