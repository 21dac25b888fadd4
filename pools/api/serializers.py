from rest_framework import serializers

from pools.models import Accelerator, Pool


class PoolSerializer(serializers.ModelSerializer):
    gpu_count = serializers.IntegerField(read_only=True)
    memory_mib = serializers.IntegerField(read_only=True)
    gpu_models = serializers.SerializerMethodField()

    class Meta:
        model = Pool
        fields = ["id", "name", "region", "status", "status_detail", "last_seen_at", "backend", "agent_version",
                  "inventory_generation", "gpu_count", "memory_mib", "gpu_models"]

    def get_gpu_models(self, pool) -> list[dict]:
        return [{"model": model, "count": count} for model, count in pool.gpu_models]


class StaffPoolSerializer(PoolSerializer):
    """What staff see besides: where the agent is and which token it takes."""

    class Meta(PoolSerializer.Meta):
        fields = [*PoolSerializer.Meta.fields, "agent_url", "token_prefix", "last_sync_at", "created_at"]


class AcceleratorSerializer(serializers.ModelSerializer):
    pool = serializers.CharField(source="pool.name", read_only=True)
    node = serializers.CharField(source="node.name", read_only=True)

    class Meta:
        model = Accelerator
        fields = ["uuid", "pool", "node", "index", "vendor", "model", "memory_mib", "health", "first_seen_at", "gone_at"]
