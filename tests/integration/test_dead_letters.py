"""Dead letters end to end on the real Kafka: a poison record is dead-lettered without blocking
its partition, and `stack/boxo dlq list|replay` (stack/kafkasource/dlq.py) shows and replays it.

Each test has its own topics, consumer group, recording sink and replay log; the dispatcher runs
in-process (see test_dispatcher_contract.py for the harness).
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from test_dispatcher_contract import (
    Kafka,
    Running,
    binary_event,
    settings_for,
)

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "stack" / "kafkasource"))

import dlq  # noqa: E402
from dispatcher import Settings  # noqa: E402
from recording_sink import Answer, RecordingSink, Request  # noqa: E402

pytestmark = pytest.mark.integration


@pytest.fixture
def kafka() -> Iterator[Kafka]:
    k = Kafka()
    yield k
    k.close()


@pytest.fixture
def sinks() -> Iterator[Callable[..., RecordingSink]]:
    started: list[RecordingSink] = []

    def start(*args: Any, **kwargs: Any) -> RecordingSink:
        sink = RecordingSink(*args, **kwargs)
        started.append(sink)
        return sink

    yield start
    for sink in started:
        sink.stop()


@pytest.fixture
def dispatch() -> Iterator[Callable[[Settings], Running]]:
    running: list[Running] = []

    def start(settings: Settings) -> Running:
        r = Running(settings)
        running.append(r)
        return r

    yield start
    for r in running:
        r.stop()


def json_body(request: Request) -> Answer:
    """A sink that, like a real function, cannot ever process a body that is not JSON, but says
    so with a 500 (a bug or an unexpected payload looks transient): retried, then dead-lettered."""
    try:
        json.loads(request.body)
    except ValueError:
        return Answer(500, body=b"cannot parse the order")
    return Answer(200)


def run_dlq(*argv: str) -> str:
    out = io.StringIO()
    assert dlq.main(list(argv), out=out) == 0, out.getvalue()
    return out.getvalue()


def test_poison_record_is_dead_lettered_and_the_records_behind_it_are_delivered(
    kafka: Kafka, sinks: Callable[..., RecordingSink], dispatch: Callable[[Settings], Running]
) -> None:
    topic, dead = kafka.topic(partitions=3), kafka.topic(prefix="it-dlq")
    values = [b'{"n":1}', b"\x00not json{", b'{"n":2}', b'{"n":3}']
    for value in values:
        kafka.send(topic, value, key=b"booking-poison")  # one key: one partition
    sink = sinks(respond=json_body)
    dispatch(settings_for(sink, topic, dlq_topic=dead, retry=2, backoff_delay=0.02))

    assert sink.wait_for(lambda rs: sum(r.status == 200 for r in rs) >= 3)
    poison = [r for r in sink.requests if r.body == values[1]]
    assert len(poison) == 3, "first attempt + retry 2"
    delivered = [r.body for r in sink.delivered()]
    assert delivered == [values[0], values[2], values[3]], "order kept around the poison record"
    after = min(r.at for r in sink.requests if r.body == values[2])
    assert after > max(r.at for r in poison), "the next record waited for the poison's retries"

    letters = kafka.read(dead, 1)
    assert len(letters) == 1
    assert letters[0].value == values[1]
    assert letters[0].key == b"booking-poison"
    headers = dict(letters[0].headers)
    assert headers["ce_knativeerrorcode"] == b"500"
    assert headers["ce_type"] == b"dev.knative.kafka.event"


def test_dlq_list_shows_each_dead_letter_with_its_error(
    kafka: Kafka,
    sinks: Callable[..., RecordingSink],
    dispatch: Callable[[Settings], Running],
    tmp_path: Path,
) -> None:
    topic, dead = kafka.topic(), kafka.topic(prefix="it-dlq")
    kafka.send(topic, b'{"n":1}', key=b"b-1", headers=binary_event("evt-list-1", "b-1"))
    kafka.send(topic, b"plain", key=b"b-2")
    sink = sinks(
        default=Answer(
            422, headers={"Kne-Reason": "event-cancelled"}, body=b'{"title":"seat gone"}'
        )
    )
    dispatch(settings_for(sink, topic, dlq_topic=dead))
    assert len(kafka.read(dead, 2)) == 2
    common = ["--bootstrap", kafka.bootstrap, "--dlq-topic", dead, "--replay-log"]
    common.append(str(tmp_path / "replayed.jsonl"))

    rows = json.loads(run_dlq("list", "--json", *common))
    assert [r["id"] for r in rows] == ["evt-list-1", "partition:0/offset:1"]
    first = rows[0]
    assert first["type"] == "com.boxoffice.booking.created"
    assert first["errorCode"] == "422"
    assert first["errorData"] == '{"title":"seat gone"}'
    assert first["errorDest"] == sink.url
    assert first["origin"] == f"{topic}/0/0"
    assert first["replayed"] is False
    assert rows[1]["origin"] == f"{topic}/0/1"
    assert [r["id"] for r in json.loads(run_dlq("list", "--json", "--limit", "1", *common))] == [
        "partition:0/offset:1"
    ]

    # the operator's command: stack/boxo dlq list
    env = {**os.environ, "BOXOFFICE_DEAD_LETTER_TOPIC": dead}
    text = subprocess.run(
        [str(ROOT / "stack" / "boxo"), "dlq", "list", "--replay-log", common[-1]],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert "id=evt-list-1" in text
    assert "code=422" in text
    assert "seat gone" in text
    assert f"origin={topic}/0/1" in text


def test_replay_republishes_the_original_event_once(
    kafka: Kafka,
    sinks: Callable[..., RecordingSink],
    dispatch: Callable[[Settings], Running],
    tmp_path: Path,
) -> None:
    topic, dead = kafka.topic(), kafka.topic(prefix="it-dlq")
    kafka.send(topic, b'{"n":7}', key=b"b-7", headers=binary_event("evt-replay-7", "b-7"))
    # the consumer rejects it once (a bug), and accepts it after the fix
    sink = sinks([Answer(400, headers={"Kne-Reason": "bug"}, body=b"oops")], default=Answer(200))
    running = dispatch(settings_for(sink, topic, dlq_topic=dead))
    assert len(kafka.read(dead, 1)) == 1
    log = str(tmp_path / "replayed.jsonl")
    common = ["--bootstrap", kafka.bootstrap, "--dlq-topic", dead, "--replay-log", log]

    out = run_dlq("replay", "--id", "evt-replay-7", *common)
    assert f"replayed 0/0 id=evt-replay-7 -> {topic}/0/1" in out
    assert "nothing to replay" in run_dlq("replay", "--id", "evt-replay-7", *common)
    assert "nothing to replay" in run_dlq("replay", "--all", *common)

    records = kafka.read(topic, 3, timeout=3)
    assert len(records) == 2, "the original and exactly one replay"
    replayed = records[1]
    assert replayed.key == b"b-7"
    assert replayed.value == b'{"n":7}'
    assert sorted(replayed.headers) == sorted(binary_event("evt-replay-7", "b-7"))

    # the dispatcher delivers the replayed event: same id, none of the error extensions
    assert sink.wait_for(lambda rs: len(rs) >= 2)
    again = sink.requests[1]
    assert again.status == 200
    assert again.ce["id"] == "evt-replay-7"
    assert not {"knativeerrordest", "knativeerrorcode", "knativeerrordata", "reason"} & set(
        again.ce
    )
    rows = json.loads(run_dlq("list", "--json", *common))
    assert [r["replayed"] for r in rows] == [True]
    running.stop()


def test_an_event_that_fails_again_after_replay_can_be_replayed_again(
    kafka: Kafka,
    sinks: Callable[..., RecordingSink],
    dispatch: Callable[[Settings], Running],
    tmp_path: Path,
) -> None:
    topic, dead = kafka.topic(), kafka.topic(prefix="it-dlq")
    kafka.send(topic, b'{"n":8}', key=b"b-8", headers=binary_event("evt-replay-8", "b-8"))
    sink = sinks([422, 422], default=200)  # rejected, replayed and rejected again, then fixed
    dispatch(settings_for(sink, topic, dlq_topic=dead))
    assert len(kafka.read(dead, 1)) == 1
    common = ["--bootstrap", kafka.bootstrap, "--dlq-topic", dead]
    common += ["--replay-log", str(tmp_path / "replayed.jsonl")]

    assert "replayed 0/0" in run_dlq("replay", "--all", *common)
    assert len(kafka.read(dead, 2)) == 2, "the replay was dead-lettered again"
    assert "replayed 0/1" in run_dlq("replay", "--all", *common)
    assert sink.wait_for(lambda rs: len(rs) >= 3)
    assert [r.status for r in sink.requests] == [422, 422, 200]
    assert "nothing to replay" in run_dlq("replay", "--all", *common)
    assert len(kafka.read(topic, 4, timeout=2)) == 3, "the original and two replays"
