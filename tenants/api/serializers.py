from django.contrib.auth.password_validation import validate_password
from django.contrib.auth.validators import UnicodeUsernameValidator
from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from ocenter.api import ModelSerializer, Serializer
from tenants.models import ApiToken, Invitation, Membership, Project, Quota, Role, Tenant
from tenants.quotas import DIMENSIONS, MAX_AMOUNT


@extend_schema_field(OpenApiTypes.STR)
class TenantField(serializers.SlugRelatedField):
    """A tenant named by slug, among those the request may reach (others read as 'does not exist')."""

    def __init__(self, **kwargs):
        super().__init__(slug_field="slug", **kwargs)
        what = "the slug of a tenant you belong to, e.g. 'acme'" + (
            ", or null for a platform token (staff only)" if self.allow_null else ""
        )
        self.error_messages = {
            **self.error_messages,
            "null": f"give {what}",
            "required": f"give {what}",
            "does_not_exist": "no tenant '{value}' that you can reach; give " + what,
        }

    def run_validation(self, data=serializers.empty):
        if data == "":  # not the same as null: say what to give instead
            self.fail("required")
        return super().run_validation(data)

    def get_queryset(self):
        from tenants.access import Access

        return Access.of(self.context["request"]).tenants()


class TenantSerializer(ModelSerializer):
    class Meta:
        model = Tenant
        fields = ["id", "slug", "name", "status", "created_at"]
        read_only_fields = ["id", "created_at"]


class ProjectSerializer(ModelSerializer):
    tenant = TenantField()

    class Meta:
        model = Project
        fields = ["id", "tenant", "slug", "name", "description", "created_at"]
        read_only_fields = ["id", "created_at"]
        validators = []  # uniqueness is checked in validate(), with a message that says what to change

    def validate(self, data):
        tenant = data.get("tenant") or self.instance.tenant
        slug = data.get("slug", self.instance.slug if self.instance else None)
        clash = Project.objects.filter(tenant=tenant, slug=slug)
        if self.instance:
            clash = clash.exclude(id=self.instance.id)
        if clash.exists():
            raise serializers.ValidationError({"slug": [f"{tenant.slug} already has a project '{slug}'; choose another slug."]})
        return data


class ProjectUpdateSerializer(ProjectSerializer):
    tenant = serializers.SlugRelatedField(slug_field="slug", read_only=True)


class MembershipSerializer(ModelSerializer):
    tenant = TenantField()
    username = serializers.CharField(
        source="user.username",
        max_length=150,
        validators=[UnicodeUsernameValidator()],
        help_text="letters, digits and @ . + - _ only",
    )
    email = serializers.EmailField(write_only=True, required=False, allow_blank=True)
    password = serializers.CharField(
        write_only=True,
        required=False,
        allow_blank=True,
        style={"input_type": "password"},
        help_text="for a new user; leave out to get a generated one back, once",
    )

    class Meta:
        model = Membership
        fields = ["id", "tenant", "username", "email", "password", "role", "created_at"]
        read_only_fields = ["id", "created_at"]
        extra_kwargs = {"role": {"required": True}}

    def validate(self, data):
        password = data.get("password")
        if password:
            try:
                validate_password(password)
            except DjangoValidationError as exc:
                raise serializers.ValidationError({"password": list(exc.messages)}) from None
        return data


class MembershipRoleSerializer(ModelSerializer):
    tenant = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    username = serializers.CharField(source="user.username", read_only=True)

    class Meta:
        model = Membership
        fields = ["id", "tenant", "username", "role", "created_at"]
        read_only_fields = ["id", "tenant", "username", "created_at"]


class UsageSerializer(Serializer):
    """What is held under a quota, per dimension."""

    used = serializers.DictField(child=serializers.IntegerField())
    used_realtime = serializers.DictField(child=serializers.IntegerField())
    guaranteed = serializers.DictField(child=serializers.IntegerField())
    limit = serializers.DictField(child=serializers.IntegerField())
    borrowed = serializers.DictField(child=serializers.IntegerField())
    borrowable = serializers.DictField(child=serializers.IntegerField())
    left = serializers.DictField(child=serializers.IntegerField())
    left_guaranteed = serializers.DictField(child=serializers.IntegerField())


AMOUNT_FIELDS = [f"{kind}_{d}" for d in DIMENSIONS for kind in ("guarantee", "limit")]


class QuotaSerializer(ModelSerializer):
    tenant = TenantField()
    project = serializers.PrimaryKeyRelatedField(queryset=Project.objects.all(), allow_null=True, required=False)
    usage = serializers.SerializerMethodField()

    class Meta:
        model = Quota
        fields = ["id", "tenant", "project", "pool_name", "accelerator_model", *AMOUNT_FIELDS, "usage", "created_at", "updated_at"]
        read_only_fields = ["id", "created_at", "updated_at"]
        validators = []  # quota_set() upserts by scope
        extra_kwargs = {f"{kind}_{d}": {"min_value": 0, "max_value": MAX_AMOUNT[d]} for d in DIMENSIONS for kind in ("guarantee", "limit")}

    def get_project_queryset(self):
        from tenants.access import Access

        return Access.of(self.context["request"]).scope(Project.objects.all())

    def get_fields(self):
        fields = super().get_fields()
        if "request" in self.context:
            fields["project"].queryset = self.get_project_queryset()
        return fields

    def validate(self, data):
        tenant = data.get("tenant") or getattr(self.instance, "tenant", None)
        project = data.get("project", getattr(self.instance, "project", None))
        if project is not None and tenant is not None and project.tenant_id != tenant.id:
            raise serializers.ValidationError({"project": [f"project {project} is not in tenant {tenant.slug}."]})
        errors = {}
        for d in DIMENSIONS:
            guarantee = data.get(f"guarantee_{d}", getattr(self.instance, f"guarantee_{d}", 0))
            limit = data.get(f"limit_{d}", getattr(self.instance, f"limit_{d}", 0))
            if limit < guarantee:
                errors[f"limit_{d}"] = [f"the limit ({limit}) must be at least the guarantee ({guarantee})."]
        if errors:
            raise serializers.ValidationError(errors)
        return data

    def get_usage(self, quota) -> dict | None:
        usage = self.context.get("usage", {}).get(quota.id)
        return usage.as_dict() if usage else None


class QuotaUpdateSerializer(QuotaSerializer):
    tenant = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    project = serializers.PrimaryKeyRelatedField(read_only=True)

    class Meta(QuotaSerializer.Meta):
        read_only_fields = ["id", "tenant", "project", "pool_name", "accelerator_model", "created_at", "updated_at"]


class ApiTokenSerializer(ModelSerializer):
    tenant = TenantField(allow_null=True, required=False, help_text="the tenant the token acts in; null: a platform token (staff only)")
    user = serializers.CharField(source="user.username", read_only=True)
    role = serializers.ChoiceField(
        choices=Role.choices, required=False, allow_blank=True, help_text="cap on the token's role; it never acts above its creator's role"
    )

    class Meta:
        model = ApiToken
        fields = ["id", "name", "tenant", "role", "user", "prefix", "created_at", "expires_at", "last_used_at", "revoked_at"]
        read_only_fields = ["id", "user", "prefix", "created_at", "last_used_at", "revoked_at"]

    def validate_expires_at(self, value):
        if value is not None and value <= timezone.now():
            raise serializers.ValidationError("this moment has passed: give a time in the future, or none for a token that does not expire")
        return value


class NewApiTokenSerializer(ApiTokenSerializer):
    token = serializers.CharField(read_only=True, help_text="the secret: shown this once, never again")

    class Meta(ApiTokenSerializer.Meta):
        fields = [*ApiTokenSerializer.Meta.fields, "token"]


class InvitationSerializer(ModelSerializer):
    tenant = TenantField()
    username = serializers.CharField(max_length=150, validators=[UnicodeUsernameValidator()], help_text="who is invited")

    class Meta:
        model = Invitation
        fields = ["id", "tenant", "username", "role", "created_at", "expires_at", "accepted_at"]
        read_only_fields = ["created_at", "expires_at", "accepted_at"]
