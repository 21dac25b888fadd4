"""What billing contributes to a Prometheus scrape (ocenter/metrics.py): spend this month, and how far metering lags."""

from django.db.models import Min
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily

from billing.models import SliceMeter
from billing.selectors import tenants_month_spend
from tenants.models import Tenant


class BillingCollector:
    def collect(self):
        spend = GaugeMetricFamily("ocenter_tenant_spend_month", "What each tenant has spent this month, in the platform's currency.",
                                  labels=["tenant"])  # fmt: skip
        slugs = dict(Tenant.objects.values_list("id", "slug"))
        for tenant_id, row in tenants_month_spend(list(slugs)).items():
            spend.add_metric([slugs[tenant_id]], float(row["spent"]))
        yield spend
        lag = GaugeMetricFamily("ocenter_metering_lag_seconds", "How far behind now the least metered running slice is (0: none running).")
        oldest = SliceMeter.objects.filter(slice__active=True).aggregate(oldest=Min("metered_until"))["oldest"]
        lag.add_metric([], max(0.0, (timezone.now() - oldest).total_seconds()) if oldest else 0.0)
        yield lag
