"""Run real insiderwatch workers against the test broker and read the output topics."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from insiderwatch.stream.security import kafka_python_security
from insiderwatch.stream.settings import Settings
from insiderwatch.stream.topics import create_topics
from tests.conftest import REPO, free_port


@dataclass
class Deployment:
    """Unique topics, app id and data dir for one test, on the shared test broker."""

    broker: str
    model_dir: Path
    workdir: Path
    partitions: int = 6
    scores_topic: bool = False
    extra: dict = field(default_factory=dict)
    environ: dict = field(default_factory=dict)  # env-only settings (secrets)
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    workers: list = field(default_factory=list)

    def __post_init__(self) -> None:
        overrides = {
            "broker": self.broker,
            "topic.events": f"events-{self.tag}",
            "topic.alerts": f"alerts-{self.tag}",
            "topic.dlq": f"dlq-{self.tag}",
            "topic.pulse": f"pulse-{self.tag}",
            "topic.feedback": f"feedback-{self.tag}",
            "topic.context": f"context-{self.tag}",
            "topic.suppressed": f"suppressed-{self.tag}",
            "topic.partitions": self.partitions,
            "app.id": f"iw-{self.tag}",
            "model.dir": str(self.model_dir),
            "batch.max.ms": 50,
            "store": "memory://",  # the tests' default; test_rocksdb_store runs the production one
        }
        if self.scores_topic:
            overrides["topic.scores"] = f"scores-{self.tag}"
        overrides.update(self.extra)
        self.settings = Settings.load(overrides, environ=self.environ)
        create_topics(self.settings)

    def env(self, web_port: int, data_dir: str | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("INSIDERWATCH_")}
        env.update(self.settings.as_env())
        env["INSIDERWATCH_WEB_PORT"] = str(web_port)
        env["INSIDERWATCH_DATA_DIR"] = str(self.workdir / (data_dir or f"data-{web_port}"))
        return env

    def start_worker(self, data_dir: str | None = None) -> Worker:
        """Start a worker; ``data_dir`` (under the workdir) lets a restart find its predecessor's
        local table store (by default every worker has its own)."""
        port = free_port()
        log_path = self.workdir / f"worker-{port}.log"
        log = open(log_path, "wb")  # noqa: SIM115
        process = subprocess.Popen(
            [sys.executable, "-m", "insiderwatch", "worker"],
            env=self.env(port, data_dir),
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        worker = Worker(process, port, log_path)
        self.workers.append(worker)
        return worker

    def stop(self) -> None:
        for worker in self.workers:
            worker.terminate()

    def cli(self, *args: str, timeout_s: float = 120.0) -> subprocess.CompletedProcess:
        """Run ``insiderwatch ARGS`` with this deployment's settings; stdout and stderr as text."""
        return subprocess.run(
            [sys.executable, "-m", "insiderwatch", *args],
            env=self.env(self.workers[-1].web_port if self.workers else free_port()),
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )

    def produce(self, values: list[tuple]) -> list[tuple[int, int]]:
        """Send ``(key, value)`` or ``(key, value, headers)`` records to the events topic in
        order; return the (partition, offset) of each."""
        return self.produce_to(self.settings.topic_events, values)

    def produce_to(self, topic: str, values: list[tuple]) -> list[tuple[int, int]]:
        """:meth:`produce` to another topic."""
        producer = KafkaProducer(
            bootstrap_servers=self.broker,
            **kafka_python_security(self.settings),
            acks="all",
            linger_ms=5,
            max_request_size=16 * 1024 * 1024,
        )
        futures = [
            producer.send(topic, key=record[0], value=record[1], headers=record[2])
            if len(record) == 3
            else producer.send(topic, key=record[0], value=record[1])
            for record in values
        ]
        producer.flush()
        positions = [(f.get().partition, f.get().offset) for f in futures]
        producer.close()
        return positions

    def uncommitted(self) -> int:
        """Input records past the consumer group's committed offsets (0 = all committed)."""
        topic = self.settings.topic_events
        # Reads the group's offsets without joining it (no subscribe, no poll).
        consumer = KafkaConsumer(
            bootstrap_servers=self.broker,
            group_id=self.settings.app_id,
            enable_auto_commit=False,
            **kafka_python_security(self.settings),
        )
        try:
            tps = [TopicPartition(topic, p) for p in range(self.partitions)]
            ends = consumer.end_offsets(tps)
            return sum(ends[tp] - (consumer.committed(tp) or 0) for tp in tps)
        finally:
            consumer.close()

    def read_topic(self, topic: str, expect: int | None = None, timeout_s: float = 60.0) -> list:
        """All records of ``topic`` (waits until ``expect`` are there, or quiet for 3 s)."""
        consumer = KafkaConsumer(
            bootstrap_servers=self.broker,
            enable_auto_commit=False,
            consumer_timeout_ms=1000,
            **kafka_python_security(self.settings),
        )
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        records, deadline, quiet_since = [], time.monotonic() + timeout_s, time.monotonic()
        while time.monotonic() < deadline:
            batch = consumer.poll(timeout_ms=500)
            got = [r for rs in batch.values() for r in rs]
            records += got
            if got:
                quiet_since = time.monotonic()
            if expect is not None and len(records) >= expect:
                break
            if expect is None and time.monotonic() - quiet_since > 3:
                break
        consumer.close()
        return records


@dataclass
class Worker:
    process: subprocess.Popen
    web_port: int
    log_path: Path

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.web_port}{path}"

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(self.url(path), timeout=2) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def wait_ready(self, timeout_s: float = 90.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.process.poll() is None, (
                f"worker exited: {self.log_path.read_text()[-3000:]}"
            )
            try:
                if self.get("/ready")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.5)
        raise AssertionError(
            f"worker not ready in {timeout_s} s: {self.log_path.read_text()[-3000:]}"
        )

    def listen_addresses(self) -> set[str]:
        """IPv4/IPv6 addresses with a listening socket on the web port (from /proc/net)."""
        found = set()
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            try:
                lines = Path(table).read_text().splitlines()[1:]
            except OSError:
                continue
            for line in lines:
                local, state = line.split()[1], line.split()[3]
                address, port = local.rsplit(":", 1)
                if state == "0A" and int(port, 16) == self.web_port:
                    if len(address) == 8:
                        found.add(".".join(str(int(address[i : i + 2], 16)) for i in (6, 4, 2, 0)))
                    else:
                        found.add("::" if set(address) == {"0"} else address)
        return found

    def metric(self, name: str) -> float:
        """Sum of a Prometheus counter/gauge over its labels."""
        _, text = self.get("/metrics")
        total = 0.0
        for line in text.splitlines():
            match = re.match(rf"^{re.escape(name)}(\{{[^}}]*\}})? ([0-9.e+-]+)$", line)
            if match:
                total += float(match.group(2))
        return total

    def wait_metric(self, name: str, value: float, timeout_s: float = 120.0) -> float:
        deadline = time.monotonic() + timeout_s
        seen = -1.0
        while time.monotonic() < deadline:
            assert self.process.poll() is None, (
                f"worker exited: {self.log_path.read_text()[-3000:]}"
            )
            seen = self.metric(name)
            if seen >= value:
                return seen
            time.sleep(0.5)
        raise AssertionError(f"{name} reached {seen}, expected {value}")

    def terminate(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()

    def kill(self) -> None:
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
