"""One settings object: every knob with its dotted name, env var, default and meaning.

The same name appears everywhere: ``topic.alerts`` is the env var
``INSIDERWATCH_TOPIC_ALERTS`` and the CLI flag ``--topic-alerts``. Precedence: flag, then
env var, then default. A bad value raises :class:`SettingsError` with one sentence.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Settings", "SettingsError", "UserError", "SETTINGS_DOC", "env_name", "flag_name"]


class SettingsError(ValueError):
    """A configuration value that cannot be used."""


class UserError(Exception):
    """An error the user can fix (a bad argument, a missing file or alert); the CLI prints
    it as one sentence."""


# dotted name -> (default, meaning). Order is the order of the README table.
SETTINGS_DOC: dict[str, tuple[object, str]] = {
    "broker": ("127.0.0.1:9092", "Kafka bootstrap servers, comma-separated host:port"),
    "topic.events": ("access-events", "input topic of access events (key = actor_id)"),
    "topic.alerts": ("insiderwatch-alerts", "output topic of alerts"),
    "topic.dlq": (
        "access-events-dlq",
        "dead-letter topic: events that could not be scored, with reason",
    ),
    "topic.scores": (
        "",
        "optional topic with every event's verdict (score, flagged, source offset); empty = off",
    ),
    "topic.pulse": (
        "insiderwatch-pulse",
        "compacted topic of each role's events per hour, which every worker feeds and reads "
        "whole (the role pulse)",
    ),
    "topic.feedback": (
        "insiderwatch-feedback",
        "compacted topic of analysts' verdicts on alerts (key = alert id), which every worker "
        "reads whole (suppression)",
    ),
    "topic.context": (
        "insiderwatch-context",
        "compacted topic of actor context (key = actor id: leavers, watchlists, privileged and "
        "service accounts, exclusions), which every worker reads whole",
    ),
    "topic.suppressed": (
        "insiderwatch-suppressed",
        "alerts held back by a verdict or an exclusion (key = actor id), for the actor timeline",
    ),
    "topic.partitions": (6, "partitions of the events topic (the unit of scale-out)"),
    "topic.replication": (1, "replication factor for created topics"),
    "app.id": (
        "insiderwatch",
        "consumer group / Faust app id; workers with the same id share the work",
    ),
    "model.dir": (".local/model", "model artifact directory (manifest.json + model.npz)"),
    # 8000, not 1000: one fetch is at most one batch (stream/app.py), and fetches of 1000 left
    # the worker waiting on Faust's consumer thread (BENCHMARKS.md, "Pipeline").
    "batch.max.events": (8000, "micro-batch size: events scored together"),
    "batch.max.ms": (50, "longest wait to fill a micro-batch, in milliseconds"),
    "store": (
        "rocksdb://",
        "Faust table store: rocksdb:// (actor states on local disk under data.dir) or memory:// "
        "(tests; a restart reads the whole changelog back)",
    ),
    "data.dir": (".local/worker", "worker data directory (table stores)"),
    "web.host": ("127.0.0.1", "bind address of the worker's web server (health, metrics)"),
    "web.port": (6066, "port of the worker's web server"),
    "alert.format": ("native", "alert output format: native or ocsf"),
    "pseudonymize.key": (
        "",
        "HMAC key for pseudonymizing resource ids and IPs in alerts (empty = off)",
    ),
    "security.protocol": (
        "PLAINTEXT",
        "Kafka client security: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL",
    ),
    "sasl.mechanism": ("SCRAM-SHA-512", "SASL mechanism: SCRAM-SHA-512, SCRAM-SHA-256 or PLAIN"),
    "sasl.username": ("", "SASL user name"),
    "sasl.password": ("", "SASL password (env var only; prefer sasl.password.file)"),
    "sasl.password.file": ("", "file holding the SASL password (first line)"),
    "ssl.cafile": (
        "",
        "PEM file of the CA(s) that signed the brokers' certificates (empty = system CAs)",
    ),
    "ssl.certfile": ("", "PEM client certificate for mutual TLS (optional)"),
    "ssl.keyfile": ("", "PEM private key of ssl.certfile (optional)"),
    "kafka.home": (".local/kafka", "local broker: jars, data and logs (git-ignored)"),
    "kafka.port": (9092, "local broker: client port on 127.0.0.1"),
    "kafka.controller.port": (9093, "local broker: KRaft controller port on 127.0.0.1"),
    "kafka.heap.mb": (512, "local broker: JVM heap in MiB"),
    "log.level": ("info", "log level: debug, info, warning, error"),
    "log.format": ("text", "worker log format: text or json (one JSON object per line)"),
}
_SECRET = {"pseudonymize.key", "sasl.password"}
SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN")


def env_name(name: str) -> str:
    """``topic.alerts`` -> ``INSIDERWATCH_TOPIC_ALERTS``."""
    return "INSIDERWATCH_" + name.upper().replace(".", "_")


def flag_name(name: str) -> str:
    """``topic.alerts`` -> ``--topic-alerts``."""
    return "--" + name.replace(".", "-")


def _attr(name: str) -> str:
    return name.replace(".", "_")


@dataclass(frozen=True)
class Settings:
    """Resolved settings (see :data:`SETTINGS_DOC` for meanings and defaults)."""

    broker: str
    topic_events: str
    topic_alerts: str
    topic_dlq: str
    topic_scores: str
    topic_pulse: str
    topic_feedback: str
    topic_context: str
    topic_suppressed: str
    topic_partitions: int
    topic_replication: int
    app_id: str
    model_dir: str
    batch_max_events: int
    batch_max_ms: int
    store: str
    data_dir: str
    web_host: str
    web_port: int
    alert_format: str
    pseudonymize_key: str
    security_protocol: str
    sasl_mechanism: str
    sasl_username: str
    sasl_password: str
    sasl_password_file: str
    ssl_cafile: str
    ssl_certfile: str
    ssl_keyfile: str
    kafka_home: str
    kafka_port: int
    kafka_controller_port: int
    kafka_heap_mb: int
    log_level: str
    log_format: str

    @classmethod
    def load(
        cls, overrides: dict[str, object] | None = None, environ: dict | None = None
    ) -> Settings:
        """Resolve every setting from ``overrides`` (CLI flags), the environment, defaults."""
        environ = os.environ if environ is None else environ
        overrides = overrides or {}
        values: dict[str, object] = {}
        for name, (default, _) in SETTINGS_DOC.items():
            raw = overrides.get(name)
            source = flag_name(name)
            if raw is None:
                raw = environ.get(env_name(name))
                source = env_name(name)
            if raw is None or (raw == "" and default != ""):
                values[_attr(name)] = default
                continue
            if isinstance(default, int):
                try:
                    number = int(str(raw))
                except ValueError:
                    raise SettingsError(f"{source} must be an integer, got {raw!r}") from None
                if number <= 0:
                    raise SettingsError(f"{source} must be positive, got {number}")
                values[_attr(name)] = number
            else:
                values[_attr(name)] = str(raw)
        settings = cls(**values)  # type: ignore[arg-type]
        settings.validate()
        return settings

    def validate(self) -> None:
        if self.alert_format not in ("native", "ocsf"):
            raise SettingsError(
                f"alert.format must be 'native' or 'ocsf', got {self.alert_format!r}"
            )
        if self.log_level.lower() not in ("debug", "info", "warning", "error"):
            raise SettingsError(
                f"log.level must be debug, info, warning or error, got {self.log_level!r}"
            )
        if self.log_format not in ("text", "json"):
            raise SettingsError(f"log.format must be 'text' or 'json', got {self.log_format!r}")
        if not self.store.startswith(("memory://", "rocksdb://")):
            raise SettingsError(f"store must be memory:// or rocksdb://, got {self.store!r}")
        self._validate_security()
        for server in self.broker.split(","):
            host, _, port = server.strip().rpartition(":")
            if not host or not port.isdigit():
                raise SettingsError(f"broker must be host:port[,host:port], got {self.broker!r}")

    def _validate_security(self) -> None:
        if self.security_protocol not in SECURITY_PROTOCOLS:
            raise SettingsError(
                f"security.protocol must be one of {', '.join(SECURITY_PROTOCOLS)}, "
                f"got {self.security_protocol!r}"
            )
        for name in ("ssl.cafile", "ssl.certfile", "ssl.keyfile", "sasl.password.file"):
            path = getattr(self, _attr(name))
            if path and not Path(path).is_file():
                raise SettingsError(f"{name} names {path}, which is not a readable file")
        if bool(self.ssl_certfile) != bool(self.ssl_keyfile):
            raise SettingsError("ssl.certfile and ssl.keyfile must be set together (mutual TLS)")
        if not self.security_protocol.startswith("SASL_"):
            return
        if self.sasl_mechanism not in SASL_MECHANISMS:
            raise SettingsError(
                f"sasl.mechanism must be one of {', '.join(SASL_MECHANISMS)}, "
                f"got {self.sasl_mechanism!r}"
            )
        if not self.sasl_username:
            raise SettingsError(f"security.protocol {self.security_protocol} needs sasl.username")
        if not (self.sasl_password or self.sasl_password_file):
            raise SettingsError(
                f"security.protocol {self.security_protocol} needs a password: set "
                f"{env_name('sasl.password.file')} (preferred) or {env_name('sasl.password')}"
            )

    def resolved_sasl_password(self) -> str:
        """The SASL password: the first line of ``sasl.password.file``, else ``sasl.password``."""
        if self.sasl_password_file:
            try:
                lines = Path(self.sasl_password_file).read_text().splitlines()
            except (OSError, UnicodeDecodeError):
                raise SettingsError(
                    f"sasl.password.file {self.sasl_password_file} cannot be read"
                ) from None
            return lines[0].strip() if lines else ""
        return self.sasl_password

    def as_env(self) -> dict[str, str]:
        """Environment variables that reproduce these settings in a child process."""
        return {env_name(n): str(getattr(self, _attr(n))) for n in SETTINGS_DOC}

    def describe(self) -> dict[str, object]:
        """Settings for logs and banners, with secrets masked."""
        out: dict[str, object] = {}
        for name in SETTINGS_DOC:
            value = getattr(self, _attr(name))
            out[name] = "***" if name in _SECRET and value else value
        return out
