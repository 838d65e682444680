#!/usr/bin/env bash
# Crash-safe checkpoints, proven by killing: a training run (tests/train/kill_worker: the
# real trainer on a tiny ResNet-18, a checkpoint every epoch and every 3 steps within epochs)
# is started and SIGKILLed at
# random moments, KILLS times, resumed after each kill. After every kill the newest
# checkpoint must load; the resumed runs must reach the end; the final weights must equal,
# byte for byte, those of the same run done without interruption.
# Usage: kill_test.sh <kill_worker> [KILLS] [SEED]
set -u
worker=$1
kills=${2:-50}
RANDOM=${3:-12345}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

"$worker" train "$tmp/whole" || { echo "FAIL: the uninterrupted run failed"; exit 1; }

run=$tmp/killed
done_kills=0 during_write=0 resumes=0 mid_epoch=0
# The arguments that continue the killed run: --resume once it has a checkpoint (a kill
# before the first one leaves nothing to resume, so the run starts over).
continue_args() {
  args=(train "$run")
  if ls "$run"/checkpoint-epoch-*.safetensors >/dev/null 2>&1; then
    args+=(--resume)
    resumes=$((resumes + 1))
  fi
}
while [ "$done_kills" -lt "$kills" ]; do
  continue_args
  "$worker" "${args[@]}" 2>"$tmp/err" &
  pid=$!
  # 0-400 ms: long enough for startup, steps, evaluation and checkpoint writes to be hit.
  sleep "0.$(printf '%03d' $((RANDOM % 400)))"
  if ! kill -0 "$pid" 2>/dev/null; then
    wait "$pid" || { echo "FAIL: a run ended with an error:"; cat "$tmp/err"; exit 1; }
    echo "the run finished before kill $((done_kills + 1)); starting it again"
    rm -rf "$run"
    continue
  fi
  kill -KILL "$pid"
  wait "$pid" 2>/dev/null
  done_kills=$((done_kills + 1))
  # A temporary file left behind means the kill landed inside a checkpoint write.
  if ls "$run"/*.tmp-* >/dev/null 2>&1; then during_write=$((during_write + 1)); fi
  pos=$("$worker" check "$run") || { echo "FAIL: after kill $done_kills the newest checkpoint does not load"; exit 1; }
  if [ "$pos" = none ]; then
    echo "kill $done_kills: no checkpoint yet"
  else
    read -r epochs batches <<<"$pos"
    if [ "$batches" -gt 0 ]; then
      mid_epoch=$((mid_epoch + 1))
      echo "kill $done_kills: newest checkpoint, $batches batches into epoch $((epochs + 1)), loads"
    else
      echo "kill $done_kills: newest checkpoint, after epoch $epochs, loads"
    fi
  fi
done
continue_args
"$worker" "${args[@]}" || { echo "FAIL: the final run (${args[*]}) failed"; exit 1; }
if cmp -s "$tmp/whole/weights.safetensors" "$run/weights.safetensors"; then
  echo "PASS: $done_kills kills ($during_write inside a checkpoint write; $mid_epoch left a mid-epoch checkpoint newest), $resumes resumes; final weights bitwise equal to the uninterrupted run"
else
  echo "FAIL: after $done_kills kills the resumed run's weights differ from the uninterrupted run's"
  exit 1
fi
