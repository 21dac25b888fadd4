"""English and Simplified Chinese: the switcher, the pages, and a catalogue with nothing left untranslated."""

from pathlib import Path

import pytest
from django.urls import reverse

CATALOGUE = Path(__file__).resolve().parents[2] / "locale" / "zh_Hans" / "LC_MESSAGES" / "django.po"


def test_every_message_in_the_chinese_catalogue_is_translated():
    entries, msgid, msgstr, current = [], [], [], None
    for line in [*CATALOGUE.read_text().splitlines(), ""]:
        if line.startswith("msgid "):
            current, msgid, msgstr = "id", [line[7:-1]], []
        elif line.startswith("msgstr "):
            current, msgstr = "str", [line[8:-1]]
        elif line.startswith('"') and current:
            (msgid if current == "id" else msgstr).append(line[1:-1])
        elif not line.strip() and current:
            entries.append(("".join(msgid), "".join(msgstr)))
            current = None
    untranslated = [i for i, s in entries if i and not s]
    assert len(entries) > 50 and untranslated == []
    assert "#, fuzzy" not in CATALOGUE.read_text().split("msgid", 2)[2]


@pytest.mark.django_db
def test_pages_follow_the_chosen_language(client, staff):
    client.force_login(staff)
    assert "Overview" in client.get(reverse("console-overview")).content.decode()
    client.post(reverse("set_language"), {"language": "zh-hans", "next": "/console/"})
    page = client.get(reverse("console-overview")).content.decode()
    assert '<html lang="zh-hans">' in page and "总览" in page and "今日花费" in page
    client.post(reverse("set_language"), {"language": "en", "next": "/console/"})
    assert "Spend today" in client.get(reverse("console-overview")).content.decode()
