"""Normalising text so that equal texts look equal to a model's tokenizer."""

from __future__ import annotations

import unicodedata


def normalize_text(text: str, lowercase: bool) -> str:
    """Unicode NFKC (full-width forms, ligatures, non-breaking spaces become plain ones),
    optional lowercasing, and runs of whitespace collapsed to one space with the ends stripped.

    Lowercasing comes after NFKC because NFKC can produce upper case ('\u210c' becomes 'H').
    """
    text = unicodedata.normalize("NFKC", text)
    if lowercase:
        text = text.lower()
    return " ".join(text.split())
