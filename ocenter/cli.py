"""The ``ocenter`` command of an installed oCenter: Django's management commands with oCenter's settings
(``ocenter migrate``, ``ocenter createsuperuser``, ``ocenter seed_demo spec.json``…), as ``manage.py`` in a checkout."""

import os
import sys


def main():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ocenter.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
