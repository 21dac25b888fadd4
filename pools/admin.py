from django.contrib import admin

from pools.models import Accelerator, Node, Pool


@admin.register(Pool)
class PoolAdmin(admin.ModelAdmin):
    list_display = ["name", "region", "status", "last_seen_at"]
    # The token is never shown or edited here; register pools from the console.
    exclude = ["token_ciphertext"]
    readonly_fields = [
        "token_prefix",
        "status",
        "status_detail",
        "last_seen_at",
        "last_sync_at",
        "backend",
        "agent_version",
        "inventory_generation",
    ]


@admin.register(Accelerator)
class AcceleratorAdmin(admin.ModelAdmin):
    list_display = ["uuid", "pool", "node", "index", "model", "memory_mib", "health", "gone_at"]
    list_filter = ["pool", "model", "health"]
    list_select_related = ["pool", "node"]


admin.site.register(Node)
