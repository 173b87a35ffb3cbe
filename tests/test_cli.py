"""User errors get one sentence and a non-zero exit, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import REPO


def run_cli(*args, env=None):
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("INSIDERWATCH_")}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "insiderwatch", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=full_env,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("args", "env", "needle"),
    [
        (
            ["score", "--model-dir", "/nonexistent", "--events", "x", "--out", "y"],
            {},
            "does not exist",
        ),
        (["train", "--events", "/nonexistent.jsonl", "--model-dir", "m"], {}, "does not exist"),
        (
            ["score", "--model-dir", "m", "--events", "x", "--out", "y", "--workers", "0"],
            {},
            "--workers must be at least 1",
        ),
        (["evaluate", "--trees", "0"], {}, "--trees must be at least 1"),
        (["evaluate", "--risk-budget", "-1"], {}, "--risk-budget must be 0 (off) or more"),
        (["evaluate", "--profiles", "2", "--forest-seeds", "2"], {}, "not both"),
        (
            ["train", "--events", "x", "--model-dir", "m", "--risk-budget", "nan"],
            {},
            "--risk-budget must be 0 (off) or more",
        ),
        (["topics", "create", "--broker", "127.0.0.1:1"], {}, "no Kafka broker answers"),
        (["tail", "--broker", "127.0.0.1:1"], {}, "no Kafka broker answers"),
        (["replay", "pyproject.toml", "--broker", "127.0.0.1:1"], {}, "no Kafka broker answers"),
        (["worker"], {"INSIDERWATCH_BATCH_MAX_EVENTS": "many"}, "must be an integer"),
        (["worker"], {"INSIDERWATCH_ALERT_FORMAT": "xml"}, "alert.format"),
        (["tail", "--severity", "urgent", "--broker", "127.0.0.1:1"], {}, "--severity"),
    ],
)
def test_user_errors_are_one_sentence(args, env, needle):
    result = run_cli(*args, env=env)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert needle in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_bad_flag_exits_non_zero_without_traceback():
    result = run_cli("score", "--no-such-flag")
    assert result.returncode == 2 and "Traceback" not in result.stderr


def test_help_lists_settings_but_never_secrets():
    secrets = {
        "INSIDERWATCH_SASL_PASSWORD": "hunter2-sasl",
        "INSIDERWATCH_PSEUDONYMIZE_KEY": "hunter2-hmac",
    }
    result = run_cli("worker", "--help", env=secrets)
    assert result.returncode == 0
    assert "--topic-alerts" in result.stdout and "--sasl-username" in result.stdout
    assert "--sasl-password-file" in result.stdout
    assert "--sasl-password " not in result.stdout, "a password must never be a CLI flag"
    assert "pseudonymize" not in result.stdout.lower()
    assert "hunter2" not in result.stdout + result.stderr


def test_simulate_train_score_round_trip(tmp_path):
    history, live = tmp_path / "h.jsonl", tmp_path / "l.jsonl"
    assert (
        run_cli(
            "simulate", "--actors", "40", "--days", "10", "--to-day", "8", "--out", str(history)
        ).returncode
        == 0
    )
    assert (
        run_cli(
            "simulate",
            "--actors",
            "40",
            "--days",
            "10",
            "--from-day",
            "8",
            "--scenarios-from-day",
            "8",
            "--out",
            str(live),
        ).returncode
        == 0
    )
    trained = run_cli(
        "train", "--events", str(history), "--model-dir", str(tmp_path / "m"), "--warmup-days", "3"
    )
    assert trained.returncode == 0, trained.stderr
    with live.open("ab") as handle:
        handle.write(b"not json\n")
    scored = run_cli(
        "score",
        "--model-dir",
        str(tmp_path / "m"),
        "--events",
        str(live),
        "--out",
        str(tmp_path / "alerts.jsonl"),
        "--all-scores",
        str(tmp_path / "scores.jsonl"),
    )
    assert scored.returncode == 0, scored.stderr
    assert "1 dead-lettered" in scored.stdout
    lines = (tmp_path / "scores.jsonl").read_text().splitlines()
    assert len(lines) == sum(1 for _ in live.open()) - 1
    shown = run_cli("model", "show", str(tmp_path / "m"))
    assert shown.returncode == 0 and '"threshold"' in shown.stdout


def test_training_from_the_topic_skips_what_the_worker_refuses_as_from_the_future():
    """Training and the worker accept the same events: one more than 1 h after its Kafka
    record (a producer clock ahead) is skipped as invalid by both."""
    from insiderwatch.stream.cli import _parse_events
    from tests.helpers import event_bytes

    record_ms = 1767603600000  # 2026-01-05T09:00:00Z
    now = event_bytes(0, event_id="now", timestamp="2026-01-05T09:00:00Z")
    future = event_bytes(1, event_id="future", timestamp="2026-01-06T09:00:00Z")
    events, bad = _parse_events([(now, record_ms), (future, record_ms), (future, None)])
    assert [e.event_id for e in events] == ["now", "future"]  # the last has no record time
    assert bad == 1
