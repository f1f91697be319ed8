"""Text normalisation."""

from __future__ import annotations

import pytest

from tlpipe.components.transform.text import normalize_text

pytestmark = pytest.mark.quick


@pytest.mark.parametrize(
    "raw, lowercase, expected",
    [
        ("  Hello \t\n  World  ", True, "hello world"),
        ("Ｆｕｌｌ\u3000Ｗｉｄｔｈ", True, "full width"),  # full-width letters and ideographic space
        ("\ufb01ne\u00a0print", False, "fine print"),  # ligature and non-breaking space
        ("Caf\u0065\u0301 \u210cotel", False, "Caf\u00e9 Hotel"),  # combining accent composes; script H
        ("Caf\u0065\u0301 \u210cotel", True, "caf\u00e9 hotel"),
        ("Keep CASE", False, "Keep CASE"),
        (" \n\t ", True, ""),
    ],
)
def test_normalize_text(raw, lowercase, expected):
    assert normalize_text(raw, lowercase) == expected
