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
  --allow-root "$PWD/assets/samples" --allow-root "$PWD/assets/music" >"$data/server.out" 2>"$log" &
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

echo
echo "demo: direct on demo.mp4 (the analyser reads the whole video; no render), same truth"
./target/debug/reelforge highlight "$demo_id" --strategy direct \
  --no-render --timeline-out "$data/timeline-direct"
./target/debug/reelforge eval --truth "$data/truth.json" --pred "$data/timeline-direct/timeline.json"
echo
echo "demo: a script on demo.mp4 (its events found by scene search, in the script's order)"
./target/debug/reelforge highlight "$demo_id" --strategy script \
  --script "a burst of fast motion with a scene cut, then music starting with sudden loud audio" \
  --no-render --timeline-out "$data/timeline-script"
./target/debug/reelforge eval --truth "$data/truth.json" --pred "$data/timeline-script/timeline.json"

echo
echo "demo: points + clips on demo.mp4 (the analyser's points matched against its 2 s clips),"
echo "      with background music chosen from assets/music and ducked under the original sound"
./target/debug/reelforge highlight "$demo_id" --strategy points --music-dir "$PWD/assets/music" \
  --out "$data/reel-points.mp4" --timeline-out "$data/timeline-points"
./target/debug/reelforge eval --truth "$data/truth.json" --pred "$data/timeline-points/timeline.json"

echo
echo "demo: a highlight library from demo.mp4's two moments, matched against recap.mp4"
echo "      (a re-edit of the same footage: Big Buck Bunny at 8-13.3 s, the bikes at 25.3-35.3 s)"
./target/debug/reelforge ingest --slice-seconds 10 assets/samples/recap.mp4
recap_id=$(./target/debug/reelforge videos list --json | python3 -c 'import json,sys; print(next(v["video_id"] for v in json.load(sys.stdin) if v["filename"] == "recap.mp4"))')
./target/debug/reelforge library add "$demo_id" --start 20 --end 30 --category sports \
  --tag bikes --description "riders racing downhill on mountain bikes" --score 0.9
./target/debug/reelforge library add "$demo_id" --start 45 --end 50.28 --category sports \
  --tag cartoon --description "a cartoon rabbit wakes up and stretches" --score 0.8
./target/debug/reelforge library script sports "the bike race, then the cartoon rabbit"
./target/debug/reelforge highlight "$recap_id" --strategy template --category sports \
  --no-render --timeline-out "$data/timeline-template"
cat >"$data/recap-truth.json" <<'JSON'
{"segments": [{"start": 8, "end": 13.28}, {"start": 25.28, "end": 35.28}]}
JSON
./target/debug/reelforge eval --truth "$data/recap-truth.json" --pred "$data/timeline-template/timeline.json"
