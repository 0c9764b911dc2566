#!/usr/bin/env bash
# A local Ballista cluster on one machine over one directory: a scheduler,
# two executors and `lakehouse serve --cluster-scheduler`, started in that
# order (each waits for the one before to listen) and all stopped together
# on Ctrl-C or when any of them exits. Usage: cluster.sh BINARY [serve flags]
# Ports: scheduler 50050, executors 50060/50061 and 50062/50063, the server
# its usual 50051 (HTTP 50052); storage ./data unless --storage is given.
set -euo pipefail

binary=$1
shift
storage=./data
args=()
while (($#)); do
    case $1 in
        --storage) storage=$2; shift 2 ;;
        --storage=*) storage=${1#--storage=}; shift ;;
        *) args+=("$1"); shift ;;
    esac
done
shuffle=$(mktemp -d -t lakehouse-shuffle.XXXXXX)
pids=()

stop() {
    kill "${pids[@]}" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$shuffle"
}
trap stop EXIT INT TERM

# Waits (up to 60 s) until something accepts connections on 127.0.0.1:$1.
wait_port() {
    for _ in $(seq 600); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "cluster.sh: nothing listens on port $1" >&2
    exit 1
}

"$binary" scheduler --bind 127.0.0.1:50050 --storage "$storage" &
pids+=($!)
wait_port 50050
for n in 0 1; do
    port=$((50060 + 2 * n))
    mkdir -p "$shuffle/$n"
    "$binary" executor --bind "127.0.0.1:$port" --grpc-port $((port + 1)) \
        --scheduler 127.0.0.1:50050 --concurrent-tasks 1 --storage "$storage" \
        --work-dir "$shuffle/$n" &
    pids+=($!)
    wait_port "$port"
done
"$binary" serve --storage "$storage" --cluster-scheduler 127.0.0.1:50050 ${args[@]+"${args[@]}"} &
pids+=($!)
wait -n "${pids[@]}"
