from django.apps import AppConfig


class BillingConfig(AppConfig):
    """Price book, metering, budgets and statements (filled in by the billing issue)."""

    name = "billing"
