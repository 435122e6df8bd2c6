"""Keep secrets out of every log line, whoever logs it (our code, the SDK, urllib3).

How a secret is masked depends on whether it can be told apart from ordinary text:

- a *distinctive* secret (at least 8 characters, or at least 6 with a character that is not a
  letter) is replaced wherever it occurs, also inside a longer string (a password followed by
  its security token, a token inside a URL). Every real credential is distinctive: Salesforce
  passwords have at least 8 characters, and tokens, keys, ids and usernames (emails) are longer;
- a *short* secret (``p``, ``pass``, ``1234``) is replaced only where it stands alone, touching
  no letter, digit or underscore (``'p'``, ``1234 is not of type``). Replacing it everywhere
  would turn every ``p`` of every line into the mask. The target never logs a credential, so a
  short secret stays out of the output by not being written; the whole-word mask only catches
  a message that quotes the value on its own (a schema error about a wrongly typed setting).
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable, Iterable
from typing import Any

from target_salesforce_crm.settings import SECRET_SETTINGS

_MASK = "*****"
_DISTINCTIVE_LENGTH = 8
_DISTINCTIVE_LENGTH_WITH_NON_LETTER = 6


def is_distinctive(secret: str) -> bool:
    """Long enough (or odd enough) that finding it inside other text means it leaked."""
    if len(secret) >= _DISTINCTIVE_LENGTH:
        return True
    return len(secret) >= _DISTINCTIVE_LENGTH_WITH_NON_LETTER and not secret.isalpha()


@functools.lru_cache(maxsize=256)
def _standalone(secret: str) -> re.Pattern[str]:
    return re.compile(rf"(?<!\w){re.escape(secret)}(?!\w)")


def mask(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret masked, longest first (one may contain another)."""
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        if secret not in text:
            continue
        if is_distinctive(secret):
            text = text.replace(secret, _MASK)
        else:
            text = _standalone(secret).sub(_MASK, text)
    return text


class SecretFilter(logging.Filter):
    """Masks known secret values in log records; installed on the root handlers."""

    _secrets: set[str] = set()
    _providers: list[Callable[[], Iterable[str]]] = []
    _installed = False

    @classmethod
    def install(cls, secrets: Iterable[str]) -> None:
        cls._secrets.update(s for s in secrets if s)
        if cls._installed:
            return
        cls._installed = True
        instance = cls()
        for handler in logging.getLogger().handlers:
            handler.addFilter(instance)
        logging.getLogger("target-salesforce-crm").addFilter(instance)

    @classmethod
    def install_provider(cls, provider: Callable[[], Iterable[str]]) -> None:
        """Secrets that appear later (access and rotated refresh tokens)."""
        cls._providers.append(provider)

    @classmethod
    def redact(cls, text: str) -> str:
        secrets = set(cls._secrets)
        for provider in cls._providers:
            secrets.update(provider())
        return mask(text, secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = self.redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


def mask_config_secrets(text: str, config: dict[str, Any]) -> str:
    """Config errors are raised before the log filter knows the secrets: mask them here."""
    return mask(text, (str(config[k]) for k in SECRET_SETTINGS if config.get(k) not in (None, "")))
