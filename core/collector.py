"""Python's cyclic garbage collector, set for a process that lives long and allocates fast.

A server or worker loads some 200,000 objects at start-up (Django, the SDK, the apps) that live as
long as it does, and each LLM call allocates and frees thousands more. With Python's defaults
(a young collection every 700 net allocations) the collector ran some 1,400 times over 10,000
experiment cells and walked the start-up objects at each full collection: 8-13 % of the server's
CPU (docs/performance.md, "The collector"). `tune()` moves what start-up made into the permanent
generation (`gc.freeze()`, which the collector never walks) and collects young objects every
`GC_GEN0_THRESHOLD` net allocations instead; cyclic garbage still goes, a little later.
Reference counting, which frees almost everything, is untouched.
"""
from __future__ import annotations

import gc
import logging

from django.conf import settings

logger = logging.getLogger(__name__)


def tune() -> None:
    """Once, when start-up is over (the server's loop is running, a worker is about to take jobs)."""
    threshold = settings.GC_GEN0_THRESHOLD
    if not threshold:
        return
    gc.collect()
    gc.freeze()
    gc.set_threshold(threshold, *gc.get_threshold()[1:])
    logger.info("garbage collector: %d start-up objects frozen, young collections every %d allocations",
                gc.get_freeze_count(), threshold)
