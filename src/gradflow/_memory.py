"""This machine's physical memory, for the size checks that refuse runs that cannot fit (the
experiments' configs, `gf.models.flow_plan`)."""

from __future__ import annotations

import os


def physical_memory() -> int | None:
    """This machine's physical memory in bytes (None where `os.sysconf` cannot tell)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return None
