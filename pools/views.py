"""Console pages for pools (staff only)."""

from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from ocenter.access import staff_required
from pools.forms import PoolRegisterForm
from pools.models import Pool
from pools.selectors import pool_nodes, pools_with_summary
from pools.services.pools import pool_register
from pools.services.sync import pool_sync


def _get_pool_for_staff(pool_id) -> Pool:
    return get_object_or_404(Pool, id=pool_id)


@staff_required
def pool_list(request):
    return render(request, "pools/pool_list.html", {"pools": pools_with_summary()})


@staff_required
def pool_detail(request, pool_id):
    pool = pools_with_summary([_get_pool_for_staff(pool_id)])[0]
    return render(request, "pools/pool_detail.html", {"pool": pool, "nodes": pool_nodes(pool)})


@staff_required
@never_cache
def pool_new(request):
    form = PoolRegisterForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        pool, token = pool_register(actor=request.user, **form.cleaned_data)
        generated = not form.cleaned_data["token"]
        # The token is on this page only: it is not stored in the clear anywhere.
        return render(request, "pools/pool_token.html", {"pool": pool, "token": token if generated else None})
    return render(request, "pools/pool_new.html", {"form": form})


@staff_required
@require_POST
def pool_sync_now(request, pool_id):
    pool = pool_sync(pool_id=_get_pool_for_staff(pool_id).id)
    messages.info(request, f"Synced {pool.name}: {pool.status}.")
    return redirect("pools:detail", pool_id=pool.id)
