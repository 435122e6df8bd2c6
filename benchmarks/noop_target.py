"""A no-op singer-sdk target: the baseline the benchmark compares target-salesforce-crm against.

    python benchmarks/noop_target.py --config noop.json < input.singer

It reads and validates every record exactly as any singer-sdk 0.54 target does (reader, stream
maps, record validation, timestamp parsing, key-property checks, tallies, draining every 200
records like SalesforceSink) and then throws the batch away. Config:

    {"validator": "default"}   # the SDK's own jsonschema Draft 2020-12 validator
    {"validator": "fast"}      # fastjsonschema compiled once per stream, like the fallback of
                               # the product's CompiledValidator (use_formats=False)

``validate_records`` stays at the SDK default (true) in both cases, so the only difference
from the real target is what happens after a record has been validated.
"""

from __future__ import annotations

from typing import Any

import fastjsonschema
from singer_sdk import typing as th
from singer_sdk.exceptions import InvalidJSONSchema, InvalidRecord
from singer_sdk.sinks import BatchSink
from singer_sdk.sinks.core import BaseJSONSchemaValidator
from singer_sdk.target_base import Target


class FastValidator(BaseJSONSchemaValidator):
    """The fastjsonschema half of target_salesforce_crm.validation.CompiledValidator, built the
    same way but kept independent (and without the product's quick check)."""

    def __init__(self, schema: dict[str, Any]) -> None:
        super().__init__(schema)
        try:
            self._validate = fastjsonschema.compile(schema, use_formats=False)
        except fastjsonschema.JsonSchemaDefinitionException as exc:
            raise InvalidJSONSchema(f"Schema Validation Error: {exc}") from exc

    def validate(self, record: dict[str, Any]) -> None:
        try:
            self._validate(record)
        except fastjsonschema.JsonSchemaValueException as exc:
            raise InvalidRecord(str(exc), record) from None


class NoopSink(BatchSink):
    """Buffers records (BatchSink.process_record appends them) and discards each batch."""

    MAX_SIZE_DEFAULT = 200  # drain as often as SalesforceSink does

    def get_validator(self) -> BaseJSONSchemaValidator | None:
        if not self.validate_schema:
            return None
        if self.config.get("validator", "default") == "fast":
            return FastValidator(self.schema)
        return super().get_validator()

    def process_batch(self, context: dict) -> None:
        """Do nothing."""


class NoopTarget(Target):
    name = "target-noop-bench"
    config_jsonschema = th.PropertiesList(
        th.Property("validator", th.StringType, default="default",
                    allowed_values=["default", "fast"]),
    ).to_dict()
    default_sink_class = NoopSink


if __name__ == "__main__":
    NoopTarget.cli()
