"""A cluster pool in oCenter: a real kubernetes agent (against the fake API server process) registered beside a host's."""

import pytest

from pools.models import Accelerator, Allocation
from pools.services.allocations import allocation_request
from pools.services.sync import pool_sync
from tests.agent.test_kubernetes import A0, A1, agent_toml
from tests.agents import AgentProcess
from tests.factories import PoolFactory
from tests.fleet import Fleet
from tests.kubernetes_api import ClusterProcess

pytestmark = [pytest.mark.django_db(transaction=True)]
pytest.importorskip("kubernetes")


@pytest.fixture
def pools(tmp_path, agents, django_user_model):
    cluster = ClusterProcess(tmp_path).start()
    agent = AgentProcess(tmp_path, "bj-k8s", [], toml=agent_toml(cluster.kubeconfig())).start()
    fleet = Fleet(agents, django_user_model, pool="bj-host")  # a host's pool, side by side
    k8s = PoolFactory(name="bj-k8s", agent=agent)
    pool_sync(pool_id=k8s.id)
    yield fleet, k8s
    agent.stop()
    cluster.stop()


def test_a_cluster_pool_syncs_beside_a_host_pool_and_its_slices_carry_the_launch_spec(pools):
    fleet, k8s = pools
    assert Accelerator.objects.filter(pool=fleet.pool).count() == 2 and Accelerator.objects.filter(pool=k8s).count() == 10
    # The cluster's first sync read its metrics: the notebook no claim names holds 20,000 MiB of A1, taken for placement.
    assert Accelerator.objects.get(uuid=A1).outside_memory_mib == 20000
    tenant, project, user, client = fleet.tenant("acme")
    allocation, _ = allocation_request(actor=user, tenant=tenant, project=project, count=1, compute_units=25, memory_mib=8192,
                                       pool_name="bj-k8s", accelerator_model="NVIDIA A100-SXM4-80GB")  # fmt: skip
    assert allocation.state == Allocation.State.RUNNING, allocation.reason
    s = allocation.slices.get()
    assert s.accelerator.uuid in (A0, A1)
    assert s.launch["labels"] == {"ocenter.io/claim": str(s.id)} and s.launch["namespace"] == "ocenter-acme"
    assert s.launch["annotations"] == {"nvidia.com/use-gpuuuid": s.accelerator.uuid}
    answer = client.get(f"/api/v1/allocations/{allocation.id}").json()
    assert answer["slices"][0]["launch"]["resources"]["limits"]["nvidia.com/gpumem"] == "8192"
    page = client.get(f"/allocations/{allocation.id}/").content.decode()
    assert "launch-spec-0" in page and "&quot;nvidia.com/use-gpuuuid&quot;: &quot;" + s.accelerator.uuid in page
