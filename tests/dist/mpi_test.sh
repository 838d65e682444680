#!/usr/bin/env bash
# Data-parallel training under mpirun on this machine (loopback, oversubscribed, as root
# where CI runs as root), the way a user runs it:
#  - one step over N = 1, 2, 3, 4 ranks equals the single-process step (grad_worker: within
#    1e-4; unsynchronised batch norm, the control, must fail), and 16 steps drift apart no
#    faster than a single process with other summation orders (reversed batches);
#  - sums in flight stay bitwise rank-order sums when the ranks' timing differs;
#  - the per-epoch state checksum stops every rank when one rank's model differs;
#  - `mpirun -np 2|4 odyssey train` against `odyssey train`: the first steps' losses agree
#    within 1e-4, the final weights within 2% (the float rounding of the sums grows in
#    training; grad_worker --steps shows the reversed-batch yardstick at several times
#    that); a repeat with the same N is bitwise equal;
#  - SIGTERM to mpirun stops every rank at one step with one checkpoint, and the resume
#    under mpirun is bitwise equal to the uninterrupted run; resuming with another N works;
#  - SIGKILL of one rank stops the others within seconds with a message naming it, the
#    newest checkpoint loads and the resume finishes bitwise equal;
#  - a batch not divisible by N, a rank that cannot read its data, and a usage error on one
#    rank: one message, exit 2, nothing left running.
# Usage: mpi_test.sh <odyssey> <grad_worker> <weights_diff>
set -u
odyssey=$1
grad_worker=$2
weights_diff=$3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0
fail() {
  echo "FAIL: $*"
  failures=$((failures + 1))
}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# Ranks unbound (Open MPI binds each to a core by default); a graceful stop gets 5 s before
# mpirun's SIGKILL (its default is 1 s, which can be less than a training step).
mpi=(mpirun --oversubscribe --bind-to none --mca odls_base_sigkill_timeout 5)

for n in 1 2 3 4; do
  out=$("${mpi[@]}" -np "$n" "$grad_worker" 2>&1) && echo "ok:   $out" | head -1 || fail "grad_worker on $n ranks: $out"
done
if out=$("${mpi[@]}" -np 2 "$grad_worker" --local-bn 2>&1); then
  fail "unsynchronised batch norm passed the check: $out"
else
  echo "ok:   the control (batch norm per shard) fails: $(echo "$out" | head -1)"
fi
# Sums in flight while ranks' timing differs: a collective entered out of order on one rank
# is MPI_ERR_TRUNCATE or a corrupted heap (as a CI run of -np 4 training once showed).
for n in 2 3 4; do
  out=$("${mpi[@]}" -np "$n" "$grad_worker" --sum-order 2>&1) && echo "ok:   $n ranks, rank-dependent timing: $(echo "$out" | head -1)" ||
    fail "sums under rank-dependent timing on $n ranks: $out"
done
for n in 2 3; do
  out=$("${mpi[@]}" -np "$n" "$grad_worker" --checksum 2>&1) && echo "ok:   $n ranks, one differs: $out" ||
    fail "the state checksum on $n ranks: $out"
done
out=$("${mpi[@]}" -np 2 "$grad_worker" --steps 16 2>&1)
echo "$out" | tail -1
read -r sharded reversed <<<"$(echo "$out" | sed -n 's/^weights: 2 ranks \([^ ]*\) from whole; reversed batches \([^ ]*\) from whole.*/\1 \2/p')"
awk -v a="$sharded" -v b="$reversed" 'BEGIN { exit !(a != "" && a + 0 <= b + 0) }' ||
  fail "16 steps on 2 ranks drift from one process by $sharded, more than other summation orders ($reversed)"

"$(dirname "$0")/../cli/small_fashion_mnist.sh" "$tmp/data" 96
"$(dirname "$0")/../cli/small_fashion_mnist.sh" "$tmp/more" 288
# 4 batches of 24 per epoch, 2 epochs.
common=(train --image-size 28 --epochs 2 --lr 0.01 --threads 1 --seed 4 --log-every 1)
args=("${common[@]}" --data "$tmp/data" --batch-size 24 --quiet)
"$odyssey" "${args[@]}" --out "$tmp/n1" >/dev/null 2>&1 || fail "the single-process run"
losses() { awk -F, '$1 == "step" { print $5 }' "$1/metrics.csv"; }
for n in 2 4; do
  "${mpi[@]}" -np "$n" "$odyssey" "${args[@]}" --out "$tmp/n$n" >"$tmp/n$n.log" 2>&1 || { fail "mpirun -np $n: $(cat "$tmp/n$n.log")"; continue; }
  paste <(losses "$tmp/n1" | head -2) <(losses "$tmp/n$n" | head -2) |
    awk '{ d = $1 - $2; if (d < 0) d = -d; if (d > 1e-4 * $1) bad = 1 } END { exit bad }' ||
    fail "-np $n: the first losses differ: $(paste -d' ' <(losses "$tmp/n1") <(losses "$tmp/n$n") | head -2 | tr '\n' ' ')"
  # The first step's accuracy counts the whole batch (a fraction of 24 images) on every N.
  [ "$(awk -F, '$1 == "step" { print $6; exit }' "$tmp/n1/metrics.csv")" = "$(awk -F, '$1 == "step" { print $6; exit }' "$tmp/n$n/metrics.csv")" ] ||
    fail "-np $n: the first step's accuracy differs from one process's"
  "$weights_diff" "$tmp/n$n/weights.safetensors" "$tmp/n1/weights.safetensors" 0.02 >"$tmp/diff" ||
    fail "-np $n: final weights: $(cat "$tmp/diff")"
  echo "ok:   -np $n against one process: first losses within 1e-4, weights $(cat "$tmp/diff")"
  [ "$(ls "$tmp/n$n" | grep -c checkpoint)" -eq 2 ] || fail "-np $n: not one set of checkpoints: $(ls "$tmp/n$n")"
done
"${mpi[@]}" -np 2 "$odyssey" "${args[@]}" --out "$tmp/n2again" >/dev/null 2>&1
cmp -s "$tmp/n2/weights.safetensors" "$tmp/n2again/weights.safetensors" && echo "ok:   -np 2 repeated: bitwise equal" ||
  fail "-np 2 repeated: the weights differ"

# Stops: 3 epochs of 12 batches, without --quiet, to watch the progress lines.
# Time-based mid-epoch checkpoints too (every 0.3 s: rank 0's clock decides for all ranks).
slow=(train --image-size 28 --epochs 3 --lr 0.01 --threads 1 --seed 4 --log-every 1 --data "$tmp/more" --batch-size 24
  --checkpoint-every 0.005m)
"${mpi[@]}" -np 2 "$odyssey" "${slow[@]}" --out "$tmp/slow" >/dev/null 2>&1 || fail "the uninterrupted -np 2 run"
start_in_epoch_2() {  # $1: run directory, $2: ranks; sets pid
  "${mpi[@]}" -np "$2" "$odyssey" "${slow[@]}" --out "$1" >"$1.log" 2>"$1.err" &
  pid=$!
  # mpirun forwards the ranks' output late; the first epoch's checkpoint tells the time.
  for _ in $(seq 1200); do
    if [ -e "$1/checkpoint-epoch-0001.safetensors" ]; then
      sleep 0.4
      return 0
    fi
    sleep 0.05
  done
  fail "the run into $1 never reached epoch 2"
  kill -KILL "$pid"
  return 1
}
run=$tmp/term
# mpirun does not pass a SIGTERM on at once: it sends SIGCONT, waits odls_base_sigkill_timeout
# (5 s here), sends SIGTERM, waits as long again, then SIGKILL (strace shows the kill() calls).
# So the ranks get the signal about 5.4 s after epoch 1's checkpoint appears: in epoch 2 or 3
# of 3 (epochs of 3-5 s here). On a host quick enough to finish first, the run just ends (its
# final weights exist): that attempt says nothing about stopping, so it is repeated (up to 3
# times). A run that got the signal in time and did not stop still fails below.
for attempt in 1 2 3; do
  rm -rf "$run" "$run".*
  start_in_epoch_2 "$run" 2 || break
  kill -TERM "$pid"
  wait "$pid"
  [ -e "$run/weights.safetensors" ] || break
  echo "note: SIGTERM attempt $attempt came after the last step; again"
done
if [ -e "$run/checkpoint-epoch-0001.safetensors" ]; then
  [ "$(grep -c "stopped by SIGTERM in epoch [23]/3" "$run.err")" -eq 1 ] || fail "SIGTERM: not one stop message: $(cat "$run.err")"
  [ "$(ls "$run" | grep -c 'checkpoint-epoch-000[12]-batch-')" -eq 1 ] || fail "SIGTERM: not one mid-epoch checkpoint: $(ls "$run")"
  cp -r "$run" "$tmp/term-n1"
  "${mpi[@]}" -np 2 "$odyssey" "${slow[@]}" --out "$run" --resume >"$run.resume.log" 2>&1 || fail "SIGTERM: the resume failed"
  cmp -s "$tmp/slow/weights.safetensors" "$run/weights.safetensors" && echo "ok:   SIGTERM to mpirun -np 2: stopped $(grep -o 'in epoch [0-9]*/3 after batch [0-9]*/12' "$run.err"), one checkpoint; resumed bitwise equal" ||
    fail "SIGTERM: the resumed weights differ from the uninterrupted -np 2 run's"
  # The same checkpoint resumed by one process: the math does not depend on N.
  "$odyssey" "${slow[@]}" --out "$tmp/term-n1" --resume >/dev/null 2>&1 || fail "resuming -np 2's checkpoint on one process"
  "$weights_diff" "$tmp/term-n1/weights.safetensors" "$tmp/slow/weights.safetensors" 0.02 >"$tmp/diff" &&
    echo "ok:   -np 2's checkpoint resumed by one process: $(cat "$tmp/diff")" || fail "resume on one process: $(cat "$tmp/diff")"
fi

# SIGKILL of rank 1 in epoch 2.
run=$tmp/kill
if start_in_epoch_2 "$run" 2; then
  victim=
  for p in $(pgrep -f "odyssey train.*--out $run"); do
    tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=1" && victim=$p
  done
  if [ -z "$victim" ]; then
    fail "no rank 1 to kill"
    kill -KILL "$pid"
  else
    kill -KILL "$victim"
    start=$(date +%s)
    wait "$pid"
    took=$(($(date +%s) - start))
    [ "$took" -le 20 ] || fail "SIGKILL: the other ranks took ${took}s to stop"
    grep -q "rank 1 .*exited on signal 9" "$run.err" || fail "SIGKILL: no message naming rank 1: $(cat "$run.err")"
    newest=$(ls "$run"/checkpoint-*.safetensors | sort | tail -1)
    "$odyssey" info --weights "$newest" >/dev/null 2>&1 || fail "SIGKILL: the newest checkpoint does not load"
    "${mpi[@]}" -np 2 "$odyssey" "${slow[@]}" --out "$run" --resume >"$run.resume.log" 2>&1 || fail "SIGKILL: the resume failed"
    cmp -s "$tmp/slow/weights.safetensors" "$run/weights.safetensors" &&
      echo "ok:   SIGKILL of rank 1: the job ended in ${took}s naming it; resumed bitwise equal" ||
      fail "SIGKILL: the resumed weights differ"
  fi
fi

# Refusals: one message, exit code 2.
out=$("${mpi[@]}" -q -np 4 "$odyssey" "${common[@]}" --data "$tmp/data" --batch-size 30 --out "$tmp/odd" 2>&1)
rc=$?
[ "$rc" -eq 2 ] && [ "$(echo "$out" | grep -c "does not split into 4 equal shards")" -eq 1 ] &&
  echo "ok:   batch 30 on 4 ranks: exit 2, one message" || fail "batch 30 on 4 ranks: exit $rc: $out"
out=$("${mpi[@]}" -q -np 1 "$odyssey" "${common[@]}" --data "$tmp/data" --out "$tmp/unread" : \
      -np 1 "$odyssey" "${common[@]}" --data "$tmp/nowhere" --out "$tmp/unread" 2>&1)
rc=$?
[ "$rc" -eq 2 ] && [ "$(echo "$out" | grep -c "rank 1: .*train-images-idx3-ubyte")" -eq 1 ] && [ ! -e "$tmp/unread" ] &&
  echo "ok:   rank 1 cannot read its data: exit 2, one message" || fail "unreadable data on rank 1: exit $rc: $out"

out=$(timeout 120 "${mpi[@]}" -q -np 1 "$odyssey" "${common[@]}" --data "$tmp/data" --out "$tmp/usage" : \
      -np 1 "$odyssey" "${common[@]}" --data "$tmp/data" --bogus --out "$tmp/usage" 2>&1)
rc=$?
[ "$rc" -eq 2 ] && [ "$(echo "$out" | grep -c "The following argument was not expected: --bogus")" -eq 1 ] &&
  echo "ok:   a usage error on rank 1 alone: exit 2, one message" || fail "usage error on rank 1: exit $rc: $out"

if [ "$failures" -ne 0 ]; then
  echo "$failures case(s) failed"
  exit 1
fi
echo "all cases passed"
