"""The singer-sdk internals this target depends on, listed in one place.

singer-sdk promises nothing about underscore names. The fast RECORD path (``SalesforceSink.take``,
``TargetSalesforceCRM._process_record``) repeats the SDK's per-record steps, and the target
overrides some private hooks; a rename in a new SDK release would break them silently (an
override of a renamed hook is simply never called). ``tests/test_sdk_fence.py`` checks that
every name below still exists on the installed singer-sdk and that the SDK's record path still
takes exactly the steps ``take`` repeats. Nothing imports this module at run time.

Each entry: (where, name, why we need it). ``where`` is ``module:Class`` or a module.
"""

from __future__ import annotations

TARGET = "singer_sdk.target_base:Target"
SINK = "singer_sdk.sinks.core:Sink"
READER = "singer_sdk.singerlib.encoding.base:GenericSingerReader"

SDK_PRIVATES: tuple[tuple[str, str, str], ...] = (
    (TARGET, "_sinks_active", "the live sink per stream: fast path check, flushes"),
    (TARGET, "_sinks_to_clear", "sinks retired by a schema change: flushed first"),
    (TARGET, "_latest_state", "a STATE the SDK took as new is handed to Checkpoints"),
    (TARGET, "_MAX_RECORD_AGE_IN_MINUTES", "lowered so partial chunks go out once a minute"),
    (TARGET, "_handle_max_record_age", "overridden: a no-op, the once-a-second tick does it"),
    (TARGET, "_write_state_message", "overridden: STATE only after its records landed"),
    (TARGET, "_process_record_message", "overridden: the fast path; maps go to the SDK's"),
    (TARGET, "_process_schema_message", "overridden: notes which streams have no maps"),
    (TARGET, "_process_state_message", "overridden: guarded against signals mid-message"),
    (TARGET, "_process_activate_version_message", "overridden: guarded the same way"),
    (TARGET, "_process_batch_message", "overridden: BATCH messages refused clearly"),
    (TARGET, "_handle_termination", "overridden: SIGTERM lands what was read, then stops"),
    (TARGET, "_validate_config", "overridden: schema and cross-field problems together"),
    ("singer_sdk.plugin_base", "_ConfigInput", "the config argument of the overridden invoke"),
    (SINK, "_get_context", "fast path: the record's context, as the SDK computes it"),
    (SINK, "_add_sdc_metadata_to_record", "fast path: add_record_metadata columns"),
    (SINK, "_remove_sdc_metadata_from_record", "fast path: _sdc_ columns dropped otherwise"),
    (SINK, "_validate_and_parse", "overridden: an invalid record is dead-lettered, not fatal"),
    (SINK, "_singer_validate_message", "overridden: a missing key property dead-letters"),
    (SINK, "_validator", "the validator from get_validator, used by _validate_and_parse"),
    (SINK, "_record_counter", "fast path: the record counter metric, fed in steps of 64"),
    (SINK, "_batch_records_read", "fast path: records read since the last drain"),
    (READER, "_process_unknown_message", "the replacement process_lines keeps its handling"),
    ("singer_sdk.helpers._compat", "datetime_fromisoformat", "date parsing as the SDK does it"),
    ("singer_sdk.helpers._compat", "date_fromisoformat", "date parsing as the SDK does it"),
    ("singer_sdk.helpers._compat", "time_fromisoformat", "time parsing as the SDK does it"),
    ("singer_sdk.helpers._typing", "get_datelike_property_type", "which fields hold dates"),
    ("singer_sdk.helpers._flattening", "flatten_key",
     "paths.py mirrors it: keys of max_key_length or more are shortened"),
    ("singer_sdk.helpers._flattening", "flatten_record",
     "paths.py reads its output: joined keys down to the depth, JSON text below"),
)

# What the SDK's Target._process_record_message does to each record, in order (the calls it
# makes on the sink). SalesforceSink.take makes the same calls, except the two named below.
SDK_RECORD_STEPS: tuple[str, ...] = (
    "_get_context",
    "_add_sdc_metadata_to_record",
    "_remove_sdc_metadata_from_record",
    "_validate_and_parse",
    "preprocess_record",
    "_singer_validate_message",
    "tally_record_read",
    "process_record",
    "record_counter_metric",
    "_after_process_record",
)
SKIPPED_RECORD_STEPS = {
    "record_counter_metric": "take feeds the same counter in steps of 64 (_record_counter)",
    "_after_process_record": "a debug log line per record and nothing else",
}
