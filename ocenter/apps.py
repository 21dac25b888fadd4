from django.apps import AppConfig


class OcenterConfig(AppConfig):
    name = "ocenter"
    verbose_name = "oCenter"
