"""Sweeps: a grid of runs of one experiment, locally (a process pool) or on a Ray cluster, into
one table. `gf.sweep(name, grid, seeds=K, out=DIR)` and `gradflow sweep NAME --grid k=v1,v2
--seeds K --out DIR` (see `sweep`). `read_table(DIR)` reads a sweep's results.parquet;
`enable_compilation_cache()` switches JAX's persistent compilation cache on (`gradflow._cache`).
"""

from .._cache import cache_dir as cache_dir
from .._cache import enable_compilation_cache as enable_compilation_cache
from ._api import sweep as sweep
from ._engines import ENGINES as ENGINES
from ._grid import parse_grid_options as parse_grid_options
from ._table import flatten as flatten
from ._table import read as read_table  # noqa: F401  (public)
