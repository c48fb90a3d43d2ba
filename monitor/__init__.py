"""monitor — a media-monitoring alert bot: news feeds → multilingual watch rules → Telegram."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

__version__ = "0.1.0"


@contextmanager
def paused_gc() -> Iterator[None]:
    """The cyclic collector off for a burst of allocation that makes no garbage cycles
    worth collecting (start-up imports, a configuration load): otherwise it walks the
    young objects again and again (~7 % of the start-up imports)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
