#!/usr/bin/env bash
# The human-approval scenario as two separate processes on the real stack.
#   process 1: start the thread; it drafts, stops before human_review and EXITS.
#   process 2: a webhook-like `amber resume` approves; the email is sent once.
#   then an auditor forks the thread at its question and rejects it there.
set -euo pipefail
cd "$(dirname "$0")/.."
eval "$(compose/stack up)"
export AMBER_TOPIC_PREFIX="${AMBER_TOPIC_PREFIX:-amber-demo}"
export AMBER_GRAPHS="examples.email_approval:graph"
export AMBER_OUTBOX_DIR="${AMBER_OUTBOX_DIR:-outbox}"
thread="tx-$(date +%s)-$$"

amber db migrate
amber projector >/tmp/amber-demo-projector.log 2>&1 &
projector=$!
trap 'kill $projector 2>/dev/null || true' EXIT

echo "== process 1: start $thread (runs until the approval interrupt, then exits)"
amber start examples.email_approval:graph --thread "$thread" \
  --input '{"recipient": "cfo@example.com", "request": "wire 2.4M EUR to the new supplier"}'
echo "process 1 exited with status $?; no Amber process holds the thread now"

echo
echo "== process 2: the approval webhook arrives"
amber resume "$thread" --value '{"approved": true}' --actor alice@treasury \
  --reason "verified supplier by phone"

echo
echo "== history of $thread"
amber history "$thread"
echo
echo "== an auditor re-folds $thread from the raw log and checks the projection"
amber verify "$thread" || { echo "verify: the projection differs from the log" >&2; exit 1; }
echo
echo "== what if alice had said no? fork $thread at its question (seq 2) and answer it"
amber fork "$thread" --seq 2 --thread "$thread-what-if" --actor auditor \
  --reason "what if the payment had been rejected"
amber resume "$thread-what-if" --value '{"approved": false}' --actor auditor
amber history "$thread-what-if"
echo
echo "== outbox ($AMBER_OUTBOX_DIR): one email, from $thread; the fork sent none"
ls -1 "$AMBER_OUTBOX_DIR" | grep -F "${thread}" || true
