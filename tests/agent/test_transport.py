"""The agent's connections: an idle one is closed after its read timeout (it held a thread forever), and the agent
can speak TLS from the standard library, which oCenter verifies against the CA it is given."""

import socket
import ssl
import time

import httpx
import pytest

from tests.agents import AgentProcess, a100_nodes, fleet_toml
from tests.servers import self_signed_certificate


def _config(tmp_path, **agent) -> str:
    extra = "".join(f"{key} = {value!r}\n".replace("'", '"') for key, value in agent.items())
    return fleet_toml("bj", [a100_nodes(1, gpus=2)]).replace('backend = "simulated"\n', f'backend = "simulated"\n{extra}', 1)


def test_an_idle_connection_is_closed_after_the_read_timeout(tmp_path):
    agent = AgentProcess(tmp_path, "bj", [], toml=_config(tmp_path, read_timeout_seconds=1)).start()
    try:
        idle = socket.create_connection(("127.0.0.1", agent.port), timeout=5)
        started = time.monotonic()
        assert idle.recv(1) == b""  # closed by the agent: nothing was sent, nothing was asked
        assert 0.5 < time.monotonic() - started < 4
        assert httpx.get(f"{agent.url}/v1/health", headers={"Authorization": f"Bearer {agent.token}"}, timeout=5).status_code == 200
    finally:
        agent.stop()


@pytest.mark.django_db
def test_an_agent_over_tls_is_reached_and_verified_by_ocenter(tmp_path, settings):
    from pools.agent_client import AgentClient, AgentUnreachable, _clients

    cert, key = self_signed_certificate(tmp_path)
    agent = AgentProcess(tmp_path, "bj", [], toml=_config(tmp_path, tls_cert=str(cert), tls_key=str(key))).start()
    url = f"https://127.0.0.1:{agent.port}"
    try:
        assert "https://" in agent.output
        headers = {"Authorization": f"Bearer {agent.token}"}
        trusted = ssl.create_default_context(cafile=str(cert))
        assert httpx.get(f"{url}/v1/health", headers=headers, verify=trusted, timeout=5).status_code == 200
        with pytest.raises(httpx.TransportError):  # plain HTTP is not spoken
            httpx.get(f"http://127.0.0.1:{agent.port}/v1/health", headers=headers, timeout=5)
        with pytest.raises(httpx.ConnectError):  # and a certificate no CA we trust signed is refused
            httpx.get(f"{url}/v1/health", headers=headers, timeout=5)
        _clients.clear()
        settings.OCENTER_AGENT_CA_FILE = ""
        with pytest.raises(AgentUnreachable):
            AgentClient(url, agent.token).health()
        _clients.clear()
        settings.OCENTER_AGENT_CA_FILE = str(cert)
        assert AgentClient(url, agent.token).health()["status"] == "ok"
    finally:
        _clients.clear()
        agent.stop()


def test_tls_needs_both_files(tmp_path):
    from pools.agent.config import ConfigError, load_config

    path = tmp_path / "bj.toml"
    path.write_text(_config(tmp_path, tls_cert=str(tmp_path / "agent.crt")))
    with pytest.raises(ConfigError, match="both 'tls_cert' and 'tls_key'"):
        load_config(path)
