"""The embedded local broker: real Apache Kafka (KRaft, single node) on 127.0.0.1.

Jars come from Maven Central through ``broker-pom.xml`` (package data beside this module) (``dependency:copy-dependencies``);
the storage is formatted with ``kafka.tools.StorageTool`` and ``kafka.Kafka`` runs with a
bounded heap. Start and stop are idempotent; a process is only ever stopped by the pid this
module recorded, after checking that the pid still runs our broker.
"""

from __future__ import annotations

import base64
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

__all__ = ["LocalKafka", "SecureListener", "BrokerError"]

POM = Path(__file__).with_name("broker-pom.xml")
LOG4J2 = """status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = {logs}/server.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.apache.name = org.apache.kafka
logger.apache.level = WARN
"""


class BrokerError(RuntimeError):
    """The local broker could not be installed, started or stopped (one sentence)."""


@dataclass(frozen=True)
class SecureListener:
    """An extra ``SASL_SSL`` listener (TLS + SASL PLAIN and SCRAM-SHA-512) on 127.0.0.1.

    The broker keeps its PLAINTEXT listener for the controller link and local tools; clients
    that must authenticate use ``port``. ``keystore`` is a PKCS#12 file with the private key
    and certificate chain, protected by ``key_password``.
    """

    port: int
    keystore: Path
    key_password: str
    plain_users: dict[str, str]
    scram_users: dict[str, str]

    def properties(self) -> dict[str, str]:
        prefix = "listener.name.sasl_ssl."
        plain_users = " ".join(f'user_{u}="{p}"' for u, p in self.plain_users.items())
        return {
            "sasl.enabled.mechanisms": "PLAIN,SCRAM-SHA-512",
            prefix + "ssl.keystore.type": "PKCS12",
            prefix + "ssl.keystore.location": str(self.keystore),
            prefix + "ssl.keystore.password": self.key_password,
            prefix + "ssl.key.password": self.key_password,
            prefix + "plain.sasl.jaas.config": (
                f"org.apache.kafka.common.security.plain.PlainLoginModule required {plain_users};"
            ),
            prefix + "scram-sha-512.sasl.jaas.config": (
                "org.apache.kafka.common.security.scram.ScramLoginModule required;"
            ),
        }

    def scram_format_arguments(self) -> list[str]:
        """``StorageTool format`` arguments that create the SCRAM users with the cluster."""
        arguments: list[str] = []
        for user, password in self.scram_users.items():
            arguments += ["--add-scram", f"SCRAM-SHA-512=[name={user},password={password}]"]
        return arguments


@dataclass
class LocalKafka:
    """A single-node KRaft broker living entirely under ``home``.

    Parameters
    ----------
    home:
        Folder for jars (``libs``), data, logs, config and the pid file.
    port, controller_port:
        Loopback ports of the client and controller listeners.
    heap_mb:
        JVM heap (``-Xmx``/``-Xms``).
    """

    home: Path
    port: int = 9092
    controller_port: int = 9093
    heap_mb: int = 512
    extra_properties: dict[str, str] | None = None
    secure: SecureListener | None = None

    def __post_init__(self) -> None:
        self.home = Path(self.home).resolve()

    @property
    def libs(self) -> Path:
        return self.home / "libs"

    @property
    def pid_file(self) -> Path:
        return self.home / "broker.pid"

    @property
    def config_file(self) -> Path:
        return self.home / "server.properties"

    @property
    def log_dir(self) -> Path:
        return self.home / "logs"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def version(self) -> str:
        for jar in sorted(self.libs.glob("kafka_2.13-*.jar")):
            return jar.name.removeprefix("kafka_2.13-").removesuffix(".jar")
        return "not installed"

    # -- install -------------------------------------------------------------------------
    def install(self) -> None:
        """Fetch the broker jars from Maven Central (once)."""
        if any(self.libs.glob("kafka_2.13-*.jar")):
            return
        self.libs.mkdir(parents=True, exist_ok=True)
        command = [
            "mvn",
            "-q",
            "-B",
            "-f",
            str(POM),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={self.libs}",
            "-DincludeScope=runtime",
        ]
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=900)
        except FileNotFoundError:
            raise BrokerError(
                "Maven ('mvn') is not installed; it is needed to fetch the Kafka jars"
            ) from None
        if result.returncode != 0:
            tail = (result.stdout + result.stderr).strip().splitlines()[-5:]
            raise BrokerError("Maven could not fetch the Kafka jars: " + " | ".join(tail))

    # -- lifecycle -----------------------------------------------------------------------
    def _java(self) -> str:
        java_home = os.environ.get("JAVA_HOME")
        return str(Path(java_home) / "bin" / "java") if java_home else "java"

    def _classpath(self) -> str:
        return str(self.libs / "*")

    def _write_config(self) -> None:
        data = self.home / "data"
        properties = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(data),
            "num.partitions": "6",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "6",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "false",
            "log.retention.hours": "168",
            "log.segment.bytes": str(256 * 1024 * 1024),
            "message.max.bytes": str(11 * 1024 * 1024),
        }
        if self.secure is not None:
            properties["listeners"] += f",SASL_SSL://127.0.0.1:{self.secure.port}"
            properties["advertised.listeners"] += f",SASL_SSL://127.0.0.1:{self.secure.port}"
            properties["listener.security.protocol.map"] += ",SASL_SSL:SASL_SSL"
            properties.update(self.secure.properties())
        properties.update(self.extra_properties or {})
        self.config_file.write_text("".join(f"{k}={v}\n" for k, v in properties.items()))
        (self.home / "log4j2.properties").write_text(LOG4J2.format(logs=self.log_dir))

    def _format_storage(self) -> None:
        if (self.home / "data" / "meta.properties").exists():
            return
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        result = subprocess.run(
            [
                self._java(),
                "-cp",
                self._classpath(),
                f"-Dlog4j2.configurationFile={self.home / 'log4j2.properties'}",
                "kafka.tools.StorageTool",
                "format",
                "-t",
                cluster_id,
                "-c",
                str(self.config_file),
                "--ignore-formatted",
                *(self.secure.scram_format_arguments() if self.secure else []),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        if result.returncode != 0:
            output = (result.stderr or result.stdout).strip().splitlines()
            reasons = [line for line in output if "Exception" in line or "Error" in line]
            raise BrokerError(
                "formatting the Kafka storage failed: " + " / ".join((reasons or output)[:3])[:500]
            )

    def pid(self) -> int | None:
        """The recorded pid, if that process is alive and is our broker."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return None
        if b"kafka.Kafka" in cmdline and str(self.config_file).encode() in cmdline:
            return pid
        return None

    def accepts_connections(self, timeout_s: float = 1.0) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=timeout_s):
                return True
        except OSError:
            return False

    def _ready(self) -> bool:
        """The broker answers a metadata request (a TCP accept alone is not enough)."""
        if not self.accepts_connections():
            return False
        from kafka import KafkaAdminClient
        from kafka.errors import KafkaError

        try:
            admin = KafkaAdminClient(
                bootstrap_servers=self.bootstrap,
                request_timeout_ms=3000,
                client_id="insiderwatch-probe",
            )
        except (KafkaError, OSError, ValueError):
            return False
        try:
            admin.list_topics()
            return True
        except (KafkaError, OSError):
            return False
        finally:
            admin.close()

    def wipe_data(self) -> None:
        """Delete every topic and the cluster metadata of a broker that is not running.

        For disposable brokers (tests, benchmarks): each run creates its own topics, and a
        data directory that keeps every earlier run's topics (thousands of partitions, the
        log cleaner compacting old changelogs) makes the broker slower to start and busier
        while it serves the next run.
        """
        if self.pid() is not None:
            raise BrokerError(f"the broker in {self.home} is running; stop it first")
        shutil.rmtree(self.home / "data", ignore_errors=True)

    def start(self, timeout_s: float = 90.0, fresh: bool = False) -> str:
        """Start (or find running) and wait until the broker serves requests. Idempotent.

        ``fresh``: when the broker is not running, start it with empty data
        (:meth:`wipe_data`); a running broker is used as it is.
        """
        if fresh and self.pid() is None:
            self.wipe_data()
        if self.pid() is not None:
            if self.wait_ready(timeout_s):
                return f"already running (pid {self.pid()}) on {self.bootstrap}"
            raise BrokerError(
                f"broker pid {self.pid()} is running but not answering on {self.bootstrap}"
            )
        if self.accepts_connections():
            raise BrokerError(f"port {self.port} on 127.0.0.1 is already used by another process")
        self.install()
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._write_config()
        try:
            self._format_storage()
        except BrokerError:
            if not fresh:
                raise
            # Seen once when a run started right after the previous one stopped its broker:
            # a disposable broker's data is wiped again and formatted once more.
            time.sleep(1.0)
            self.wipe_data()
            self._format_storage()
        stdout = open(self.log_dir / "stdout.log", "ab")  # noqa: SIM115 - owned by the child
        process = subprocess.Popen(
            [
                self._java(),
                f"-Xmx{self.heap_mb}m",
                f"-Xms{self.heap_mb}m",
                "-XX:+UseG1GC",
                "-Djava.awt.headless=true",
                f"-Dlog4j2.configurationFile={self.home / 'log4j2.properties'}",
                "-cp",
                self._classpath(),
                "kafka.Kafka",
                str(self.config_file),
            ],
            stdout=stdout,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        stdout.close()
        self.pid_file.write_text(str(process.pid))
        if not self.wait_ready(timeout_s, process):
            self.stop()
            raise BrokerError(
                f"the broker did not accept connections within {timeout_s:.0f} s; see {self.log_dir}/server.log"
            )
        return f"started Kafka {self.version()} (pid {process.pid}) on {self.bootstrap}"

    def wait_ready(self, timeout_s: float, process: subprocess.Popen | None = None) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if process is not None and process.poll() is not None:
                return False
            if self._ready():
                return True
            time.sleep(0.5)
        return False

    def stop(self, timeout_s: float = 30.0) -> str:
        """Stop the broker we started (by recorded pid only). Idempotent."""
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return "not running"
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and self.pid() is not None:
            time.sleep(0.2)
        if self.pid() is not None:
            os.kill(pid, signal.SIGKILL)
            time.sleep(0.5)
        self.pid_file.unlink(missing_ok=True)
        return f"stopped (pid {pid})"

    def kill(self) -> None:
        """SIGKILL the broker (for fault tests)."""
        pid = self.pid()
        if pid is not None:
            os.kill(pid, signal.SIGKILL)

    def status(self) -> str:
        pid = self.pid()
        if pid is None:
            return f"not running (Kafka {self.version()}, home {self.home})"
        state = "ready" if self._ready() else "starting"
        return f"running (pid {pid}, Kafka {self.version()}) on {self.bootstrap}: {state}"
