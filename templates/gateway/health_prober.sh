#!/bin/sh
# tierscale gateway health prober: active health checks for the nginx gateway, which nginx
# OSS does not have. Shipped verbatim (components/serving/model_router.py, PROBER_FILE).
#
#   health_prober.sh TARGETS DOWN_FILE [INTERVAL_S] [TIMEOUT_S] [FALL]
#
# TARGETS: `<upstream> <host:port>` per line (model_router.probe_targets). Every INTERVAL_S
# each replica's /health is asked (all at once) with TIMEOUT_S; FALL failed rounds in a row
# put `<upstream> <host:port>` into DOWN_FILE, one answered round takes it out again. The file
# is replaced atomically (rename); model_router.js reads it per request and routes around the
# listed replicas (no nginx reload). A replica that hangs (process stopped, event loop stuck)
# keeps accepting TCP connections, so only an answer counts, never a connect.
#
# POSIX sh plus `wget` (busybox in nginx:alpine, GNU wget on Debian), nothing else.
set -u
targets=$1
down_file=$2
interval=${3:-1}
timeout=${4:-2}
fall=${5:-2}
# GNU wget retries a timed-out read 20 times unless told otherwise; busybox wget tries once and
# knows no -t.
tries=""
if wget --version 2>/dev/null | grep -q "GNU Wget"; then tries="-t 1"; fi
state_dir=$(mktemp -d)
trap 'rm -rf "$state_dir"' EXIT
trap 'exit 0' TERM INT

probe() {  # probe <key> <host:port>: writes 1 (failed) or 0 (answered) to $state_dir/<key>.now
    if wget -q -T "$timeout" $tries -O /dev/null "http://$2/health" 2>/dev/null; then
        echo 0 > "$state_dir/$1.now"
    else
        echo 1 > "$state_dir/$1.now"
    fi
}

while :; do
    i=0
    while read -r upstream server; do
        [ -n "${server:-}" ] || continue
        i=$((i + 1))
        # Each probe in the background, killed by the timeout at the latest.
        probe "$i" "$server" &
    done < "$targets"
    wait
    tmp="$down_file.tmp.$$"
    : > "$tmp"
    i=0
    while read -r upstream server; do
        [ -n "${server:-}" ] || continue
        i=$((i + 1))
        now=$(cat "$state_dir/$i.now" 2>/dev/null || echo 1)
        fails=$(cat "$state_dir/$i.fails" 2>/dev/null || echo 0)
        if [ "$now" = 1 ]; then fails=$((fails + 1)); else fails=0; fi
        echo "$fails" > "$state_dir/$i.fails"
        if [ "$fails" -ge "$fall" ]; then
            echo "$upstream $server" >> "$tmp"
        fi
    done < "$targets"
    if ! cmp -s "$tmp" "$down_file" 2>/dev/null; then
        echo "health_prober: down: $(tr '\n' ' ' < "$tmp")" >&2
    fi
    mv -f "$tmp" "$down_file"
    sleep "$interval"
done
