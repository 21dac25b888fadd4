"""
Why an allocation is where it is. Services store the reason in English (the
API's words, the same for every reader); pages show it in the reader's
language through ``say``.

A reason with figures in it is written from one of the templates here, and
``say`` reads it back with the same template: each ``%(name)s`` matches one
part, the parts that are themselves sentences are said in turn, and the
translated template is filled with them. A reason no template wrote (one
stored before these, a free-form detail from an agent) is shown as written.
"""

import re
from functools import cache

from django.utils.translation import gettext
from django.utils.translation import gettext_noop as N_

WAITING_FOR_QUOTA = N_("waiting for quota: %(detail)s")
PLACED_AGAIN = N_("agent refused a GPU (%(problem)s); placed again")
WAITING_AFTER_REFUSAL = N_("waiting for room after the agent refused: %(problem)s")
COULD_NOT_CLAIM = N_("could not claim on %(pool)s: %(problem)s")
PREEMPTED_BY = N_("preempted by realtime allocation %(allocation)s of %(tenant)s")
PREEMPTED_WITHIN_LIMIT = N_("preempted by realtime allocation %(allocation)s of %(tenant)s, to keep the tenant within its limit")
REQUEUED_AFTER = N_("requeued after preemption of %(allocation)s")
MAKING_ROOM = N_("making room: reclaiming %(count)s offline or borrowed allocation(s)")
IDLE_SINCE = N_("idle since %(since)s (idle policy)")
RELEASED = N_("released: %(reason)s")
MOVED_TO_OFFLINE = N_("moved to offline: %(reason)s")
QUOTA_FULL = N_("the %(who)s's quota for %(scope)s: its %(kind)s is %(bound)s %(unit)s; %(held)s are held and the request asks %(asked)s")
QUOTA_FULL_REALTIME = N_(
    "the %(who)s's quota for %(scope)s: its %(kind)s is %(bound)s %(unit)s; %(held)s are held by realtime work and the request "
    "asks %(asked)s; realtime work must fit the guarantee, interruptible or offline work may borrow up to the limit"
)
NOT_RECLAIMABLE = N_(
    "%(detail)s; %(reclaimable)s of them reclaimable (the tenant's own offline and borrowed work), and realtime work stays within "
    "the limit: release some work, or ask the platform team for a higher limit"
)
NO_QUOTA = N_("the tenant has no quota for %(model)s in pool %(pool)s; ask the platform team for one")
BUDGET_SPENT = N_("budget %(budget)s is spent: %(spent)s of %(amount)s %(currency)s; ask an admin to raise it, or wait for the next period")
BUDGET_OVERRUN = N_(
    "over its lease this request would cost %(cost)s %(currency)s, and budget %(budget)s has %(left)s left; "
    "ask for a shorter lease or fewer slices"
)

# Notices to a tenant's people (kept as written, shown through ``say`` too).
IDLE_FLAGGED = N_(
    "allocation %(allocation)s has been idle since %(since)s (below %(threshold)s%% of its compute and no process for "
    "%(minutes)s minutes)%(spent)s: %(next)s"
)
SPENT_WHILE_IDLE = N_(", %(amount)s %(currency)s spent while idle")
STAYS_REALTIME = N_("it is realtime work, so it stays; release it if it is done")
NOTHING_MORE = N_("nothing more happens to it")
WILL_BE_DEMOTED = N_("it will be moved to offline in %(minutes)s minutes unless it works again")
WILL_BE_RELEASED = N_("it will be released in %(minutes)s minutes unless it works again")
STILL_IDLE = N_("allocation %(allocation)s is still idle, %(reason)s; it keeps its GPUs")
WAS_DEMOTED = N_("allocation %(allocation)s was moved to offline: %(reason)s")
BUDGET_THRESHOLD = N_("%(budget)s has spent %(spent)s %(currency)s (%(percent)s%% of %(amount)s) — threshold %(threshold)s%%")

# The words a template's parts may be (each said in the reader's language too).
WORDS = (N_("tenant"), N_("project"), N_("limit"), N_("guarantee"), N_("compute units"), N_("MiB of GPU memory"), N_("slices"))

# Every template, longest first: one that another begins with is tried after it.
TEMPLATES = sorted((value for name, value in list(globals().items()) if name.isupper() and isinstance(value, str)), key=len, reverse=True)


@cache
def _pattern(template: str) -> re.Pattern:
    parts = re.split(r"%\((\w+)\)s", template)
    regex = "".join(re.escape(part.replace("%%", "%")) if i % 2 == 0 else f"(?P<{part}>.*?)" for i, part in enumerate(parts))
    return re.compile(f"^{regex}$", re.DOTALL)


def say(reason: str) -> str:
    """``reason`` (as stored) in the active language."""
    if not reason:
        return ""
    translated = gettext(reason)
    if translated != reason:
        return translated
    for template in TEMPLATES:
        found = _pattern(template).match(reason)
        if found:
            return gettext(template) % {name: say(part) for name, part in found.groupdict().items()}
    return reason
