"""Keep secrets out of every log line, whoever logs it (our code, the SDK, urllib3)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from target_salesforce_crm.settings import SECRET_SETTINGS

_MIN_SECRET_LENGTH = 4
_MASK = "*****"


class SecretFilter(logging.Filter):
    """Masks known secret values in log records; installed on the root handlers."""

    _secrets: set[str] = set()
    _providers: list[Callable[[], Iterable[str]]] = []
    _installed = False

    @classmethod
    def install(cls, secrets: Iterable[str]) -> None:
        cls._secrets.update(s for s in secrets if s and len(s) >= _MIN_SECRET_LENGTH)
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
            secrets.update(s for s in provider() if s and len(s) >= _MIN_SECRET_LENGTH)
        for secret in sorted(secrets, key=len, reverse=True):
            if secret in text:
                text = text.replace(secret, _MASK)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = self.redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


def mask_config_secrets(text: str, config: dict[str, Any]) -> str:
    """Config errors are raised before the log filter knows the secrets: mask them here."""
    secrets = [str(config[k]) for k in SECRET_SETTINGS if config.get(k) not in (None, "")]
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, _MASK)
    return text
