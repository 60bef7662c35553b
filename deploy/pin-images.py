#!/usr/bin/env python3
"""Every container image Boxoffice names, and their digest pins.

    deploy/pin-images.py list [--json]   each reference: pinned (tag@sha256:...) or not yet
    deploy/pin-images.py pin [REF...]    resolve tag -> digest and write tag@digest into the file
    deploy/pin-images.py check           resolve every pinned tag again; report pins that moved

Resolving needs a registry, so `pin` and `check` run where one is reachable (this project's CI
machines reach none): with crane, skopeo, regctl or `docker buildx imagetools`, the first one on
PATH. The digest written is the tag's image index (all platforms), so one pin serves amd64 and
arm64. To bump an image: change its tag, run `pin` for it, commit both. Images that upstream
manifests and charts choose (Knative, Strimzi, CloudNativePG operator, kube-prometheus-stack) are
theirs to pin; the references here are the ones this repository writes.

Stdlib only, so it runs with any python3.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")

# file -> pattern whose group "ref" is an image reference (one per match)
SOURCES: dict[str, re.Pattern[str]] = {
    "Containerfile": re.compile(r"^ARG PYTHON_IMAGE=(?P<ref>\S+)$", re.M),
    "docker-compose.yml": re.compile(
        r"^\s+image:\s*(?P<ref>(?!(?:dev\.local/)?boxoffice/)\S+)$", re.M
    ),
    "kind-config.yaml": re.compile(r"^\s+image:\s*(?P<ref>\S+)$", re.M),
    "helm/platform/cnpg-cluster.yaml": re.compile(r"^\s+imageName:\s*(?P<ref>\S+)$", re.M),
    "helm/boxoffice/values.yaml": re.compile(r"^\s+image:\s*(?P<ref>\S+[:@]\S+)$", re.M),
    # the chart builds <repository>:<tag>; a "tag@sha256:..." tag pins it
    "helm/platform/keycloakx-values.yaml": re.compile(
        r'^\s+repository:\s*(?P<repo>\S+)\n\s+tag:\s*"(?P<tag>[^"]+)"$', re.M
    ),
}


@dataclass(frozen=True)
class Ref:
    file: str
    ref: str

    @property
    def pinned(self) -> bool:
        return bool(DIGEST.search(self.ref))

    @property
    def tag_ref(self) -> str:
        """The reference without its digest."""
        return DIGEST.sub("", self.ref)


def references() -> list[Ref]:
    out = []
    for name, pattern in SOURCES.items():
        text = (ROOT / name).read_text()
        for m in pattern.finditer(text):
            ref = m.group("ref") if "ref" in m.groupdict() else f"{m['repo']}:{m['tag']}"
            out.append(Ref(name, ref))
    return out


def resolve(ref: str) -> str:
    """The digest (sha256:...) of ref's manifest list / index, from its registry."""
    tools: list[tuple[str, list[str]]] = [
        ("crane", ["crane", "digest", ref]),
        ("skopeo", ["skopeo", "inspect", "--raw", f"docker://{ref}"]),
        ("regctl", ["regctl", "image", "digest", ref]),
        ("docker", ["docker", "buildx", "imagetools", "inspect", ref, "--format", "{{json .}}"]),
    ]
    for tool, cmd in tools:
        if not shutil.which(tool):
            continue
        proc = subprocess.run(cmd, capture_output=True, check=False, timeout=120)  # noqa: S603
        if proc.returncode != 0:
            raise SystemExit(f"{tool} could not resolve {ref}: {proc.stderr.decode().strip()}")
        if tool == "skopeo":  # the digest of a manifest is the sha256 of its exact bytes
            return "sha256:" + hashlib.sha256(proc.stdout).hexdigest()
        if tool == "docker":
            return str(json.loads(proc.stdout)["manifest"]["digest"])
        return proc.stdout.decode().strip()
    raise SystemExit("no resolver on PATH: install crane, skopeo, regctl or docker buildx")


def pin(wanted: set[str]) -> int:
    changed = 0
    for r in references():
        if r.pinned or (wanted and r.tag_ref not in wanted):
            continue
        digest = resolve(r.tag_ref)
        path = ROOT / r.file
        text = path.read_text()
        if r.file.endswith("keycloakx-values.yaml"):
            tag = r.ref.rsplit(":", 1)[1]
            text = text.replace(f'tag: "{tag}"', f'tag: "{tag}@{digest}"', 1)
        else:
            text = text.replace(r.ref, f"{r.ref}@{digest}", 1)
        path.write_text(text)
        print(f"pinned {r.ref}@{digest} in {r.file}")
        changed += 1
    return changed


def check() -> int:
    moved = 0
    for r in references():
        if not r.pinned:
            print(f"not pinned: {r.ref} ({r.file})")
            continue
        now = resolve(r.tag_ref)
        if r.ref.endswith(now):
            print(f"ok: {r.ref}")
        else:
            print(f"moved: {r.tag_ref} is now {now} ({r.file} pins {r.ref.rsplit('@', 1)[1]})")
            moved += 1
    return moved


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    lister = sub.add_parser("list")
    lister.add_argument("--json", action="store_true")
    pinner = sub.add_parser("pin")
    pinner.add_argument("refs", nargs="*", help="tag references to pin (default: all unpinned)")
    sub.add_parser("check")
    args = parser.parse_args(argv)
    if args.cmd == "list":
        refs = references()
        if args.json:
            print(json.dumps([{**asdict(r), "pinned": r.pinned} for r in refs], indent=2))
        else:
            for r in refs:
                print(f"{'pinned  ' if r.pinned else 'unpinned'}  {r.ref}  ({r.file})")
        return 0
    if args.cmd == "pin":
        pin(set(args.refs))
        return 0
    return 1 if check() else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
