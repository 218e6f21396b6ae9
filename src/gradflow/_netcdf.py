"""Named arrays and attributes in a NetCDF file, written atomically and read back verified.

The generic layer under gradflow's files (trajectories, checkpoints). A file written by
`write_arrays` is plain NetCDF-4 (HDF5, via xarray and h5netcdf) that any NetCDF reader opens:

- one variable per array, in the array's own dtype (float64 stays float64, float32 stays
  float32: a round trip is bit-exact), with no fill value or scaling; dimensions named
  `<variable>_0`, `<variable>_1`, ... unless given (a 1-D variable whose only dimension has its
  own name is a coordinate, e.g. `time`);
- global attributes:
    - `gradflow_format` (str) and `format_version` (int): what the file is and which revision of
      that layout; `gradflow_version` (str): the gradflow that wrote it;
    - `sha256` (JSON object): for every variable, the SHA-256 of its values as C-order
      little-endian bytes, i.e. `hashlib.sha256(np.ascontiguousarray(a,
      a.dtype.newbyteorder("<")).tobytes()).hexdigest()`;
    - `json_attrs` (JSON list): the names of the attributes holding JSON text (dicts, lists,
      booleans, None); the other attributes are plain strings and numbers.

Writing goes to a temporary file in the same folder, is flushed to disk (fsync) and renamed
over the target (`os.replace`), so a reader sees the old file or the new one, never a part.
Reading never unpickles anything, checks the format, its version and every checksum, and turns
any failure to read into a one-line `FileFormatError`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ._atomic import atomic_write
from ._errors import ConfigError, FileFormatError

RESERVED_ATTRS = ("gradflow_format", "format_version", "gradflow_version", "sha256", "json_attrs")
_KINDS = "biuf"  # booleans, integers, floats: what NetCDF stores exactly


def checksum(array) -> str:
    """The SHA-256 (hex) of `array`'s values as C-order little-endian bytes."""
    a = np.asarray(array)
    a = np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<"))
    return hashlib.sha256(a.tobytes()).hexdigest()


def _gradflow_version() -> str:
    from . import __version__  # imported late: gradflow's __init__ imports this module's users

    return __version__


def _one_line(err: BaseException, limit: int = 160) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    return text[:limit]


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if hasattr(value, "__array__"):  # NumPy and JAX arrays
        return np.asarray(value).tolist()
    raise TypeError(f"{type(value).__name__} is not JSON")


# -------------------------------------------------------------------------------------------
# writing


def write_arrays(
    path,
    arrays: Mapping[str, Any],
    attrs: Mapping[str, Any],
    dims: Mapping[str, tuple[str, ...]] | None = None,
    *,
    format_name: str,
    format_version: int,
) -> Path:
    """Write `arrays` and `attrs` to the NetCDF file `path`, atomically (see the module docstring).

    **Arguments:**

    - `path`: the file; its folder must exist. An existing file is replaced.
    - `arrays`: variable name → array of booleans, integers or floats. Names may not contain
      "/" (use "." to build paths).
    - `attrs`: attribute name → JSON-able value; strings and numbers are stored as they are,
      anything else as JSON text (listed in `json_attrs`).
    - `dims`: variable name → dimension names, for the variables that share dimensions (e.g.
      `time`); the others get `<name>_0`, `<name>_1`, ...
    - `format_name`, `format_version`: what the file is (e.g. `"gradflow.trajectory"`, 2).

    **Returns:** `path` as a `Path`.
    """
    import xarray as xr

    path = Path(path)
    dims = dict(dims or {})
    variables, sums = {}, {}
    for name, value in arrays.items():
        if not isinstance(name, str) or not name or "/" in name or name.startswith("."):
            raise ConfigError("variable name", name, "a non-empty name without '/'")
        a = np.asarray(value)
        if a.dtype.kind not in _KINDS:
            raise ConfigError(f"array {name!r}", str(a.dtype), "booleans, integers or floats")
        variables[name] = (tuple(dims.get(name, (f"{name}_{i}" for i in range(a.ndim)))), a)
        sums[name] = checksum(a)
    plain: dict[str, Any] = {}
    as_json = []
    for key, value in attrs.items():
        if key in RESERVED_ATTRS:
            raise ConfigError("attribute", key, f"a name other than {', '.join(RESERVED_ATTRS)}")
        if type(value) in (str, float) or (type(value) is int and -(2**63) <= value < 2**63):
            plain[key] = value
        else:
            plain[key] = json.dumps(value, default=_json_default)
            as_json.append(key)
    plain.update(
        gradflow_format=format_name,
        format_version=int(format_version),
        gradflow_version=_gradflow_version(),
        sha256=json.dumps(sums),
        json_attrs=json.dumps(as_json),
    )
    ds = xr.Dataset(variables, attrs=plain)
    # No fill value: NetCDF readers would turn values equal to it into NaN.
    encoding = {name: {"_FillValue": None} for name in ds.variables}
    atomic_write(path, lambda tmp: ds.to_netcdf(tmp, engine="h5netcdf", encoding=encoding))
    return path


# -------------------------------------------------------------------------------------------
# reading


def read_arrays(
    path,
    expect_format: str,
    *,
    max_version: int,
    legacy: Mapping[str, str] | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read a file written by `write_arrays`, verifying its format, version and checksums.

    **Arguments:**

    - `path`: the file.
    - `expect_format`: the `gradflow_format` it must have.
    - `max_version`: the newest `format_version` the caller reads.
    - `legacy`: attribute → problem, for files of an older layout without `gradflow_format`
      that carry that attribute (the problem says what to do with them).

    **Returns:** `(arrays, attrs)`: every variable (coordinates included) as a NumPy array, and
    the attributes, JSON ones decoded, with `format_version` (int) and `gradflow_version`.

    **Raises:** `FileFormatError` (one line): not a readable NetCDF file, another format, a
    newer version, a failed checksum, a variable of another type than numbers or booleans.
    """
    import xarray as xr

    path = Path(path)
    expected = f"a {expect_format} file written by gradflow"
    try:
        # No decoding of fill values, scales or times: the values come back as they were written.
        with xr.open_dataset(
            path,
            engine="h5netcdf",
            mask_and_scale=False,
            decode_times=False,
            decode_timedelta=False,
            decode_coords=False,
        ) as ds:
            ds.load()
            arrays = {str(name): np.asarray(v.values) for name, v in ds.variables.items()}
            raw = dict(ds.attrs)
    except FileNotFoundError:
        raise FileFormatError(path, "no such file", expected) from None
    except Exception as err:  # h5py, xarray and OS errors alike: the file cannot be read
        problem = f"not a readable NetCDF file ({type(err).__name__}: {_one_line(err)})"
        raise FileFormatError(path, problem, expected) from None
    attrs = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in raw.items()}

    found = attrs.get("gradflow_format")
    if found is None:
        for marker, problem in (legacy or {}).items():
            if marker in attrs:
                raise FileFormatError(path, problem, expected)
        raise FileFormatError(path, "not a gradflow file (no gradflow_format attribute)", expected)
    if found != expect_format:
        raise FileFormatError(path, f"a {str(found)[:80]!r} file", expected)
    version, writer = attrs.get("format_version"), str(attrs.get("gradflow_version"))[:40]
    if type(version) is not int or version < 1:
        raise FileFormatError(path, f"format_version {str(version)[:40]!r}", "a positive integer")
    if version > max_version:
        raise FileFormatError(
            path,
            f"{expect_format} version {version} was written by a newer gradflow ({writer}); this "
            f"gradflow ({_gradflow_version()}) reads versions up to {max_version}",
            f"version ≤ {max_version}: upgrade gradflow to {writer} or later to read it",
        )

    sums = _json_attr(path, attrs, "sha256")
    if type(sums) is not dict:
        raise FileFormatError(path, "the sha256 attribute is not a JSON object", expected)
    # Variables added or removed are damage as much as changed values are.
    unlisted, missing = sorted(set(arrays) - set(sums)), sorted(set(sums) - set(arrays))
    if unlisted:
        raise FileFormatError(path, f"variable {unlisted[0][:80]!r} has no checksum", expected)
    if missing:
        raise FileFormatError(path, f"variable {str(missing[0])[:80]!r} is missing", expected)
    for name, a in arrays.items():
        if a.dtype.kind not in _KINDS:
            problem = f"variable {name[:80]!r} holds {a.dtype} values"
            raise FileFormatError(path, problem, "booleans, integers or floats")
        if checksum(a) != sums[name]:
            problem = f"variable {name[:80]!r} fails its SHA-256 checksum (the file is damaged)"
            raise FileFormatError(path, problem, expected)

    names = _json_attr(path, attrs, "json_attrs")
    if type(names) is not list or not all(
        isinstance(n, str) and n not in RESERVED_ATTRS for n in names
    ):
        raise FileFormatError(path, "the json_attrs attribute is not a list of names", expected)
    out = {k: v for k, v in attrs.items() if k not in RESERVED_ATTRS}
    for name in names:
        out[name] = _json_attr(path, attrs, name)
    out.update(format_version=version, gradflow_version=writer)
    return arrays, out


def _json_attr(path: Path, attrs: dict, name: str):
    text = attrs.get(name)
    if not isinstance(text, str):
        raise FileFormatError(path, f"attribute {name[:80]!r} is missing", "JSON text")
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        raise FileFormatError(
            path, f"attribute {name[:80]!r} is not valid JSON", "JSON text"
        ) from None
