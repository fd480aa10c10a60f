"""The screens draw icons with Streamlit's Material icons, never emoji (issue 22, item 17):
a stock Chromium has no emoji font, so ✅ or ⛔ in a banner shows as an empty box."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EMOJI = re.compile(
    "[\U0001f000-\U0001faff\u2600-\u27bf\u2b50\u2b55\u231a\u231b\u23e9-\u23f3\u23f8-\u23fa\ufe0f]"
)


def test_screens_use_material_icons_not_emoji():
    files = [ROOT / "app.py", *sorted((ROOT / "pages").glob("*.py"))]
    files += sorted((ROOT / "ui").glob("*.py"))
    found = []
    for path in files:
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if EMOJI.search(line) and not line.lstrip().startswith("#"):
                found.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not found, "\n".join(found)


def test_the_pattern_catches_the_emoji_seen_in_the_review():
    assert all(EMOJI.search(e) for e in ["✅", "⛔", "⚠️", "🔄", "🔒", "🗂️"])
    assert not EMOJI.search("→ ← ⎇ · — …")  # text symbols every font has
