from django.apps import AppConfig


class BillingConfig(AppConfig):
    """Price book, metering, budgets and statements."""

    name = "billing"

    def ready(self):
        from billing.metrics import BillingCollector
        from billing.selectors import allocations_cost_since, tenants_month_spend
        from billing.services import notification_send
        from ocenter import metrics
        from ocenter.seams import seams

        seams.spend_source = tenants_month_spend
        seams.notify_sink = notification_send
        seams.cost_source = allocations_cost_since
        metrics.register(BillingCollector())
