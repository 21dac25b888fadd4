"""Reasons and notices are stored in English and said in the reader's language, figures and all."""

import re

import pytest
from django.utils import translation

from ocenter import reasons
from ocenter.reasons import say

LATIN_WORD = re.compile(r"[A-Za-z]{3,}")


def _filled(template: str) -> str:
    """The template with a figure or a name in each of its parts."""
    return template % {name: f"x{i}" for i, name in enumerate(re.findall(r"%\((\w+)\)s", template))} if "%(" in template else template


@pytest.mark.parametrize("template", reasons.TEMPLATES)
def test_every_template_is_read_back_and_said_in_chinese(template):
    stored = _filled(template)
    with translation.override("zh-hans"):
        said = say(stored)
    assert said != stored
    assert LATIN_WORD.findall(said.replace("GPU", "").replace("MiB", "")) == [], said


def test_the_parts_that_are_sentences_or_words_are_said_too():
    detail = reasons.QUOTA_FULL % {"who": "project", "scope": "pool bj", "kind": "limit", "bound": 400, "unit": "compute units",
                                   "held": 300, "asked": 200}  # fmt: skip
    with translation.override("zh-hans"):
        said = say(reasons.WAITING_FOR_QUOTA % {"detail": detail})
    assert said.startswith("等待配额：项目在 pool bj 的配额：其上限为 400 算力单位") and "300" in said and "200" in said


def test_the_figures_come_back_unchanged_and_english_stays_as_stored():
    stored = reasons.IDLE_FLAGGED % {"allocation": "7fe2a523", "since": "2026-12-02 15:26", "threshold": 5, "minutes": 2,
                                     "spent": reasons.SPENT_WHILE_IDLE % {"amount": "0.05", "currency": "CNY"},
                                     "next": reasons.WILL_BE_RELEASED % {"minutes": 15}}  # fmt: skip
    assert say(stored) == stored
    with translation.override("zh-hans"):
        said = say(stored)
    for figure in ("7fe2a523", "2026-12-02 15:26", "5%", "0.05 CNY", "15 分钟"):
        assert figure in said, (figure, said)
    assert "空闲期间花费" in said and "释放" in said


def test_a_reason_no_template_wrote_is_shown_as_written():
    with translation.override("zh-hans"):
        assert say("agent said: disk on fire") == "agent said: disk on fire"
        assert say("") == ""
        assert say("all slices claimed") == "所有切片已认领"


def test_a_real_refusal_is_said_in_chinese(db):
    from ocenter.admission import AdmissionRequest, SliceAsk
    from tenants.models import Quota
    from tenants.quotas import Refused, check_request
    from tenants.services import tenant_create

    tenant = tenant_create(actor=None, slug="acme", name="Acme")
    quota = Quota.objects.create(tenant=tenant, guarantee_compute_units=0, limit_compute_units=50, guarantee_memory_mib=0,
                                 limit_memory_mib=10**6, guarantee_slices=0, limit_slices=10)  # fmt: skip
    ask = SliceAsk(pool_name="bj", accelerator_model="A100", compute_units=60, memory_mib=1024)
    request = AdmissionRequest(tenant_id=tenant.id, project_id=None, priority="offline", lease_seconds=None, slices=[ask], usage=[])

    with pytest.raises(Refused) as refused:
        check_request([quota], request)
    with translation.override("zh-hans"):
        said = say(reasons.WAITING_FOR_QUOTA % {"detail": refused.value.detail})
    assert "租户" in said and "上限" in said and "50" in said and "60" in said and "quota" not in said, said
