"""The local broker's disposable data (no Java needed: nothing here starts a broker)."""

from __future__ import annotations

import pytest

from insiderwatch.stream.broker import BrokerError, LocalKafka


def test_wipe_data_empties_a_stopped_broker(tmp_path):
    broker = LocalKafka(tmp_path / "kafka", port=39092, controller_port=39093)
    topic = tmp_path / "kafka" / "data" / "old-run-events-0"
    topic.mkdir(parents=True)
    (topic / "00000000000000000000.log").write_bytes(b"x" * 100)
    broker.wipe_data()
    assert not (tmp_path / "kafka" / "data").exists()
    broker.wipe_data()  # nothing to wipe: no error


def test_wipe_data_refuses_a_running_broker(tmp_path, monkeypatch):
    broker = LocalKafka(tmp_path / "kafka", port=39092, controller_port=39093)
    (tmp_path / "kafka" / "data").mkdir(parents=True)
    monkeypatch.setattr(LocalKafka, "pid", lambda self: 4242)
    with pytest.raises(BrokerError, match="running"):
        broker.wipe_data()
    assert (tmp_path / "kafka" / "data").exists()
