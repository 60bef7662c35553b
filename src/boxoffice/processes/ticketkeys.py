"""Ticket signing keys (Ed25519) for operators: make one, or show the public key of one.

    python -m boxoffice.processes.ticketkeys new             # a new private key, public key, kid
    python -m boxoffice.processes.ticketkeys public FILE|-   # a private key's public key + kid
    python -m boxoffice.processes.ticketkeys jwks KEY,KEY... # the JWKS check_in would publish

The private key (base64url of its 32-byte seed) goes into BOXOFFICE_TICKET_SIGNING_KEY of
consume_order only (a Secret, never an image); the public keys of every key whose tickets must
still verify go into BOXOFFICE_TICKET_PUBLIC_KEYS of check_in. Rotation and retirement: README
("Ticket keys") and docs/adr/0015-tickets-and-check-in.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from boxoffice.domain.tickets import TicketSigner, load_public_keys, load_signer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m boxoffice.processes.ticketkeys", description=__doc__
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("new", help="print a new private key, its public key and key id")
    public = sub.add_parser("public", help="print the public key and key id of a private key")
    public.add_argument("file", help="file holding the private key, or - for standard input")
    jwks = sub.add_parser("jwks", help="print the JWKS document of public keys")
    jwks.add_argument("keys", help="public keys, comma-separated (BOXOFFICE_TICKET_PUBLIC_KEYS)")
    args = parser.parse_args(argv)

    if args.command == "new":
        signer = TicketSigner.generate()
        print(f"private={signer.private_text()}")
    elif args.command == "public":
        text = sys.stdin.read() if args.file == "-" else Path(args.file).read_text()
        signer = load_signer(text)
    else:
        print(json.dumps(load_public_keys(args.keys).jwks(), indent=2))
        return 0
    print(f"public={signer.public_text()}")
    print(f"kid={signer.kid}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
