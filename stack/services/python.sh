# shellcheck shell=bash
# Python: a virtualenv at .venv with the locked dependencies (hash-checked) and src/ on its path.
BX_VENV="${BOXOFFICE_VENV:-$BX_ROOT/.venv}"

python_install() {
  local lock="$BX_ROOT/requirements/dev.lock" stamp="$BX_VENV/.lock.sha256" want
  want=$(cat "$lock" "$BX_ROOT/pyproject.toml" | sha256sum | cut -c1-64)
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then return 0; fi
  local py="${BOXOFFICE_PYTHON:-python3}"
  "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || bx_die "Python 3.11+ is required ($py)"
  if [[ ! -x "$BX_VENV/bin/python" ]]; then
    bx_log "creating virtualenv $BX_VENV"
    "$py" -m venv "$BX_VENV"
  fi
  bx_log "installing Python dependencies (requirements/dev.lock, hash-checked)"
  PIP_CACHE_DIR="$BX_CACHE/pip" "$BX_VENV/bin/pip" install -q --disable-pip-version-check \
    --require-hashes -r "$lock" || bx_die "pip install of $lock failed"
  # The package itself is put on the path (src layout) rather than built: nothing to rebuild on edits.
  "$BX_VENV/bin/python" -c 'import site, sys; print(site.getsitepackages()[0])' |
    { read -r sp; echo "$BX_ROOT/src" >"$sp/boxoffice-src.pth"; }
  echo "$want" >"$stamp"
}
python_healthy() { [[ -x "$BX_VENV/bin/python" ]]; }
python_start() { :; }
