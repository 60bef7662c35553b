"""Small admin helper for the local broker, run with the project's venv (kafka-python).

    python stack/kafka/kafka_admin.py ping BOOTSTRAP
    python stack/kafka/kafka_admin.py ensure-topics BOOTSTRAP NAME:PARTITIONS [...]

`ping` exits 0 when the broker answers a metadata request (the stack's health check);
`ensure-topics` creates the missing topics (replication factor 1) and grows an existing topic
that has fewer partitions than asked (never shrinks: Kafka cannot).
"""

from __future__ import annotations

import contextlib
import sys

from kafka import KafkaAdminClient
from kafka.errors import TopicAlreadyExistsError


def _admin(bootstrap: str, timeout_ms: int = 5000) -> KafkaAdminClient:
    return KafkaAdminClient(
        bootstrap_servers=bootstrap,
        client_id="boxoffice-stack",
        request_timeout_ms=timeout_ms,
        bootstrap_timeout_ms=timeout_ms,
    )


def ping(bootstrap: str) -> int:
    admin = _admin(bootstrap, 3000)
    try:
        admin.describe_cluster()
    finally:
        admin.close()
    return 0


def ensure_topics(bootstrap: str, specs: list[str]) -> int:
    wanted: dict[str, int] = {}
    for spec in specs:
        name, _, parts = spec.partition(":")
        wanted[name] = int(parts or "1")
    admin = _admin(bootstrap, 15000)
    try:
        existing = {t["name"]: len(t["partitions"]) for t in admin.describe_topics()}
        missing = {
            n: {"num_partitions": p, "replication_factor": 1}
            for n, p in wanted.items()
            if n not in existing
        }
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):  # created concurrently: fine
                admin.create_topics(missing, timeout_ms=15000, wait_for_metadata=True)
            for n, p in missing.items():
                print(
                    f"kafka: created topic {n} ({p['num_partitions']} partitions)", file=sys.stderr
                )
        grow = {n: p for n, p in wanted.items() if n in existing and existing[n] < p}
        if grow:
            admin.create_partitions(grow)
            for n, p in grow.items():
                print(f"kafka: topic {n}: {existing[n]} -> {p} partitions", file=sys.stderr)
    finally:
        admin.close()
    return 0


def main(argv: list[str]) -> int:
    if len(argv) >= 2 and argv[0] == "ping":
        return ping(argv[1])
    if len(argv) >= 3 and argv[0] == "ensure-topics":
        return ensure_topics(argv[1], argv[2:])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
