"""The `gradflow` command's entry point.

It lives outside the `gradflow` package because it must act before that package (and with it
equinox) is imported: it puts `gradflow._cache.CACHEABLE_ENV` (EQX_ON_ERROR=nan unless set) into
the environment, so that the command's compiled solves carry no host callbacks and go into JAX's
persistent compilation cache; see `gradflow._cache` for why that loses no check gradflow relies
on. Then it runs `gradflow.cli.main`.
"""

import os

# Kept equal to gradflow._cache.CACHEABLE_ENV (a test checks); importing it from there would
# import gradflow, and equinox with it, too early.
CACHEABLE_ENV = {"EQX_ON_ERROR": "nan"}


def main() -> None:
    for key, value in CACHEABLE_ENV.items():
        os.environ.setdefault(key, value)
    from gradflow.cli import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
