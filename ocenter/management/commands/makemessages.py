"""Django's makemessages, also collecting ``N_("…")`` (``gettext_noop`` as the services import it): reasons stored in English
and said in the reader's language when shown."""

from django.core.management.commands import makemessages


class Command(makemessages.Command):
    xgettext_options = [*makemessages.Command.xgettext_options, "--keyword=N_"]
