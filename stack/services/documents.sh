# shellcheck shell=bash
# The ticket document worker: `python -m boxoffice.processes.documents`, a process of its own at a lower
# CPU priority (nice 10), renders and stores the ticket PDFs of confirmed orders (ADR 15). The
# stack runs consume_order with BOXOFFICE_TICKET_DOCUMENT_WORKER=off, so rendering (about 20 ms
# of CPU per ticket) never competes with order processing for the function's interpreter; on a
# busy machine documents lag, orders do not. Log: $BX_LOGS/documents.log.
: "${BOXOFFICE_DOCUMENTS_INTERVAL:=0.5}"

_documents_wanted() { [[ -f "$BX_ROOT/src/boxoffice/processes/documents.py" ]]; }

documents_install() { :; }

documents_healthy() {
  _documents_wanted || return 0
  bx_pid_alive documents
}

documents_start() {
  _documents_wanted || return 0
  bx_stop_pid documents 5
  (
    eval "$(bx_env)"
    bx_start_bg documents nice -n 10 "$BX_ROOT/.venv/bin/python" -m boxoffice.processes.documents \
      --interval "$BOXOFFICE_DOCUMENTS_INTERVAL"
  )
}

documents_stop() { bx_stop_pid documents 10; }

documents_status_line() {
  echo "python -m boxoffice.processes.documents (nice 10, every ${BOXOFFICE_DOCUMENTS_INTERVAL}s) log=$(bx_log_file documents)"
}
