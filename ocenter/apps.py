from django.apps import AppConfig


class OcenterConfig(AppConfig):
    name = "ocenter"
    verbose_name = "oCenter"

    def ready(self):
        from axes.signals import user_locked_out
        from django.contrib.auth.signals import user_login_failed

        from ocenter import (
            events,
            preferences,  # noqa: F401 (its login receiver)
            webhooks,
        )
        from ocenter.audit import login_failed, login_locked_out

        if webhooks.on_event not in events.sinks:
            events.sinks.append(webhooks.on_event)
        user_login_failed.connect(login_failed, dispatch_uid="ocenter-audit-login-failed")
        user_locked_out.connect(login_locked_out, dispatch_uid="ocenter-audit-locked-out")
