#!/usr/bin/env bash
# Bytes of memory per request in flight, measured: runs each held-requests
# scenario for 20 s and for 40 s of virtual time (`sim bench`, which prints
# the process's peak RSS) and divides the growth by the 200,000 more
# requests (about: arrivals are Poisson at 10,000 a second) the longer run
# holds. The service hangs past the run's end, so every request is still in
# flight at the end and the peak is the held calls alone.
#
#   cargo build --release && benches/held-request-bytes.sh
#
# SIM names another binary to measure (e.g. an older build).
set -euo pipefail
cd "$(dirname "$0")/.."
sim=${SIM:-target/release/sim}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

for file in benches/held-requests.json benches/held-requests-policies.json; do
    declare -A kib=()
    for seconds in 20 40; do
        sed -e "s/\"duration_ms\": 20000,/\"duration_ms\": ${seconds}000,/" \
            -e "s/\"end_ms\": 21000,/\"end_ms\": $((seconds + 1))000,/" \
            "$file" >"$dir/held-$seconds.json"
        line=$("$sim" bench "$dir/held-$seconds.json" --repeat 1)
        kib[$seconds]=$(sed -n 's/.*peak RSS \([0-9]*\) KiB (first run)$/\1/p' <<<"$line")
        if [[ -z ${kib[$seconds]} ]]; then
            echo "error: $sim bench printed no peak RSS (it reads /proc/self/status): $line" >&2
            exit 1
        fi
    done
    echo "$file: peak RSS ${kib[20]} KiB at 20 s, ${kib[40]} KiB at 40 s:" \
        "$(((kib[40] - kib[20]) * 1024 / 200000)) bytes per held request"
done
