"""The project's SecretBox, keyed from settings."""

from functools import cache

from django.conf import settings

from ocenter.lib.secretbox import SecretBox


@cache
def secretbox() -> SecretBox:
    if settings.OCENTER_ENCRYPTION_KEYS:
        return SecretBox(settings.OCENTER_ENCRYPTION_KEYS)
    return SecretBox.from_passphrase(settings.SECRET_KEY)
