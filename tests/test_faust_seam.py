"""The seam to Faust's private internals checks them before the worker starts."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from insiderwatch.stream import faust_seam
from insiderwatch.stream.app import Worker
from insiderwatch.stream.faust_seam import PRIVATE_NAMES, SeamError, check_seam, seam_problems
from insiderwatch.stream.settings import Settings


@pytest.fixture()
def worker(tmp_path):
    settings = Settings.load({"data.dir": str(tmp_path / "data")}, environ={})
    return Worker(settings)


def test_the_installed_faust_and_aiokafka_pass_the_check(worker):
    check_seam(worker.app)  # raises on any missing or changed private name


def test_every_private_name_says_what_it_is_for_and_what_would_replace_it():
    assert len({(entry.owner, entry.name) for entry in PRIVATE_NAMES}) == len(PRIVATE_NAMES)
    for entry in PRIVATE_NAMES:
        assert entry.name.startswith("_") or entry.owner == "faust.types.tuples"  # ack_lock
        assert entry.kind in {"coroutine", "method", "attribute", "object"}
        assert len(entry.use) > 20 and len(entry.public_alternative) > 10


def test_a_consumer_without_one_of_the_ack_books_is_refused(worker):
    consumer = worker.app.consumer
    names = [entry.name for entry in PRIVATE_NAMES if entry.owner == "consumer"]
    stand_in = SimpleNamespace(
        **{name: getattr(consumer, name) for name in names if name != "_acked_index"}
    )
    assert seam_problems({"consumer": stand_in}) == ["consumer._acked_index is missing"]
    stand_in._acked_index = 3
    assert seam_problems({"consumer": stand_in}) == ["consumer._acked_index is a int"]


def test_a_changed_arity_or_kind_is_refused():
    class Consumer:
        async def _drain_messages(self, fetcher, extra): ...

        def _wait_next_records(self, timeout): ...

    problems = seam_problems({"Consumer": Consumer})
    assert "Consumer._drain_messages() takes 3 parameters, not 2" in problems
    assert "Consumer._wait_next_records() is not a coroutine" in problems


def test_the_refusal_is_one_sentence_naming_the_versions(worker, monkeypatch):
    missing = faust_seam.PrivateName("consumer", "_renamed_books", "attribute", "x" * 30, "y" * 20)
    monkeypatch.setattr(faust_seam, "PRIVATE_NAMES", (*PRIVATE_NAMES, missing))
    with pytest.raises(SeamError) as refused:
        check_seam(worker.app)
    message = str(refused.value)
    assert message.startswith("insiderwatch does not support faust-streaming 0.")
    assert "consumer._renamed_books is missing" in message
    assert message.endswith("install faust-streaming >=0.15.3,<0.16 with aiokafka >=0.13,<0.15")
    assert "\n" not in message


def test_store_many_writes_each_record_in_its_partition_in_one_batch(tmp_path):
    settings = Settings.load(
        {"data.dir": str(tmp_path / "data"), "store": "rocksdb://"}, environ={}
    )
    store = Worker(settings).actor_state.data
    records = [(b"alice", b"state-a", 1), (b"bob", b"state-b", 4), (b"carol", b"state-c", 1)]
    faust_seam.store_many(store, records)
    for key, value, partition in records:
        assert store[key] == value
        assert store._db_for_partition(partition)[key] == value
    assert store._db_for_partition(4).get(b"alice") is None
    faust_seam.store_many(store, [(b"alice", b"state-a2", 1)])
    assert store[b"alice"] == b"state-a2"


def test_store_many_on_the_memory_store_takes_the_per_key_path(tmp_path):
    settings = Settings.load({"data.dir": str(tmp_path / "data"), "store": "memory://"}, environ={})
    store = Worker(settings).actor_state.data
    assert not hasattr(store, "_key_index")
    faust_seam.store_many(store, [(b"alice", b"state-a", 2)])
    assert store[b"alice"] == b"state-a"
