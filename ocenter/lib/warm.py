"""A server process's start: load what every request needs once, and keep it out of the collector's way."""

import gc


def warm():
    """Import every view now (Django does on the first request otherwise) and freeze all that is loaded.

    The cyclic collector's full passes walk every object alive; after
    ``gc.freeze`` they skip the tens of thousands Django, the views and
    their libraries leave for the life of the process. A request that
    builds thousands of objects (the queue order, with thousands waiting)
    no longer pays ~30 ms every few calls for a pass over all of them.
    Call it before a server forks its workers, or in each worker.
    """
    from django.urls import get_resolver

    get_resolver().url_patterns  # noqa: B018 (imports the URLconf, and with it every view)
    gc.freeze()
