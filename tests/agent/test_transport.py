"""The agent's connections: an idle one is closed after its read timeout (it held a thread forever), and the agent
can speak TLS from the standard library, which oCenter verifies against the CA it is given."""

import datetime
import ipaddress
import socket
import ssl
import time

import httpx
import pytest

from tests.agents import AgentProcess, a100_nodes, fleet_toml


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


def _self_signed(tmp_path):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bj agent")])
    now = datetime.datetime.now(datetime.UTC)
    builder = x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
    cert = (builder.serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=1)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))  # fmt: skip
    cert_path, key_path = tmp_path / "agent.crt", tmp_path / "agent.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return cert_path, key_path


@pytest.mark.django_db
def test_an_agent_over_tls_is_reached_and_verified_by_ocenter(tmp_path, settings):
    from pools.agent_client import AgentClient, AgentUnreachable, _clients

    cert, key = _self_signed(tmp_path)
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
