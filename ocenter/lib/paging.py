"""Pages over lists that grow without end (allocations, the audit log): counted up to a cap, not to the last row."""

from django.core.paginator import Paginator
from django.utils.functional import cached_property

# Past this many rows a list says "10,000+": counting a million rows costs more than the page itself.
COUNT_CAP = 10_000


class CappedPaginator(Paginator):
    """A Paginator that counts at most ``COUNT_CAP`` + 1 rows (``SELECT COUNT(*) FROM (… LIMIT cap + 1)``).

    ``count`` stops at the cap and ``capped`` says there are more: the pages
    past the cap are reached by narrowing the list (a filter), not by paging.
    """

    cap = COUNT_CAP

    @cached_property
    def _found(self) -> int:
        rows = self.object_list[: self.cap + 1]
        return len(rows) if isinstance(rows, list) else rows.count()

    @cached_property
    def count(self) -> int:
        return min(self._found, self.cap)

    @property
    def capped(self) -> bool:
        return self._found > self.cap
