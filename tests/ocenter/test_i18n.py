"""English and Simplified Chinese: the switcher, the pages, and a catalogue with nothing left untranslated."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.urls import reverse

CATALOGUE = Path(__file__).resolve().parents[2] / "locale" / "zh_Hans" / "LC_MESSAGES" / "django.po"


def _untranslated(catalogue: str) -> tuple[int, list[str]]:
    """(entries, the msgids among them with no msgstr) of a .po file's text."""
    entries, msgid, msgstr, current = [], [], [], None
    for line in [*catalogue.splitlines(), ""]:
        if line.startswith("msgid "):
            current, msgid, msgstr = "id", [line[7:-1]], []
        elif line.startswith("msgstr"):  # msgstr "…", or msgstr[0] "…" of a plural
            current, msgstr = "str", [line.split(" ", 1)[1][1:-1]]
        elif line.startswith('"') and current:
            (msgid if current == "id" else msgstr).append(line[1:-1])
        elif not line.strip() and current:
            entries.append(("".join(msgid), "".join(msgstr)))
            current = None
    return len(entries), [i for i, s in entries if i and not s]


def test_every_message_in_the_chinese_catalogue_is_translated():
    text = CATALOGUE.read_text()
    entries, untranslated = _untranslated(text)
    assert entries > 50 and untranslated == []
    assert "#, fuzzy" not in text.split("msgid", 2)[2]


def test_every_string_shown_to_users_is_in_the_chinese_catalogue(tmp_path):
    """``makemessages`` over a copy of the tree: a string added to a page or a message and not to the catalogue fails here."""
    if shutil.which("xgettext") is None:
        if os.environ.get("OCENTER_REQUIRE_SERVICES"):
            pytest.fail("xgettext is missing: install Debian's gettext")
        pytest.skip("needs gettext (xgettext)")
    root = CATALOGUE.parents[3]
    ignore = shutil.ignore_patterns(".*", "var", "staticfiles", "node_modules", "__pycache__", "docs", "results", "*.sqlite3")
    shutil.copytree(root, tmp_path / "tree", ignore=ignore)
    env = {**os.environ, "DEBUG": "1", "DJANGO_SETTINGS_MODULE": "ocenter.settings", "OCENTER_VAR_DIR": str(tmp_path / "var")}
    made = subprocess.run([sys.executable, "manage.py", "makemessages", "-l", "zh_Hans", "--no-obsolete", "-v", "0"],
                          cwd=tmp_path / "tree", env=env, capture_output=True, text=True)  # fmt: skip
    assert made.returncode == 0, made.stderr
    text = (tmp_path / "tree" / CATALOGUE.relative_to(root)).read_text()
    _, untranslated = _untranslated(text)
    assert untranslated == [], "run makemessages -l zh_Hans and translate these"
    assert "#, fuzzy" not in text.split("msgid", 2)[2]


@pytest.mark.django_db
def test_pages_follow_the_chosen_language(client, staff):
    client.force_login(staff)
    assert "Overview" in client.get(reverse("console-overview")).content.decode()
    client.post(reverse("set_language"), {"language": "zh-hans", "next": "/console/"})
    page = client.get(reverse("console-overview")).content.decode()
    assert '<html lang="zh-hans">' in page and "总览" in page and "今日花费" in page
    client.post(reverse("set_language"), {"language": "en", "next": "/console/"})
    assert "Spend today" in client.get(reverse("console-overview")).content.decode()
