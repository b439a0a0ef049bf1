#!/usr/bin/env bash
# The main job on the embedded default, as a new user would run it: install what is
# missing, build, start a server, ingest the real sample videos over gRPC with live
# per-slice results, show what was stored, search it, make a highlight reel of the action
# sample (rendered, fetched, its timeline exported), score it against the sample's known
# highlights, and stop the server.
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

echo
echo "demo: searching for a line of the read speech and for a scene"
./target/debug/reelforge search "a cold hearted and selfish young man" --top-k 3
./target/debug/reelforge search "sudden loud audio" --mode scene --top-k 3

demo_id=$(./target/debug/reelforge videos list --json | python3 -c 'import json,sys; print(next(v["video_id"] for v in json.load(sys.stdin) if v["filename"] == "demo.mp4"))')
echo
echo "demo: highlight reel of demo.mp4 (sliced, 10 s slices, 0.4 s crossfades, subtitles)"
./target/debug/reelforge highlight "$demo_id" --strategy sliced --slice-seconds 10 \
  --crossfade 0.4 --subtitles soft --out "$data/reel.mp4" --timeline-out "$data/timeline"
cat >"$data/truth.json" <<'JSON'
{"segments": [{"start": 20, "end": 30}, {"start": 45, "end": 50.28}]}
JSON
echo
echo "demo: the reel against demo.mp4's known highlights (bikes 20-30 s, Big Buck Bunny 45-50.3 s)"
./target/debug/reelforge eval --truth "$data/truth.json" --pred "$data/timeline/timeline.json"
