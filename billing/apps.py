from django.apps import AppConfig


class BillingConfig(AppConfig):
    """Price book, metering, budgets and statements."""

    name = "billing"

    def ready(self):
        from billing.selectors import tenants_month_spend
        from ocenter.seams import seams

        seams.spend_source = tenants_month_spend
