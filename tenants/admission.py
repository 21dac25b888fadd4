"""The quota admission check, named in settings.OCENTER_ADMISSION_CHECKS."""

from ocenter.admission import AdmissionRequest
from tenants.models import Quota
from tenants.quotas import check_request


def quota_check(request: AdmissionRequest):
    """Refuse a request that does not fit the tenant's and project's quotas.

    The caller holds the tenant's row lock, so two racing requests see each
    other's usage and cannot both take the last unit.
    """
    quotas = request.quotas if request.quotas is not None else list(Quota.objects.filter(tenant_id=request.tenant_id))
    check_request(quotas, request)
