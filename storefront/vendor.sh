#!/usr/bin/env bash
# The storefront's npm packages (package-lock.json), installed with `npm ci` into
# storefront/node_modules (cache: $BOXOFFICE_CACHE_DIR/npm, default ~/.cache/boxoffice/npm).
#   storefront/vendor.sh           install, then copy the runtime libraries into public/assets/vendor/
#   storefront/vendor.sh --check   install, then fail unless the committed copies are those files
#   storefront/vendor.sh --install install only (the browser tests need axe-core)
# The copies are committed: the storefront has no build step, so the local stack, docker compose
# and the chart serve public/ as it is (docs/adr/0016-storefront.md). After changing a version in
# package.json: `npm install --package-lock-only` here, then this script, and commit both.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"
mode=${1:-copy}

# package file -> committed copy (byte for byte)
FILES=(
  "node_modules/oidc-client-ts/dist/browser/oidc-client-ts.min.js public/assets/vendor/oidc-client-ts.min.js"
  "node_modules/oidc-client-ts/LICENSE public/assets/vendor/oidc-client-ts.LICENSE.txt"
  "node_modules/jwt-decode/LICENSE public/assets/vendor/jwt-decode.LICENSE.txt"
  "node_modules/qrcode-generator/dist/qrcode.mjs public/assets/vendor/qrcode.mjs"
)

if ! command -v npm >/dev/null; then
  # shellcheck source=stack/lib.sh
  source "$here/../stack/lib.sh"
  bx_apt_install npm
fi
stamp=node_modules/.package-lock.sha256
want=$(sha256sum package-lock.json | cut -c1-64)
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
  cache="${BOXOFFICE_CACHE_DIR:-$HOME/.cache/boxoffice}/npm"
  npm ci --ignore-scripts --no-audit --no-fund --prefer-offline --cache "$cache" >/dev/null
  echo "$want" >"$stamp"
fi

rc=0
for pair in "${FILES[@]}"; do
  read -r from to <<<"$pair"
  case $mode in
    --install) ;;
    --check)
      cmp -s "$from" "$to" || { echo "storefront/$to differs from $from (run storefront/vendor.sh)" >&2; rc=1; } ;;
    copy) install -m 0644 "$from" "$to" ;;
    *) echo "usage: $0 [--check | --install]" >&2; exit 2 ;;
  esac
done
exit $rc
