"""`insiderwatch demo`: the main job in one command, for a new user.

Local broker -> topics -> simulated history -> trained model -> Faust worker -> history
replay (baselines) then paced live traffic with insider behaviour -> alerts in the terminal
-> a one-screen summary of what was planted, caught (and how fast) and falsely flagged.
It then stops everything it started (and the broker, if it started it); so does Ctrl-C.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

from kafka.errors import KafkaError, UnknownTopicOrPartitionError

from insiderwatch.simulation.summary import summarise_demo
from insiderwatch.stream.broker import LocalKafka
from insiderwatch.stream.replay import replay_file
from insiderwatch.stream.settings import Settings
from insiderwatch.stream.tail import TailFilter, tail_alerts
from insiderwatch.stream.topics import admin_client, create_topics

__all__ = ["run_demo"]

DEMO_DIR = Path(".local/demo")
# After the last live event is sent, alerts are read this long before the summary (the
# worker's event-to-alert latency is a few hundred milliseconds).
SUMMARY_GRACE_S = 8.0


def _after(event: threading.Event, seconds: float):
    """A predicate that turns true ``seconds`` after ``event`` is set."""
    set_at: list[float] = []

    def predicate() -> bool:
        if not event.is_set():
            return False
        if not set_at:
            set_at.append(time.monotonic())
        return time.monotonic() - set_at[0] >= seconds

    return predicate


def _reset_topics(settings: Settings) -> None:
    """Start the demo from empty topics and no committed offsets (demo topics only)."""
    admin = admin_client(settings)
    try:
        names = [
            settings.topic_events,
            settings.topic_alerts,
            settings.topic_dlq,
            settings.topic_pulse,
            f"{settings.app_id}-actor-state-changelog",
        ]
        existing = [n for n in names if n in set(admin.list_topics())]
        if existing:
            with contextlib.suppress(UnknownTopicOrPartitionError):
                admin.delete_topics(existing)
        with contextlib.suppress(KafkaError):
            admin.delete_groups([settings.app_id])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and set(existing) & set(admin.list_topics()):
            time.sleep(0.5)
    finally:
        admin.close()
    time.sleep(1.0)
    create_topics(settings)


def _wait_ready(settings: Settings, worker: subprocess.Popen, timeout_s: float = 120.0) -> None:
    url = f"http://{settings.web_host}:{settings.web_port}/ready"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            raise RuntimeError(
                f"the worker exited with code {worker.returncode}; see {DEMO_DIR}/worker.log"
            )
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError(
        f"the worker was not ready within {timeout_s:.0f} s; see {DEMO_DIR}/worker.log"
    )


def _prepare_data(actors: int, say) -> tuple[Path, Path]:
    """The simulated history and live traffic, and a model trained on the history (each
    made once and reused while it still loads)."""
    history, live = DEMO_DIR / f"history-{actors}.jsonl", DEMO_DIR / f"live-{actors}.jsonl"
    cli = [sys.executable, "-m", "insiderwatch"]
    if not history.exists() or not live.exists():
        say(f"simulating {actors} employees: 21 days of history and 7 days of live traffic")
        for path, days in ((history, ["--to-day", "21"]), (live, ["--from-day", "21"])):
            subprocess.run(
                [*cli, "simulate", "--actors", str(actors), "--out", str(path), *days], check=True
            )
    from insiderwatch.models.artifact import loads_cleanly

    if not loads_cleanly(DEMO_DIR / "model"):
        say("training the isolation forest on the history")
        subprocess.run(
            [*cli, "train", "--events", str(history), "--model-dir", str(DEMO_DIR / "model")],
            check=True,
        )

    return history, live


def _stop(worker: subprocess.Popen) -> None:
    if worker.poll() is None:
        os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)


def run_demo(settings: Settings, actors: int = 150, rate: float = 2000.0) -> int:
    DEMO_DIR.mkdir(parents=True, exist_ok=True)
    say = lambda text: print(f"demo: {text}", flush=True)  # noqa: E731
    broker = LocalKafka(
        Path(settings.kafka_home),
        port=settings.kafka_port,
        controller_port=settings.kafka_controller_port,
        heap_mb=settings.kafka_heap_mb,
    )
    started_broker = broker.pid() is None
    say(f"kafka {broker.start()}")
    settings = dataclasses.replace(
        settings,
        broker=broker.bootstrap,
        model_dir=str(DEMO_DIR / "model"),
        data_dir=str(DEMO_DIR / "worker-data"),
    )
    _reset_topics(settings)
    shutil.rmtree(settings.data_dir, ignore_errors=True)  # its RocksDB state: of the old topics
    say(
        f"topics {settings.topic_events}, {settings.topic_alerts}, {settings.topic_dlq} are empty and ready"
    )

    history, live = _prepare_data(actors, say)
    env = {**os.environ, **settings.as_env()}
    log = open(DEMO_DIR / "worker.log", "wb")  # noqa: SIM115
    worker = subprocess.Popen(
        [sys.executable, "-m", "insiderwatch", "worker"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    stop, live_done = threading.Event(), threading.Event()
    alerts: list[dict] = []
    try:
        _wait_ready(settings, worker)
        say(
            f"worker ready (log: {DEMO_DIR}/worker.log, metrics: http://{settings.web_host}:{settings.web_port}/metrics)"
        )

        def produce() -> None:
            try:
                sent = replay_file(settings, history)
                say(
                    f"history replayed ({sent} events): baselines are warm; live traffic at {rate:.0f} events/s"
                )
                if not stop.is_set():
                    sent = replay_file(settings, live, rate=rate)
                    say(f"live traffic done ({sent} events); the summary follows in a few seconds")
                    live_done.set()
            except Exception as exc:  # noqa: BLE001 - report and let the user stop the demo
                say(f"replay failed: {exc}")

        threading.Thread(target=produce, daemon=True).start()
        say("alerts appear below as they are raised (Ctrl-C stops everything)")
        tail_alerts(
            settings,
            "end",
            TailFilter(),
            as_json=False,
            max_alerts=None,
            idle_timeout_s=None,
            on_alert=alerts.append,
            stop_when=_after(live_done, SUMMARY_GRACE_S),
        )
        if live_done.is_set():
            print("\n" + summarise_demo(live, alerts).text(), flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        _stop(worker)
        log.close()
        if started_broker:
            say(f"kafka {broker.stop()}")
    return 0
