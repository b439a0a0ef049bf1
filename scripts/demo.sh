#!/usr/bin/env bash
# The main job on the embedded default, as a new user would run it: install what is
# missing, build, start a server, ingest the real sample video over gRPC with live
# per-slice results, show what was stored, and stop the server.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
cargo build --quiet --bin reelforge-server --bin reelforge

data=${REELFORGE_DEMO_DATA:-$(mktemp -d)}
log="$data/server.log"
./target/debug/reelforge-server --listen 127.0.0.1:0 --data-dir "$data/data" \
  --allow-root "$PWD/assets/samples" >"$data/server.out" 2>"$log" &
server=$!
trap 'kill -TERM $server 2>/dev/null; wait $server 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  grep -q "listening on" "$data/server.out" 2>/dev/null && break
  sleep 0.1
done
addr=$(sed -n 's/^reelforge-server listening on //p' "$data/server.out")
[ -n "$addr" ] || { cat "$log"; echo "demo: server did not start" >&2; exit 1; }
export REELFORGE_ADDR="http://$addr"
echo "demo: server on $REELFORGE_ADDR, data in $data/data"

echo "demo: uploading assets/samples/demo.mp4 and speech.mp4 (10 s slices)"
./target/debug/reelforge ingest --slice-seconds 10 assets/samples/demo.mp4 assets/samples/speech.mp4
echo
./target/debug/reelforge videos list
for video in $(./target/debug/reelforge videos list --json | python3 -c 'import json,sys; print(" ".join(v["video_id"] for v in json.load(sys.stdin)))'); do
  echo
  ./target/debug/reelforge videos show "$video"
done
