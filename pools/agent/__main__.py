"""
Run a pool agent:

    OCENTER_AGENT_TOKEN=... python -m pools.agent --config pools/agent/examples/bj-a100.toml

The pool token comes from the environment or a file (never the command line,
where other users could read it in the process list).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path

from pools.agent.backends import load_backend
from pools.agent.config import ConfigError, load_config
from pools.agent.server import Agent, make_server
from pools.agent.store import ClaimStore

log = logging.getLogger("pools.agent")


def _parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m pools.agent", description="oCenter pool agent (protocol v1)")
    parser.add_argument("--config", required=True, help="TOML file describing the pool and its backend")
    parser.add_argument("--listen", help="HOST:PORT to serve on (default: the file's, else 127.0.0.1:9100)")
    parser.add_argument("--state", help="SQLite file holding the claims (default: the file's, else <pool>-claims.sqlite3)")
    parser.add_argument("--token-file", help="file holding the pool token (default: $OCENTER_AGENT_TOKEN)")
    parser.add_argument("--log-level", default="INFO")
    return parser.parse_args(argv)


def _read_token(args) -> str:
    token = Path(args.token_file).read_text().strip() if args.token_file else os.environ.get("OCENTER_AGENT_TOKEN", "").strip()
    if len(token) < 16:
        raise ConfigError("the pool token must be at least 16 characters: set OCENTER_AGENT_TOKEN or --token-file")
    return token


def main(argv=None) -> int:
    args = _parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = load_config(args.config, listen=args.listen, state=args.state)
        token = _read_token(args)
        backend = load_backend(config)
    except (ConfigError, ValueError, OSError) as exc:
        print(f"pools.agent: {exc}", file=sys.stderr)
        return 2
    host, _, port = config.listen.rpartition(":")
    store = ClaimStore(config.state)
    agent = Agent(config, backend, store, token)

    stopping = threading.Event()
    server_box = {}

    def stop(signum, frame):
        stopping.set()
        # shutdown() waits for serve_forever to return: call it off this thread.
        threading.Thread(target=server_box["server"].shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    def watch_refusals():
        while not stopping.is_set():
            if agent.refuse_requested.wait(0.2):
                time.sleep(0.05)  # let the PUT /v1/faults answer go out first
                server_box["server"].shutdown()

    threading.Thread(target=watch_refusals, daemon=True).start()
    log.info(
        "pool %s: %s backend, %d GPUs, %d claims held, listening on %s",
        config.pool,
        backend.name,
        len(agent.gpus),
        len(store.all()),
        config.listen,
    )
    try:
        while not stopping.is_set():
            server_box["server"] = server = make_server(agent, host or "127.0.0.1", int(port))
            port = server.server_address[1]  # after "--listen …:0", rebind the same port
            scheme = "https" if config.tls_cert else "http"
            print(f"pools.agent: {config.pool} listening on {scheme}://{host}:{server.server_address[1]}", flush=True)
            server.serve_forever(poll_interval=0.2)
            server.server_close()
            if agent.refuse_requested.is_set() and not stopping.is_set():
                # The socket is closed: connections are refused until we bind again.
                log.warning("refusing connections for %.1f s (fault knob)", agent.refuse_connections_seconds)
                agent.refuse_requested.clear()
                stopping.wait(agent.refuse_connections_seconds)
    finally:
        backend.close()
        store.close()
        log.info("pool %s: stopped", config.pool)
    return 0


if __name__ == "__main__":
    sys.exit(main())
