"""Masking secrets without garbling the lines around them (redaction.py).

A distinctive secret is masked wherever it appears; a short one only where it stands alone,
so a one-letter password does not turn every "p" of an error message into the mask. The
end-to-end runs go through the CLI: the error a user reads stays readable, and no secret,
short or long, appears in any output.
"""

from __future__ import annotations

import re

import pytest
from conftest import CREDENTIALS, base_config, profile, run_target, seed_contacts, singer_lines

from target_salesforce_crm.redaction import is_distinctive, mask

MASK = "*****"


@pytest.mark.parametrize("secret", ["Pw-Qx71-Lb93", "emulator-password", "hunter22", "pa55wd"])
def test_a_distinctive_secret_is_masked_even_inside_other_text(secret: str) -> None:
    assert is_distinctive(secret)
    assert mask(f"login as x with {secret}TOKEN failed", [secret]) == (
        f"login as x with {MASK}TOKEN failed"
    )


@pytest.mark.parametrize("secret", ["p", "pass", "1234", "secret"])
def test_a_short_secret_leaves_words_that_contain_it_alone(secret: str) -> None:
    assert not is_distinctive(secret)
    line = "check username, password and secret_token (the username-password flow, 12345)"
    assert mask(line, [secret]) == line


@pytest.mark.parametrize("secret", ["p", "1234"])
def test_a_short_secret_standing_alone_is_masked(secret: str) -> None:
    assert mask(f"{secret} is not of type 'string' in config['password']", [secret]) == (
        f"{MASK} is not of type 'string' in config['password']"
    )
    assert mask(f"value '{secret}' refused", [secret]) == f"value '{MASK}' refused"


def test_a_secret_containing_another_is_masked_whole() -> None:
    assert mask("sent Pw-Qx71-Lb93TkQ", ["TkQ", "Pw-Qx71-Lb93TkQ"]) == f"sent {MASK}"


def shows(text: str, secret: str) -> bool:
    """A distinctive secret anywhere; a short one where it stands alone ("p" in "password" is
    only a letter of a word)."""
    if is_distinctive(secret):
        return secret in text
    return re.search(rf"(?<!\w){re.escape(secret)}(?!\w)", text) is not None


@pytest.mark.parametrize("password", ["p", "pass", "Zq9x"])
def test_failed_login_with_a_short_password_reads_clearly_and_shows_no_secret(
    emulator, tmp_path, password: str
) -> None:
    ids = seed_contacts(emulator, 2)
    config = base_config(emulator, tmp_path, password=password)
    run = run_target(config, singer_lines("contacts", [profile(ids[0], 0)]), tmp_path,
                     env={"LOGLEVEL": "DEBUG"})

    assert run.returncode == 1
    error = next(line for line in run.stderr.splitlines() if "refused the password login" in line)
    assert "check username, password and security_token" in error
    assert "username-password flow" in error
    assert MASK not in run.stderr  # nothing needed masking: no secret was written
    outputs = {"stderr": run.stderr, "stdout": run.stdout,
               "report": (tmp_path / "report.json").read_text()}
    secrets = [password] + [CREDENTIALS[name] for name in ("username", "security_token",
                                                           "client_id", "client_secret")]
    leaks = [(secret, where) for secret in secrets for where, text in outputs.items()
             if shows(text, secret)]
    assert leaks == []


def test_config_errors_with_a_one_letter_password_read_clearly(emulator, tmp_path) -> None:
    config = base_config(emulator, tmp_path, password="p", operation="upsert")
    run = run_target(config, "", tmp_path)

    assert run.returncode != 0
    assert "operation 'upsert' needs external_id_field (the Salesforce field)" in run.stderr
    assert "operation 'upsert' needs external_id_source (the record path)" in run.stderr
    assert MASK not in run.stderr


def test_a_wrongly_typed_short_secret_is_not_echoed(emulator, tmp_path) -> None:
    config = base_config(emulator, tmp_path, password=4321)
    run = run_target(config, "", tmp_path)

    assert run.returncode != 0
    assert "config['password']" in run.stderr
    assert "4321" not in run.stderr
    assert "4321" not in (tmp_path / "report.json").read_text()
