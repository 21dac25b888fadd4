"""Register a pool from the command line: ``manage.py pool_register --name … --region … --agent-url …``."""

import os
import sys

from django.core.management.base import BaseCommand, CommandError

from pools.forms import PoolRegisterForm
from pools.services.pools import pool_register


class Command(BaseCommand):
    help = "Register a GPU pool's agent. The token is read from an environment variable or stdin, or generated and printed once."

    def add_arguments(self, parser):
        parser.add_argument("--name", required=True)
        parser.add_argument("--region", required=True)
        parser.add_argument("--agent-url", required=True)
        source = parser.add_mutually_exclusive_group()
        source.add_argument("--token-env", metavar="VAR", help="read the agent's token from this environment variable")
        source.add_argument("--token-stdin", action="store_true", help="read the agent's token from standard input")

    def handle(self, *args, **options):
        token = ""
        if options["token_env"]:
            token = os.environ.get(options["token_env"], "")
            if not token:
                raise CommandError(f"${options['token_env']} is empty or unset")
        elif options["token_stdin"]:
            token = sys.stdin.readline().strip()
        form = PoolRegisterForm({"name": options["name"], "region": options["region"], "agent_url": options["agent_url"], "token": token})
        if not form.is_valid():
            problems = "; ".join(f"{field}: {' '.join(errors)}" for field, errors in form.errors.items())
            raise CommandError(f"cannot register the pool: {problems}")
        pool, token = pool_register(actor=None, **form.cleaned_data)
        self.stdout.write(f"registered pool {pool.name} ({pool.id}), status {pool.status}")
        if not form.cleaned_data["token"]:
            self.stdout.write(f"pool token (shown once; start the agent with it): {token}")
