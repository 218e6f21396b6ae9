"""The `gradflow` command's entry point.

It lives outside the `gradflow` package because it must act before that package (and with it
equinox) is imported: it puts `gradflow._cache.CACHEABLE_ENV` (EQX_ON_ERROR=nan unless set) into
the environment, so that the command's compiled solves carry no host callbacks and go into JAX's
persistent compilation cache; see `gradflow._cache` for why that loses no check gradflow relies
on. Then it runs `gradflow.cli.main`.

Garbage collection. Importing gradflow leaves ~150k objects that live as long as the process
(modules, classes, functions). Python's full collections scan every one of them again, and JAX's
tracing allocates enough to trigger several of those per run: about 0.5 s of a quick
deep-linear run. The command owns its process, so it collects nothing during the import and then
freezes what the import made (`gc.freeze`: kept, never scanned again); full collections then scan
only what the command itself creates. The library does not do this for its users: a frozen object
that later becomes garbage is never freed, which only the owner of a process may decide.
"""

import gc
import os

# Kept equal to gradflow._cache.CACHEABLE_ENV (a test checks); importing it from there would
# import gradflow, and equinox with it, too early.
CACHEABLE_ENV = {"EQX_ON_ERROR": "nan"}


def main() -> None:
    for key, value in CACHEABLE_ENV.items():
        os.environ.setdefault(key, value)
    gc.disable()
    try:
        from gradflow.cli import main as cli_main
    finally:
        gc.freeze()
        gc.enable()
    cli_main()


if __name__ == "__main__":
    main()
