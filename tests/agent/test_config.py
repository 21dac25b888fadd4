"""The agent's configuration file: what is accepted, and errors that say what to change."""

import pytest

from pools.agent.config import ConfigError, load_config
from tests.agents import a100_nodes, fleet_toml


def _write(tmp_path, text):
    path = tmp_path / "agent.toml"
    path.write_text(text)
    return path


def test_demo_configurations_describe_64_gpus():
    from pathlib import Path

    examples = Path(__file__).resolve().parents[2] / "pools" / "agent" / "examples"
    totals = {}
    for name in ("bj-a100", "sh-h100", "edge-910b"):
        config = load_config(examples / f"{name}.toml")
        totals[name] = sum(g.count * g.gpus for g in config.node_groups)
    assert totals == {"bj-a100": 32, "sh-h100": 16, "edge-910b": 16}


def test_command_line_overrides_listen_and_state(tmp_path):
    config = load_config(_write(tmp_path, fleet_toml("p", [a100_nodes(1)])), listen="127.0.0.1:0", state="/tmp/x.db")
    assert config.listen == "127.0.0.1:0" and str(config.state) == "/tmp/x.db"


@pytest.mark.parametrize(
    "text, message",
    [
        ("[agent]\n", "'pool' is missing"),
        ('[agent]\npool = "Bad Name"\n', "lower-case"),
        ('[agent]\npool = "p"\n', "at least one node group"),
        ('[agent]\npool = "p"\n[[simulated.nodes]]\nname="n"\ngpus=0\nvendor="v"\nmodel="m"\nmemory_mib=1\n', "'gpus' must be"),
        ('[agent]\npool = "p"\n[[simulated.nodes]]\nname="n"\ngpus=2\nvendor="v"\nmodel="m"\nmemory_mib="lots"\n', "whole number"),
        (
            '[agent]\npool = "p"\n[[simulated.nodes]]\nname="n"\ngpus=2\nvendor="v"\nmodel="m"\nmemory_mib=1\n[faults]\nerror_rate=3\n',
            "error_rate",
        ),
        ("not toml = = =", "not valid TOML"),
    ],
)
def test_bad_configuration_is_refused_with_a_clear_message(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message):
        load_config(_write(tmp_path, text))


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "absent.toml")
