from django.apps import AppConfig


class OcenterConfig(AppConfig):
    name = "ocenter"
    verbose_name = "oCenter"

    def ready(self):
        from ocenter import preferences  # noqa: F401 (its login receiver)
