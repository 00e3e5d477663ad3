#!/bin/bash
# callgrind-ingest.sh BINARY N OUT (from the repository root): the daemon on the shipped
# config under callgrind, N signed webhook messages one at a time, then SIGTERM; prints
# its instruction total. Run with N and 3N and divide the difference by 2N: the
# instructions of one ingest request, a figure other load on the machine does not move.
# A build from before `[server.rate_limits]` gets the config without the door's keys.
set -e
bin=$1; n=$2; out=$3
dir=$(mktemp -d)
python3 - "$dir" <<'PY'
import re, sys
d = sys.argv[1]
s = open('config/switchboard.toml').read()
s = s.replace('listen = "127.0.0.1:8080"', 'listen = "127.0.0.1:0"').replace('sqlite://data/switchboard.db', f'sqlite://{d}/sb.db')
# One client address sending as fast as it can is what the rate limits stop.
open(f'{d}/sb.toml', 'w').write(s.replace('hook_per_address = 200', 'hook_per_address = 0').replace('hook_per_inbox = 1000', 'hook_per_inbox = 0'))
s = re.sub(r'\n\[server.rate_limits\][^\[]*', '\n', s)
for key in ['header_timeout', 'body_timeout', 'max_connections']:
    s = re.sub(rf'\n{key} = [^\n]*', '', s)
open(f'{d}/old.toml', 'w').write(s)
PY
config=$dir/sb.toml
"$bin" --config "$config" check-config > /dev/null 2>&1 || config=$dir/old.toml
valgrind --tool=callgrind --callgrind-out-file="$out" "$bin" --config "$config" serve > "$dir/out" 2> "$dir/err" &
pid=$!
for _ in $(seq 600); do grep -q listening "$dir/out" 2> /dev/null && break; sleep 0.2; done
addr=$(sed 's#.*http://##' "$dir/out")
python3 "$(dirname "$0")/ingest_requests.py" "$addr" "$n" "$RANDOM"
kill -TERM $pid
wait $pid || true
grep -h "^totals" "$out"
