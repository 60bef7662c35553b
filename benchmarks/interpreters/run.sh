#!/usr/bin/env bash
# CPython 3.11 vs 3.12 vs 3.13 on the request path, in instructions (callgrind: a count that does
# not depend on what else the machine is doing). For each pyenv interpreter found: a venv of
# requirements/runtime.lock (hash-checked) in the project cache, then get_event's app driven
# in-process (drive.py): 300 warm-up and N measured requests on GET /events/{id} (one PostgreSQL
# read) and GET /healthz (the framework and Flask alone); only the measured loop is counted.
# Needs the dev stack (make up) for its database and valgrind (apt-get install valgrind).
#   benchmarks/interpreters/run.sh [N]       (docs/benchmarks.md, "Which CPython")
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cache=${BOXOFFICE_CACHE_DIR:-$HOME/.cache/boxoffice}/interpreters
n=${1:-2000}
mkdir -p "$cache"
command -v valgrind >/dev/null || apt-get install -y -q valgrind >/dev/null
gcc -O1 -shared -fPIC -o "$cache/libregion.so" "$root/benchmarks/interpreters/region.c"
set -a && . "$root/.state/env" && set +a
export BOXOFFICE_REGION_LIB=$cache/libregion.so PYTHONHASHSEED=0 \
  PYTHONPYCACHEPREFIX=$cache/pycache
unset PYTHONDONTWRITEBYTECODE
printf '%-8s %-8s %14s\n' python route instr/request
for version in 3.11 3.12 3.13; do
  py=$(ls -d "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$version".*/bin/python 2>/dev/null | tail -1)
  [[ -n $py ]] || { echo "no pyenv CPython $version: skipped" >&2; continue; }
  venv=$cache/py${version/./}
  if [[ ! -x $venv/bin/python ]]; then
    "$py" -m venv "$venv"
    PIP_CACHE_DIR="$cache/../pip" "$venv/bin/pip" install -q --disable-pip-version-check \
      --require-hashes --no-deps -r "$root/requirements/runtime.lock"
    "$venv/bin/python" -c 'import site; print(site.getsitepackages()[0])' |
      { read -r sp; echo "$root/src" >"$sp/boxoffice-src.pth"; }
  fi
  "$venv/bin/python" "$root/benchmarks/interpreters/drive.py" requests -n 10 >/dev/null  # byte code
  for route in event healthz; do
    log=$cache/$version-$route.log
    valgrind --tool=callgrind --collect-atstart=no --callgrind-out-file="$cache/$version-$route.cg" \
      "$venv/bin/python" "$root/benchmarks/interpreters/drive.py" requests --route "$route" -n "$n" \
      >"$log" 2>&1
    ir=$(sed -n 's/.*Collected : \([0-9]*\).*/\1/p' "$log")
    printf '%-8s %-8s %14d\n' "$version" "$route" $((ir / n))
  done
done
