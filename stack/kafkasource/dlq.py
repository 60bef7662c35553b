"""Inspect and replay dead-lettered events (`stack/boxo dlq list|replay`).

    stack/boxo dlq list [--limit N] [--json]
    stack/boxo dlq replay (--id ID | --all) [--to-topic TOPIC] [--dry-run]

The dispatcher (dispatcher.py) writes each event it gives up on to the dead-letter topic
(`$BOXOFFICE_DEAD_LETTER_TOPIC`, `booking-dlq`) as a Kafka binary-mode CloudEvent: the original
attributes plus `knativeerrordest`, `knativeerrorcode`, `knativeerrordata` (and one extension
per `kne-*` reply header), the original key and data, and a local header
`boxoffice-dlq-origin: <topic>/<partition>/<offset>`.

`list` prints every dead letter (oldest first; `--limit N`: the newest N) with its id, type,
error code, decoded error data, origin and whether it was replayed. `replay` re-produces the
original event — its own attributes, data and key, without the extensions the dead-lettering
added — in Kafka binary mode to its original topic (or `--to-topic`), so the consumer sees the
same CloudEvent id again (consumers de-duplicate on it). Replays are recorded in a replay log
(`$BOXOFFICE_STATE_DIR/dlq/replayed.jsonl`, one JSON line per replayed dead letter, keyed by
dead-letter topic/partition/offset): a dead letter is never replayed twice, and only the newest
dead letter of an event (source, id) is replayed (`--id` and `--all` alike), so older copies
are skipped; if a replayed event fails again, its new dead letter can be replayed.
"""

from __future__ import annotations

import argparse
import base64
import fcntl
import json
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

sys.path.insert(0, str(Path(__file__).resolve().parent))
from kafkasource_events import (
    ADDED_HEADER,
    ERROR_EXTENSIONS,
    ORIGIN_HEADER,
    Event,
    from_dead_letter,
)


@dataclass
class DeadLetter:
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    event: Event

    @property
    def ref(self) -> str:
        return f"{self.partition}/{self.offset}"

    @property
    def origin(self) -> str:
        """<topic>/<partition>/<offset> of the original record ('' if unknown)."""
        return self.event.extra.get(ORIGIN_HEADER, "")

    @property
    def origin_topic(self) -> str | None:
        return self.origin.split("/")[0] if self.origin else None

    def error_data(self) -> str:
        raw = self.event.attributes.get("knativeerrordata", "")
        try:
            return base64.b64decode(raw).decode("utf-8", errors="replace")
        except ValueError:
            return raw

    def original(self) -> Event:
        """The event as it was before dead-lettering."""
        added = set(ERROR_EXTENSIONS)
        added.update(n for n in self.event.extra.get(ADDED_HEADER, "").split(",") if n)
        attributes = {k: v for k, v in self.event.attributes.items() if k not in added}
        return Event(attributes, self.event.content_type, self.event.data)


def read_all(bootstrap: str, topic: str, timeout: float = 20.0) -> list[DeadLetter]:
    """Every record of the dead-letter topic, from the beginning to the current end."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap.split(","),
        group_id=None,
        enable_auto_commit=False,
        client_id="boxoffice-dlq-cli",
    )
    try:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            raise SystemExit(f"dlq: topic {topic!r} does not exist")
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        letters: list[DeadLetter] = []
        deadline = time.monotonic() + timeout
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            if time.monotonic() > deadline:
                raise SystemExit(f"dlq: could not read {topic} to its end within {timeout:.0f}s")
            for records in consumer.poll(timeout_ms=500).values():
                for r in records:
                    if r.offset >= ends[TopicPartition(topic, r.partition)]:
                        continue
                    event = from_dead_letter(r)
                    if event is not None:
                        letters.append(DeadLetter(r.partition, r.offset, r.timestamp, r.key, event))
        letters.sort(key=lambda d: (d.timestamp_ms, d.partition, d.offset))
        return letters
    finally:
        consumer.close(autocommit=False)


class ReplayLog:
    """Which dead letters were replayed: JSON lines, appended under an exclusive lock."""

    def __init__(self, path: Path, topic: str) -> None:
        self.path = path
        self.topic = topic

    @contextmanager
    def locked(self) -> Iterator[TextIO]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a+", encoding="utf-8") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield f
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def replayed(self, f: TextIO | None = None) -> set[str]:
        if f is None:
            if not self.path.exists():
                return set()
            with self.path.open(encoding="utf-8") as g:
                return self._parse(g.read())
        f.seek(0)
        return self._parse(f.read())

    def _parse(self, text: str) -> set[str]:
        done = set()
        for line in text.splitlines():
            if line.strip():
                entry = json.loads(line)
                if entry.get("dlqTopic") == self.topic:
                    done.add(entry["ref"])
        return done


def cmd_list(args: argparse.Namespace, out: TextIO) -> int:
    letters = read_all(args.bootstrap, args.dlq_topic)
    done = ReplayLog(args.replay_log, args.dlq_topic).replayed()
    if args.limit is not None:
        letters = letters[-args.limit :] if args.limit else []
    rows = [
        {
            "ref": d.ref,
            "id": d.event.id,
            "type": d.event.attributes.get("type", ""),
            "source": d.event.attributes.get("source", ""),
            "subject": d.event.attributes.get("subject"),
            "errorCode": d.event.attributes.get("knativeerrorcode"),
            "errorDest": d.event.attributes.get("knativeerrordest"),
            "errorData": d.error_data(),
            "origin": d.origin or None,
            "deadLetteredAt": datetime.fromtimestamp(d.timestamp_ms / 1000, tz=UTC).isoformat(),
            "replayed": d.ref in done,
        }
        for d in letters
    ]
    if args.json:
        json.dump(rows, out, indent=2)
        out.write("\n")
        return 0
    if not rows:
        print(f"no dead letters in {args.dlq_topic}", file=out)
    for row in rows:
        code = row["errorCode"] or "none (connection error or timeout)"
        print(
            f"{row['ref']}  {row['deadLetteredAt']}  id={row['id']}  type={row['type']}"
            f"{'  REPLAYED' if row['replayed'] else ''}\n"
            f"    source={row['source']}  origin={row['origin'] or '?'}\n"
            f"    error: code={code}  dest={row['errorDest']}\n"
            f"    data: {str(row['errorData'])[:300]!r}",
            file=out,
        )
    return 0


def cmd_replay(args: argparse.Namespace, out: TextIO) -> int:
    letters = read_all(args.bootstrap, args.dlq_topic)
    log = ReplayLog(args.replay_log, args.dlq_topic)
    producer: Any = None
    with log.locked() as f:
        done = log.replayed(f)
        if args.all and not letters:
            print(f"no dead letters in {args.dlq_topic}", file=out)
            return 0
        if args.all:
            chosen: dict[tuple[str, str], DeadLetter] = {}
            for d in letters:  # oldest first: the newest dead letter of an event wins
                chosen[(d.event.attributes.get("source", ""), d.event.id)] = d
            todo = list(chosen.values())
        else:
            matching = [d for d in letters if d.event.id == args.id]
            if not matching:
                print(f"no dead letter with id {args.id!r} in {args.dlq_topic}", file=out)
                return 1
            todo = matching[-1:]
        # Only the newest dead letter of an event is a candidate: older copies (redeliveries)
        # are never replayed, and a replay that fails again makes a new, replayable letter.
        todo = [d for d in todo if d.ref not in done]
        if not todo:
            print("nothing to replay (already replayed)", file=out)
            return 0
        try:
            for d in todo:
                target = args.to_topic or d.origin_topic or args.default_topic
                original = d.original()
                if args.dry_run:
                    print(f"would replay {d.ref} id={d.event.id} -> {target}", file=out)
                    continue
                if producer is None:
                    producer = KafkaProducer(
                        bootstrap_servers=args.bootstrap.split(","),
                        acks="all",
                        allow_auto_create_topics=False,
                        max_block_ms=10000,
                    )
                meta = producer.send(
                    target, key=d.key, value=original.data, headers=original.kafka_headers()
                ).get(timeout=15)
                entry = {
                    "dlqTopic": args.dlq_topic,
                    "ref": d.ref,
                    "id": d.event.id,
                    "source": d.event.attributes.get("source", ""),
                    "to": f"{target}/{meta.partition}/{meta.offset}",
                    "at": datetime.now(UTC).isoformat(),
                }
                f.write(json.dumps(entry) + "\n")
                f.flush()
                os.fsync(f.fileno())
                print(f"replayed {d.ref} id={d.event.id} -> {entry['to']}", file=out)
        finally:
            if producer is not None:
                producer.close(timeout=5)
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    env = os.environ
    state = Path(env.get("BOXOFFICE_STATE_DIR", Path(__file__).resolve().parents[2] / ".state"))
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--bootstrap", default=env.get("BOXOFFICE_KAFKA_BOOTSTRAP_SERVERS", ""))
    common.add_argument(
        "--dlq-topic", default=env.get("BOXOFFICE_DEAD_LETTER_TOPIC", "booking-dlq")
    )
    common.add_argument("--replay-log", type=Path, default=state / "dlq" / "replayed.jsonl")
    p = argparse.ArgumentParser(prog="stack/boxo dlq", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    ls = sub.add_parser("list", parents=[common], help="print the dead letters")
    ls.add_argument("--limit", type=int, help="only the newest N")
    ls.add_argument("--json", action="store_true", help="machine-readable output")
    rp = sub.add_parser("replay", parents=[common], help="re-publish dead-lettered events")
    which = rp.add_mutually_exclusive_group(required=True)
    which.add_argument("--id", help="the CloudEvent id to replay")
    which.add_argument("--all", action="store_true", help="every event not yet replayed")
    rp.add_argument("--to-topic", help="target topic (default: the original topic)")
    rp.add_argument(
        "--default-topic",
        default=env.get("BOXOFFICE_BOOKING_TOPIC", "booking"),
        help="target when the original topic is unknown",
    )
    rp.add_argument("--dry-run", action="store_true")
    args = p.parse_args(argv)
    if not args.bootstrap:
        p.error("--bootstrap (or BOXOFFICE_KAFKA_BOOTSTRAP_SERVERS) is required")
    return args


def main(argv: list[str] | None = None, out: TextIO = sys.stdout) -> int:
    args = parse_args(argv)
    if args.command == "list":
        return cmd_list(args, out)
    return cmd_replay(args, out)


if __name__ == "__main__":
    sys.exit(main())
