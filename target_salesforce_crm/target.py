"""target-salesforce-crm: settings, sinks, and the run's start and end."""

from __future__ import annotations

import contextlib
import signal
import sys
import time
import typing as t
from types import FrameType

from singer_sdk.exceptions import (
    ConfigValidationError,
    InvalidJSONSchema,
    MissingKeyPropertiesError,
    RecordsWithoutSchemaException,
)
from singer_sdk.mapper import SameRecordTransform
from singer_sdk.plugin_base import _ConfigInput
from singer_sdk.singerlib.exceptions import InvalidInputLine
from singer_sdk.sinks import Sink
from singer_sdk.target_base import Target

from target_salesforce_crm.checkpoints import Checkpoints
from target_salesforce_crm.config_schema import CONFIG_SCHEMA
from target_salesforce_crm.deadletter import DeadLetterUnwritable
from target_salesforce_crm.paths import Flattening, flattening_problems
from target_salesforce_crm.reader import QuietSingerReader
from target_salesforce_crm.redaction import SecretFilter, mask_config_secrets
from target_salesforce_crm.runtime import Runtime, collect_garbage_rarely
from target_salesforce_crm.salesforce.errors import ApiLimitReached, TargetError
from target_salesforce_crm.settings import Settings, SettingsError, parse_settings
from target_salesforce_crm.sinks import SalesforceSink
from target_salesforce_crm.stats import RunStats, write_report


class TerminationRequested(BaseException):
    """Raised out of the reader on SIGTERM/SIGINT (a BaseException: nothing swallows it)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


IDLE_FLUSH_SECONDS = 5.0  # no RECORD for this long: the partial chunks are sent
INPUT_ERRORS = (
    InvalidInputLine, RecordsWithoutSchemaException, MissingKeyPropertiesError, InvalidJSONSchema,
)


class TargetSalesforceCRM(Target):
    """Keeps Salesforce Contacts or Leads up to date from profiles and segment memberships."""

    name = "target-salesforce-crm"
    package_name = "target-salesforce-crm"
    config_jsonschema = CONFIG_SCHEMA
    default_sink_class = SalesforceSink
    message_reader_class = QuietSingerReader
    _MAX_RECORD_AGE_IN_MINUTES = 1.0
    _BULK_JOB_AGES = 10  # while RECORDs keep coming, a Bulk spool runs every 10th max age

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        self._finished = False
        self._busy = False
        self._termination: int | None = None
        self._dry_run_state_noted = False
        self._last_record = time.monotonic()
        self._emitted_state: dict | None = None
        self._next_partial_flush = time.monotonic() + 60 * self._MAX_RECORD_AGE_IN_MINUTES
        # once a second (more often only when a test lowers the max age below a minute)
        self._tick_seconds = min(1.0, 15 * self._MAX_RECORD_AGE_IN_MINUTES)
        self._next_tick = 0.0
        self._plain_sinks: dict[str, SalesforceSink] = {}
        super().__init__(*args, **kwargs)
        self.max_parallelism = 1
        self.settings: Settings = parse_settings(dict(self.config))
        SecretFilter.install(self.settings.credentials.values())
        self.runtime = Runtime(self.settings, Flattening.from_config(self.config))
        SecretFilter.install_provider(self.runtime.client.tokens.secrets)
        self.checkpoints = Checkpoints(self.runtime.pending, self.runtime.dispatcher)
        self.runtime.dispatcher.on_submit = self.checkpoints.note_sent

    @classmethod
    def append_builtin_config(cls, config_jsonschema: dict) -> None:
        """The SDK's ``load_method`` is for SQL targets; this one only updates or upserts."""
        super().append_builtin_config(config_jsonschema)
        config_jsonschema["properties"].pop("load_method", None)

    def _validate_config(self, *, raise_errors: bool = True) -> list[str]:
        """Schema and cross-field problems together, one message each, secrets masked."""
        config = dict(self.config)
        errors = super()._validate_config(raise_errors=False)
        try:
            settings = parse_settings(config)
        except SettingsError as exc:
            errors = errors + exc.problems
        except (TypeError, ValueError):
            if not errors:
                raise
        else:  # paths that the SDK's flattening would hide from the mapping
            errors = errors + flattening_problems(settings, Flattening.from_config(config))
        errors = [mask_config_secrets(error, config) for error in errors]
        if errors and raise_errors:
            _report_config_failure(config, errors)
            raise ConfigValidationError(
                "Config validation failed", errors=errors, schema=self.config_jsonschema
            )
        return errors

    def _our_sinks(self) -> list[SalesforceSink]:
        """The SDK's own sinks: those retired by a schema change first, then the active ones."""
        sinks = [*self._sinks_to_clear, *self._sinks_active.values()]
        return [sink for sink in sinks if isinstance(sink, SalesforceSink)]

    def _flush_sinks(self, bulk_every: int | None = None) -> None:
        """Send every sink's partial chunk, and run the Bulk spools (with ``bulk_every``: those
        that have waited that many of these flushes)."""
        for sink in self._our_sinks():
            sink.flush()
        self.runtime.bulk.land(bulk_every)

    def get_sink(self, stream_name: str, *, record: dict | None = None,
                 schema: dict | None = None, key_properties: t.Sequence[str] | None = None
                 ) -> Sink:
        """After a schema change, what the retired sink holds goes out before the new sink
        receives its first record."""
        sink = super().get_sink(stream_name, record=record, schema=schema,
                                key_properties=key_properties)
        for retired in self._sinks_to_clear:
            if isinstance(retired, SalesforceSink):
                retired.flush()
        return sink

    def _write_state_message(self, state: dict) -> None:
        """The SDK's drain at the end (or at a signal): send and land everything read, then
        emit the latest STATE, which is now safe."""
        self._flush_sinks()
        self.runtime.land_everything()
        self._emit_safe_state()

    def _emit_safe_state(self) -> None:
        """Emit the latest STATE whose records have all landed or are durably dead-lettered."""
        state = self.checkpoints.take_safe()
        if state is None or state == self._emitted_state:
            return
        if self.settings.dry_run:
            if not self._dry_run_state_noted:
                self._dry_run_state_noted = True
                self.logger.info("dry run: STATE not emitted, so a real run starts from the same "
                                 "place")
            return
        self.runtime.dead_letter.sync()
        super()._write_state_message(state)
        self._emitted_state = state

    def _tick(self, now: float) -> None:
        """Once a second, between messages or from the idle alarm: send the partial chunks
        when no RECORD came for IDLE_FLUSH_SECONDS or once per max age (so a slow stream
        still streams; every other call carries a full batch), then emit the latest safe
        STATE."""
        self._next_tick = now + self._tick_seconds
        idle = now - self._last_record >= IDLE_FLUSH_SECONDS
        # membership writes pooled by earlier ticks' chunks: all when idle, else once stale
        self.runtime.write_pooled(None if idle else 60 * self._MAX_RECORD_AGE_IN_MINUTES)
        if idle or now >= self._next_partial_flush:
            # a steady stream: a Bulk job (a dozen calls or more) only every _BULK_JOB_AGES
            # max ages, so a fast input read for minutes fills one job instead of one a minute
            self._flush_sinks(None if idle else self._BULK_JOB_AGES)
            for redirect in self.runtime.redirector.ready(flush=True):  # moved records too
                self.runtime.dispatcher.submit(redirect)
            # counted from the end: a flush that ran a Bulk job for minutes is not followed
            # at once by another (a job of the few records read since)
            self._next_partial_flush = time.monotonic() + 60 * self._MAX_RECORD_AGE_IN_MINUTES
        self._emit_safe_state()

    def _handle_max_record_age(self) -> None:
        """The SDK's age check would drain and wait for every call; ``_tick`` does its job."""

    def _handle_termination(self, signum: int, frame: FrameType | None) -> None:
        """SIGTERM/SIGINT: stop reading at a message boundary; ``invoke`` then drains.

        Draining inside the handler could re-enter a lock the interrupted code holds, so the
        handler only unwinds the reader, at once when idle or after the current message.
        """
        self.logger.info("received signal %d: landing everything read so far, then stopping",
                         signum)
        self._termination = signum
        self.runtime.request_stop()
        if not self._busy:
            raise TerminationRequested(signum)

    def _guarded(self, handler: t.Callable[[dict], None], message: dict, *,
                 record: bool = False) -> None:
        """Run one message's handler as ``_busy``; an error leaves ``_busy`` set, so that no
        signal handler acts while the run unwinds to its one error message."""
        self._busy = True
        handler(message)
        now = time.monotonic()
        if record:
            self._last_record = now
        if now >= self._next_tick:
            self._tick(now)
        self._busy = False
        if self._termination is not None:
            raise TerminationRequested(self._termination)

    def _process_record_message(self, message_dict: dict) -> None:
        self._guarded(self._process_record, message_dict, record=True)

    def _process_record(self, message_dict: dict) -> None:
        """A stream without stream maps skips the SDK's generic path (a record copy and an
        identity transform per record); the steps that matter are in ``SalesforceSink.take``."""
        stream_name = message_dict.get("stream")
        sink = self._plain_sinks.get(stream_name)  # type: ignore[arg-type]
        record = message_dict.get("record")
        if (
            sink is None
            or not isinstance(record, dict)
            or sink is not self._sinks_active.get(stream_name)  # type: ignore[arg-type]
        ):
            super()._process_record_message(message_dict)
            return
        if sink.take(record, message_dict):
            self.drain_one(sink)

    def _process_schema_message(self, message_dict: dict) -> None:
        self._guarded(super()._process_schema_message, message_dict)
        stream_name = message_dict.get("stream")
        if isinstance(stream_name, str):
            self._note_plain_stream(stream_name)

    def _note_plain_stream(self, stream_name: str) -> None:
        maps = self.mapper.stream_maps.get(stream_name, [])
        sink = self._sinks_active.get(stream_name)
        plain = (
            len(maps) == 1
            and type(maps[0]) is SameRecordTransform
            and maps[0].stream_alias == stream_name
            and not maps[0].flattening_enabled
            and isinstance(sink, SalesforceSink)
        )
        if plain:
            self._plain_sinks[stream_name] = t.cast(SalesforceSink, sink)
        else:
            self._plain_sinks.pop(stream_name, None)

    def _process_state_message(self, message_dict: dict) -> None:
        self._guarded(self._note_state, message_dict)

    def _note_state(self, message_dict: dict) -> None:
        latest = self._latest_state
        super()._process_state_message(message_dict)
        if self._latest_state is not latest:  # the SDK ignores a repeat of the latest STATE
            self.checkpoints.arrived(self._latest_state)

    def _process_activate_version_message(self, message_dict: dict) -> None:
        self._guarded(super()._process_activate_version_message, message_dict)

    def _process_batch_message(self, message_dict: dict) -> None:
        """BATCH files would bypass mapping and dead-lettering: refuse them clearly."""
        raise InvalidInputLine(
            f"BATCH messages (stream {message_dict.get('stream')!r}) are not supported; turn "
            "off batch_config on the tap so that it sends RECORD messages"
        )

    def _on_idle_alarm(self, signum: int, frame: FrameType | None) -> None:
        """SIGALRM, once a second: while the tap is quiet (or sends only STATE heartbeats),
        the partial chunks still go out after IDLE_FLUSH_SECONDS and STATE follows what lands.

        Only while the main thread waits in the reader (not ``_busy``), where none of our
        locks or buffers is in use; an error raised here ends the run like any other, and a
        SIGTERM that came meanwhile is acted on at once."""
        if self._busy:
            return
        self._busy = True
        self._tick(time.monotonic())  # an error leaves ``_busy`` set, as in ``_guarded``
        self._busy = False
        if self._termination is not None:
            raise TerminationRequested(self._termination)

    def watch_idle_input(self) -> None:
        """Arm the idle check (CLI runs only: signals belong to the process)."""
        if hasattr(signal, "setitimer"):
            signal.signal(signal.SIGALRM, self._on_idle_alarm)
            signal.setitimer(signal.ITIMER_REAL, self._tick_seconds, self._tick_seconds)

    def stop_after_signal(self, signum: int) -> None:
        """Land everything read, emit STATE for it, report the run as interrupted."""
        self._busy = True
        self.drain_all(is_endofpipe=True)
        self.finish(error=None, status="interrupted")
        self.logger.info("stopped by signal %d after landing everything read; STATE covers it",
                         signum)

    def process_endofpipe(self) -> None:
        self._busy = True  # a signal now only lets the final drain finish
        super().process_endofpipe()
        self._flush_sinks()
        self.runtime.land_everything()
        self.finish(error=None)

    def finish(self, error: str | None, status: str | None = None) -> None:
        """Summary, run report and shutdown, exactly once per run (also on failure)."""
        if self._finished:
            return
        self._finished = True
        self._busy = True  # a signal now must not interrupt the report
        if hasattr(signal, "setitimer"):
            signal.setitimer(signal.ITIMER_REAL, 0)
        # also after a failure: the calls in flight end, and STATE moves as far as they allow
        self.runtime.dispatcher.wait_idle(raise_failure=False)
        with contextlib.suppress(DeadLetterUnwritable):  # already reported; no STATE then
            self._emit_safe_state()
        self.runtime.finish(error, status)

    @classmethod
    def invoke(  # type: ignore[override]
        cls,
        *,
        about: bool = False,
        about_format: str | None = None,
        config: _ConfigInput | None = None,
        file_input: t.IO[str] | None = None,
    ) -> None:
        """Run the target; a TargetError ends the run with one clear message and its exit code."""
        if about:
            cls.print_about(about_format)
            sys.exit(0)
        cls.print_version(print_fn=cls.logger.info)
        config = config or _ConfigInput()
        try:
            target = cls(config=config.config, validate_config=True,
                         parse_env_config=config.parse_env)
        except TargetError as exc:  # e.g. an unusable rejected_records_path
            cls.logger.error("%s", SecretFilter.redact(str(exc)))
            sys.exit(exc.exit_code)
        target.watch_idle_input()
        collect_garbage_rarely()
        try:
            try:
                target.listen(file_input)
            except TerminationRequested as stop:
                target.stop_after_signal(stop.signum)
                sys.exit(0)
        except INPUT_ERRORS as exc:
            message = SecretFilter.redact(f"bad Singer input: {exc}")
            target.finish(error=message)
            cls.logger.error("%s", message)
            sys.exit(1)
        except TargetError as exc:
            message = SecretFilter.redact(str(exc))
            target.finish(error=message)
            cls.logger.error("%s", message)
            if isinstance(exc, ApiLimitReached):
                cls.logger.error(
                    "STATE was emitted only for records that landed; re-run to resume"
                )
            sys.exit(exc.exit_code)
        except Exception as exc:
            target.finish(error=SecretFilter.redact(f"{type(exc).__name__}: {exc}"))
            raise


def _report_config_failure(config: dict[str, t.Any], errors: list[str]) -> None:
    """``run_report_path`` promises a report also on failure, config failures included."""
    path = config.get("run_report_path")
    if isinstance(path, str) and path:
        message = "; ".join(errors)
        write_report(path, RunStats().report({}, error=f"configuration refused: {message}"))


if __name__ == "__main__":
    TargetSalesforceCRM.cli()
