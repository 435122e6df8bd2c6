"""The fence around the singer-sdk internals the target uses (``sdk_privates.py``).

An SDK upgrade that renames one of them, or adds a step to its per-record path, fails here
instead of silently skipping an override or a step. The last tests run records in process
against the emulator: a stream without maps takes the fast path, one with maps the SDK's, and
a sink's ``preprocess_record`` runs on either.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import io
import json
import textwrap
from typing import Any

import pytest
from conftest import base_config, profile, seed_contacts, singer_lines
from singer_sdk import typing as th
from singer_sdk.sinks import BatchSink, Sink
from singer_sdk.target_base import Target

from target_salesforce_crm.sdk_privates import (
    SDK_PRIVATES,
    SDK_RECORD_STEPS,
    SKIPPED_RECORD_STEPS,
)
from target_salesforce_crm.sinks import SalesforceSink
from target_salesforce_crm.target import TargetSalesforceCRM

# --------------------------------------------------------------------------- the SDK's side


class ProbeSink(BatchSink):
    def process_batch(self, context: dict) -> None:
        """Nothing: the probe only needs a live sink to look at."""


class ProbeTarget(Target):
    """A bare singer-sdk target: attributes the SDK sets in __init__ are looked up on it."""

    name = "target-probe"
    config_jsonschema = th.PropertiesList().to_dict()
    default_sink_class = ProbeSink


@pytest.fixture(scope="module")
def probe() -> tuple[Target, Sink]:
    target = ProbeTarget(config={})
    schema = {"type": "SCHEMA", "stream": "s", "key_properties": [],
              "schema": {"type": "object", "properties": {"a": {"type": "string"}}}}
    target.process_lines(io.StringIO(json.dumps(schema) + "\n"))
    return target, target.get_sink("s")


def resolve(where: str) -> Any:
    module_name, _, class_name = where.partition(":")
    module = importlib.import_module(module_name)
    return getattr(module, class_name) if class_name else module


@pytest.mark.parametrize(
    ("where", "name"), [(where, name) for where, name, _ in SDK_PRIVATES]
)
def test_sdk_private_still_exists(where: str, name: str, probe: tuple[Target, Sink]) -> None:
    owner = resolve(where)
    target, sink = probe
    instances = [obj for obj in (target, sink, target.message_reader)
                 if inspect.isclass(owner) and isinstance(obj, owner)]
    assert hasattr(owner, name) or any(hasattr(obj, name) for obj in instances), (
        f"singer-sdk no longer has {where}.{name}: see sdk_privates.py for what depends on it"
    )


def calls_on(function: Any, receiver: str) -> list[str]:
    """The attributes of ``receiver`` that ``function`` calls, in source order
    (``receiver.a.b()`` counts as ``a``)."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        chain = node.func
        while isinstance(chain, ast.Attribute) and not (
            isinstance(chain.value, ast.Name) and chain.value.id == receiver
        ):
            chain = chain.value
        if isinstance(chain, ast.Attribute):
            found.append((node.lineno, node.col_offset, chain.attr))
    return [name for _, _, name in sorted(found)]


def test_the_sdk_record_path_takes_the_steps_we_repeat() -> None:
    """If the SDK adds, drops or reorders a per-record step, SalesforceSink.take must follow."""
    assert calls_on(Target._process_record_message, "sink") == list(SDK_RECORD_STEPS)


def test_take_repeats_every_sdk_step_but_the_skipped_ones_in_order() -> None:
    ours = calls_on(SalesforceSink.take, "self")
    expected = [step for step in SDK_RECORD_STEPS if step not in SKIPPED_RECORD_STEPS]
    assert [name for name in ours if name in SDK_RECORD_STEPS] == expected


def test_the_skipped_after_process_record_only_logs() -> None:
    """take skips Sink._after_process_record; that is safe while it does nothing but a debug
    log and nobody between Sink and SalesforceSink overrides it."""
    assert SalesforceSink._after_process_record is Sink._after_process_record
    [function] = ast.parse(textwrap.dedent(inspect.getsource(Sink._after_process_record))).body
    statements = [s for s in function.body
                  if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))]
    assert len(statements) == 1
    assert ast.unparse(statements[0]).startswith("self.logger.debug(")


# --------------------------------------------------------------------------- in process


class CountingSink(SalesforceSink):
    """Counts which road each record took: ``take`` is the fast path only."""

    taken = 0
    processed = 0

    def take(self, record: dict, message: dict) -> bool:
        type(self).taken += 1
        return super().take(record, message)

    def process_record(self, record: dict, context: dict) -> None:
        type(self).processed += 1
        super().process_record(record, context)


class ShoutingSink(CountingSink):
    """A subclass hook: every last name in capitals before mapping."""

    def preprocess_record(self, record: dict, context: dict) -> dict:
        name = record["person"]["name"]
        return {**record, "person": {**record["person"], "name": {
            **name, "lastName": name["lastName"].upper()}}}


def run_in_process(sink_class: type[CountingSink], config: dict, lines: str) -> Target:
    sink_class.taken = sink_class.processed = 0
    target_class = type("InProcessTarget", (TargetSalesforceCRM,),
                        {"default_sink_class": sink_class})
    target = target_class(config=config, validate_config=True)
    target.listen(io.StringIO(lines))
    return target


@pytest.mark.parametrize(
    ("stream_maps", "fast"),
    [
        ({}, True),
        ({"profiles": {"__alias__": "contacts"}}, False),
    ],
)
def test_stream_maps_decide_the_path(emulator, tmp_path, stream_maps: dict, fast: bool) -> None:
    ids = seed_contacts(emulator, 5)
    config = base_config(emulator, tmp_path, stream_maps=stream_maps)
    lines = singer_lines("profiles", [profile(i, n) for n, i in enumerate(ids)])
    run_in_process(CountingSink, config, lines)

    assert CountingSink.processed == 5
    assert CountingSink.taken == (5 if fast else 0)
    assert [emulator.get("Contact", i)["LastName"] for i in ids] == [f"Last{n}" for n in range(5)]


@pytest.mark.parametrize("stream_maps", [{}, {"profiles": {"__alias__": "contacts"}}])
def test_preprocess_record_runs_on_either_path(emulator, tmp_path, stream_maps: dict) -> None:
    ids = seed_contacts(emulator, 3)
    config = base_config(emulator, tmp_path, stream_maps=stream_maps)
    lines = singer_lines("profiles", [profile(i, n) for n, i in enumerate(ids)])
    run_in_process(ShoutingSink, config, lines)

    assert ShoutingSink.processed == 3
    assert [emulator.get("Contact", i)["LastName"] for i in ids] == ["LAST0", "LAST1", "LAST2"]
