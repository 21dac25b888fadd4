"""Pools and their inventory (read-only: every tenant member may see what can be asked for), and allocations."""

from datetime import timedelta

from django.core.exceptions import PermissionDenied
from django.db.models import Prefetch
from django.http import Http404
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.generics import get_object_or_404
from rest_framework.response import Response

from pools.api.serializers import (
    AcceleratorSerializer,
    AllocationArrayRequestSerializer,
    AllocationArraySerializer,
    AllocationEventSerializer,
    AllocationRequestSerializer,
    AllocationSerializer,
    AllocationUsageSerializer,
    PoolSerializer,
    PoolUtilizationSerializer,
    SeriesQuerySerializer,
    StaffPoolSerializer,
)
from pools.filters import AcceleratorFilter, AllocationFilter, PoolFilter
from pools.models import Accelerator, Allocation, Pool, Slice
from pools.selectors import allocation_for, allocation_usage, allocations_for, pool_utilization, pools_with_summary, usage_resolution
from pools.services.allocations import allocation_release, allocation_request, allocation_request_array
from tenants.access import Access, require_role
from tenants.models import Role


def _series_window(request):
    """(since, now, resolution) from ``?since=`` and ``?resolution=`` (400s when they cannot be read)."""
    query = SeriesQuerySerializer(data={k: v for k, v in request.query_params.items() if k in ("since", "resolution")})
    query.is_valid(raise_exception=True)
    now = timezone.now()
    since = query.validated_data.get("since") or now - timedelta(hours=1)
    return since, now, usage_resolution(since, now, query.validated_data.get("resolution", ""))


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

    @extend_schema(parameters=[SeriesQuerySerializer], responses={200: PoolUtilizationSerializer})
    @action(detail=True)
    def utilization(self, request, pk=None):
        """What the pool's GPUs did: their mean utilization and memory used, a point a minute (or an hour)."""
        pool = get_object_or_404(self.get_queryset(), id=pk)
        since, now, resolution = _series_window(request)
        points = pool_utilization(pool, since=since, now=now, resolution=resolution)
        return Response(PoolUtilizationSerializer({"pool": pool.id, "resolution": resolution, "points": points}).data)


class AcceleratorViewSet(_InventoryReader):
    """Every GPU oCenter knows of, present or gone; filter by pool, model, health."""

    queryset = Accelerator.objects.select_related("pool", "node").order_by("pool__name", "node__name", "index", "id")
    serializer_class = AcceleratorSerializer
    filterset_class = AcceleratorFilter
    lookup_field = "uuid"
    lookup_value_regex = "[^/]+"


class AllocationViewSet(viewsets.ReadOnlyModelViewSet):
    """Ask for GPU slices, watch them start, release them. ``Idempotency-Key`` makes a retried POST safe."""

    serializer_class = AllocationSerializer
    filterset_class = AllocationFilter
    queryset = Allocation.objects.none()  # for the schema; get_queryset decides

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return self.queryset
        return (
            allocations_for(Access.of(self.request))
            .prefetch_related(Prefetch("slices", queryset=Slice.objects.select_related("pool", "accelerator")))
            .order_by("-created_at", "id")
        )

    @extend_schema(
        request=AllocationRequestSerializer,
        responses={201: AllocationSerializer, 200: AllocationSerializer},
        parameters=[OpenApiParameter("Idempotency-Key", str, OpenApiParameter.HEADER, required=False)],
    )
    def create(self, request):
        project, data, key = self._asked(request, AllocationRequestSerializer, longest_key=200)
        allocation, created = allocation_request(actor=request.user, tenant=project.tenant, project=project, idempotency_key=key, **data)
        # Just placed or queued, it has no minute of use yet and is not idle.
        activity = {allocation.id: {"usage": None, "idle": None}} if created else None
        return Response(self._body(allocation, activity), status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)

    @extend_schema(
        request=AllocationArrayRequestSerializer,
        responses={201: AllocationArraySerializer, 200: AllocationArraySerializer},
        parameters=[
            OpenApiParameter("Idempotency-Key", str, OpenApiParameter.HEADER, required=False, description="member i is kept under key/i")
        ],
    )
    @action(detail=False, methods=["post"])
    def array(self, request):
        """A job array: ``members`` independent allocations of one shape, admitted together; each member's state, and why it waits."""
        project, data, key = self._asked(request, AllocationArrayRequestSerializer, longest_key=196)  # "key/499" fits in 200
        members, created = allocation_request_array(actor=request.user, tenant=project.tenant, project=project, idempotency_key=key, **data)
        context = self.get_serializer_context()
        if created:  # just placed or queued: no minute of use yet, not idle
            context["activity"] = {a.id: {"usage": None, "idle": None} for a in members}
        counts: dict = {}
        for member in members:
            counts[member.state] = counts.get(member.state, 0) + 1
        body = {
            "array": str(members[0].array_id),
            "counts": counts,
            "members": AllocationSerializer(members, many=True, context=context).data,
        }
        return Response(body, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)

    def _asked(self, request, serializer_class, *, longest_key: int):
        """(project, spec, Idempotency-Key) of a request for slices, its caller a member of the project's tenant."""
        serializer = serializer_class(data=request.data, context=self.get_serializer_context())
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        project = data.pop("project")
        require_role(Access.of(request), project.tenant, Role.MEMBER, "Requesting GPU slices")
        key = request.headers.get("Idempotency-Key")
        if key is not None and not 1 <= len(key) <= longest_key:
            raise ValidationError({"Idempotency-Key": [f"must be 1 to {longest_key} characters."]})
        data["pool_name"] = data.pop("pool")
        return project, data, key

    def _body(self, allocation: Allocation, activity=None) -> dict:
        """The allocation's answer: from what the service left in hand, or read again when it left less."""
        if not allocation.slices_kept:
            allocation, activity = self.get_queryset().get(id=allocation.id), None
        context = self.get_serializer_context()
        if activity is not None:
            context["activity"] = activity
        return AllocationSerializer(allocation, context=context).data

    @extend_schema(responses={200: AllocationSerializer})
    def destroy(self, request, pk=None):
        """Release (idempotent: releasing a released allocation answers the same)."""
        allocation = allocation_for(Access.of(request), pk)  # with its slices: released from here, and answered
        if allocation is None:
            raise Http404("No Allocation matches the given query.")
        require_role(Access.of(request), allocation.tenant, Role.MEMBER, "Releasing GPU slices")
        return Response(self._body(allocation_release(actor=request.user, allocation=allocation)))

    @extend_schema(parameters=[SeriesQuerySerializer], responses={200: AllocationUsageSerializer})
    @action(detail=True)
    def usage(self, request, pk=None):
        """What the allocation's slices did: utilization, the busiest slice, memory used and processes, a point a minute (or an hour)."""
        allocation = get_object_or_404(allocations_for(Access.of(request)), id=pk)
        since, now, resolution = _series_window(request)
        points = allocation_usage(allocation, since=since, now=now, resolution=resolution)
        return Response(AllocationUsageSerializer({"allocation": allocation.id, "resolution": resolution, "points": points}).data)

    @extend_schema(responses={200: AllocationEventSerializer(many=True)})
    @action(detail=True)
    def events(self, request, pk=None):
        """Every state change: when, from what to what, by whom, why."""
        allocation = self.get_object()
        return Response(AllocationEventSerializer(allocation.events.all(), many=True).data)
