"""Pools and their inventory, read-only: every tenant member may see what can be asked for."""

from django.core.exceptions import PermissionDenied
from rest_framework import viewsets

from pools.api.serializers import AcceleratorSerializer, PoolSerializer, StaffPoolSerializer
from pools.filters import AcceleratorFilter, PoolFilter
from pools.models import Accelerator, Pool
from pools.selectors import pools_with_summary
from tenants.access import Access


class _InventoryReader(viewsets.ReadOnlyModelViewSet):
    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        access = Access.of(request)
        if not access.is_staff and not access.roles:
            raise PermissionDenied("Pools are visible to platform staff and to members of a tenant.")


class PoolViewSet(_InventoryReader):
    """Pools with their status and GPUs by model."""

    queryset = Pool.objects.order_by("name", "id")
    filterset_class = PoolFilter

    def get_serializer_class(self):
        return StaffPoolSerializer if Access.of(self.request).is_staff else PoolSerializer

    def paginate_queryset(self, queryset):
        return pools_with_summary(super().paginate_queryset(queryset))

    def get_object(self):
        return pools_with_summary([super().get_object()])[0]


class AcceleratorViewSet(_InventoryReader):
    """Every GPU oCenter knows of, present or gone; filter by pool, model, health."""

    queryset = Accelerator.objects.select_related("pool", "node").order_by("pool__name", "node__name", "index", "id")
    serializer_class = AcceleratorSerializer
    filterset_class = AcceleratorFilter
    lookup_field = "uuid"
    lookup_value_regex = "[^/]+"
