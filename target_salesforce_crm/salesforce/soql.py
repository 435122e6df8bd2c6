"""SOQL string literals (contract part 2, §1.4): single quotes, with backslash and quote
escaped, so a Campaign name or a field name can never end the literal early."""

from __future__ import annotations

from collections.abc import Iterable


def quoted(values: Iterable[str]) -> str:
    """Comma-separated SOQL string literals, for ``IN (…)`` or a single ``= …``."""
    return ", ".join("'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'" for v in values)
