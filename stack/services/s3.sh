# shellcheck shell=bash
# S3 for ticket documents: moto's server mode (the `moto[server]` dev dependency in .venv), on
# 127.0.0.1:$BOXOFFICE_S3_PORT, with the bucket $BOXOFFICE_S3_BUCKET created after start.
# Objects live in the server's memory only: a restart empties the bucket (dev only; orders keep
# document_stored_at, so re-storing needs `UPDATE orders SET document_stored_at = NULL`).
# Also owns the dev ticket keys: an Ed25519 private key (BOXOFFICE_TICKET_SIGNING_KEY, consume_order)
# generated once into $BX_STATE/secrets/ticket-signing-ed25519 (mode 600), and the public keys
# check_in accepts and publishes (BOXOFFICE_TICKET_PUBLIC_KEYS), one per line in
# $BX_STATE/secrets/ticket-public-keys (the current key's first; add older ones to keep them valid).
: "${BOXOFFICE_S3_PORT:=28085}"
: "${BOXOFFICE_S3_BUCKET:=boxoffice-tickets}"
: "${BOXOFFICE_S3_REGION:=us-east-1}"
BX_TICKET_KEY_FILE="$BX_STATE/secrets/ticket-signing-ed25519"
BX_TICKET_PUBLIC_FILE="$BX_STATE/secrets/ticket-public-keys"

s3_url() { echo "http://$BX_HOST:$BOXOFFICE_S3_PORT"; }
_s3_python() { echo "${BX_VENV:-$BX_ROOT/.venv}/bin/python"; }

s3_install() {
  [[ -x "${BX_VENV:-$BX_ROOT/.venv}/bin/moto_server" ]] ||
    bx_die "moto_server missing from the virtualenv (dev dependency moto[server]); run stack/boxo up"
  if [[ ! -s "$BX_TICKET_KEY_FILE" ]]; then
    mkdir -p "$(dirname "$BX_TICKET_KEY_FILE")"
    (umask 077 && "$(_s3_python)" -m boxoffice.processes.ticketkeys new | sed -n 's/^private=//p' >"$BX_TICKET_KEY_FILE.new") &&
      mv "$BX_TICKET_KEY_FILE.new" "$BX_TICKET_KEY_FILE" || bx_die "could not generate the ticket signing key"
    rm -f "$BX_TICKET_PUBLIC_FILE"
  fi
  if [[ ! -s "$BX_TICKET_PUBLIC_FILE" ]]; then
    "$(_s3_python)" -m boxoffice.processes.ticketkeys public "$BX_TICKET_KEY_FILE" | sed -n 's/^public=//p' \
      >"$BX_TICKET_PUBLIC_FILE" || bx_die "could not derive the ticket public key"
  fi
}

# Healthy = the server answers and the bucket exists (HEAD on the bucket).
s3_healthy() { curl -fsS --max-time 3 -o /dev/null -I "$(s3_url)/$BOXOFFICE_S3_BUCKET"; }

s3_start() {
  bx_stop_pid s3 5
  bx_start_bg s3 "${BX_VENV:-$BX_ROOT/.venv}/bin/moto_server" -H "$BX_HOST" -p "$BOXOFFICE_S3_PORT"
  bx_wait s3 30 bx_http_ok "$(s3_url)/moto-api/"
  AWS_ACCESS_KEY_ID=dev AWS_SECRET_ACCESS_KEY=dev "$(_s3_python)" - "$(s3_url)" "$BOXOFFICE_S3_BUCKET" \
    "$BOXOFFICE_S3_REGION" <<'PY' || bx_die "could not create bucket $BOXOFFICE_S3_BUCKET in moto"
import sys, boto3
url, bucket, region = sys.argv[1:4]
s3 = boto3.client("s3", endpoint_url=url, region_name=region)
if bucket not in [b["Name"] for b in s3.list_buckets().get("Buckets", [])]:
    s3.create_bucket(Bucket=bucket)
PY
  bx_wait s3 10 s3_healthy
}

s3_stop() { bx_stop_pid s3 5; }

s3_status_line() { echo "$(s3_url) bucket $BOXOFFICE_S3_BUCKET (moto, in memory), log $(bx_log_file s3)"; }

s3_env() {
  echo "export BOXOFFICE_S3_ENDPOINT_URL=$(s3_url)"
  echo "export BOXOFFICE_S3_BUCKET=$BOXOFFICE_S3_BUCKET"
  echo "export BOXOFFICE_S3_REGION=$BOXOFFICE_S3_REGION"
  echo "export BOXOFFICE_S3_ACCESS_KEY_ID=dev"
  echo "export BOXOFFICE_S3_SECRET_ACCESS_KEY=dev"
  [[ -s "$BX_TICKET_KEY_FILE" ]] && echo "export BOXOFFICE_TICKET_SIGNING_KEY=$(cat "$BX_TICKET_KEY_FILE")"
  [[ -s "$BX_TICKET_PUBLIC_FILE" ]] &&
    echo "export BOXOFFICE_TICKET_PUBLIC_KEYS=$(grep -v '^#' "$BX_TICKET_PUBLIC_FILE" | paste -sd, -)"
  return 0
}
