#!/usr/bin/env bash
# Stopping `odyssey train` on purpose, as a user does: SIGINT (Ctrl-C) or SIGTERM (what a
# scheduler or mpirun sends) in the middle of epoch 2 ends the run after the current step
# with exit code 130 / 143, a checkpoint at that step, and the command that continues it;
# that command ends with weights byte for byte those of the uninterrupted run. A second
# signal stops at once, without the checkpoint.
# Usage: stop_test.sh <path to odyssey>
set -u
odyssey=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0
fail() {
  echo "FAIL: $*"
  failures=$((failures + 1))
}

"$(dirname "$0")/small_fashion_mnist.sh" "$tmp/data" 128
# 8 batches of 16 per epoch; one thread, so each step lasts long enough to signal within it.
args=(train --image-size 28 --data "$tmp/data" --batch-size 16 --epochs 2 --lr 0.02 --threads 1 --seed 4)
"$odyssey" "${args[@]}" --out "$tmp/whole" >"$tmp/whole.log" 2>&1 || { cat "$tmp/whole.log"; echo "FAIL: the uninterrupted run"; exit 1; }

# Starts the run into $1 in the background ($pid) and waits until epoch 2 has begun.
start_in_epoch_2() {
  "$odyssey" "${args[@]}" --out "$1" >"$1.log" 2>"$1.err" &
  pid=$!
  for _ in $(seq 600); do
    grep -q "^epoch 2/2 step" "$1.log" 2>/dev/null && return 0
    sleep 0.05
  done
  fail "the run into $1 never reached epoch 2"
  kill -KILL "$pid"
  return 1
}

for sig in INT TERM; do
  run=$tmp/run-$sig
  start_in_epoch_2 "$run" || continue
  kill -"$sig" "$pid"
  wait "$pid"
  rc=$?
  want=$((128 + $(kill -l "$sig")))
  [ "$rc" -eq "$want" ] || fail "SIG$sig: exit code $rc, want $want"
  grep -q "stopped by SIG$sig in epoch 2/2 after batch [1-8]/8" "$run.err" || fail "SIG$sig: no stop message: $(cat "$run.err")"
  ls "$run"/checkpoint-epoch-0001-batch-00000[1-8].safetensors >/dev/null 2>&1 ||
    fail "SIG$sig: no checkpoint in epoch 2: $(ls "$run")"
  [ ! -e "$run/weights.safetensors" ] || fail "SIG$sig: final weights of a stopped run"
  again=$(sed -n 's/^odyssey: to continue the run: //p' "$run.err")
  [[ "$again" == *"--resume"* ]] || { fail "SIG$sig: no resume command: $(cat "$run.err")"; continue; }
  eval "$again" >"$run.resume.log" 2>&1 || fail "SIG$sig: the printed command failed: $again"
  grep -q "^resuming .*checkpoint-epoch-0001-batch-" "$run.resume.log" || fail "SIG$sig: did not resume mid-epoch"
  cmp -s "$tmp/whole/weights.safetensors" "$run/weights.safetensors" ||
    fail "SIG$sig: the resumed run's weights differ from the uninterrupted run's"
  echo "ok:   SIG$sig in epoch 2 -> exit $rc, checkpoint, resumed bitwise equal"
done

# Two signals: the second, sent once the first has been acknowledged, kills the run during
# the step the first one lets finish. (Should that step end between the two, the run stops
# normally; then try again.)
immediate=0
for attempt in 1 2 3; do
  run=$tmp/twice-$attempt
  start_in_epoch_2 "$run" || break
  kill -INT "$pid"
  for _ in $(seq 200); do
    grep -q "stopping after this step" "$run.err" && break
    sleep 0.01
  done
  kill -INT "$pid"
  wait "$pid"
  rc=$?
  if ! grep -q "stopped by" "$run.err"; then
    [ "$rc" -eq 130 ] || fail "second SIGINT: exit code $rc, want 130"
    ls "$run"/checkpoint-epoch-0001-batch-*.safetensors >/dev/null 2>&1 && fail "second SIGINT: a checkpoint was written"
    immediate=1
    echo "ok:   a second SIGINT stops at once (exit $rc, no checkpoint)"
    break
  fi
done
[ "$immediate" -eq 1 ] || fail "a second SIGINT never stopped the run at once"

if [ "$failures" -ne 0 ]; then
  echo "$failures case(s) failed"
  exit 1
fi
echo "all cases passed"
