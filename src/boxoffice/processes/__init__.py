"""The long-running processes and operator commands, each run as `python -m
boxoffice.processes.<name>`.

- `server`: every function's HTTP server (granian behind the request queue; docs/adr/0011).
- `admission`: the waiting room's admission controller (docs/adr/0014).
- `documents`: the standalone ticket document worker (docs/adr/0015).
- `relay`: the standalone outbox relay (sweeper) and dead-letter tool (docs/adr/0005).
- `verify`: the read-only invariant checker.
- `ticketkeys`: makes and inspects ticket signing keys.

The long-running ones (admission, documents, relay) start the same way (`startup`) and serve
`/healthz` and `/metrics` on one small server (`health`). Nothing below this package imports it:
it sits on top, beside the functions' entrypoints.
"""
