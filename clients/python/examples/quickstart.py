"""Upload a video, search it, make a highlight and download the reel and a timeline.

    python quickstart.py VIDEO [--addr 127.0.0.1:50051] [--out DIR]

The API key comes from REELFORGE_TOKEN when the server needs one. Prints what it did, then
a JSON summary as its last line.
"""
import argparse
import json
import os
import sys

from reelforge import Client, Error


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("video")
    parser.add_argument("--addr", default=os.environ.get("REELFORGE_ADDR", "127.0.0.1:50051"))
    parser.add_argument("--out", default=".")
    args = parser.parse_args()

    with Client(args.addr, token=os.environ.get("REELFORGE_TOKEN")) as rf:
        # Upload with progress; each analysed slice as it finishes.
        def progress(sent, total):
            print(f"\ruploaded {sent * 100 // max(total, 1)}%", end="", file=sys.stderr)

        def event(e):
            if e.WhichOneof("event") == "slice_finished":
                a = e.slice_finished.analysis
                print(f"slice {a.index}: {a.start_ms / 1000:.0f}-{a.end_ms / 1000:.0f} s "
                      f"score {a.highlight_score:.2f}")

        video_id = rf.upload(args.video, slice_seconds=10, on_progress=progress, on_event=event)
        print(f"\nvideo {video_id}")

        hits = rf.search("fast motion", mode="scene", top_k=3, video_ids=[video_id])
        for h in hits:
            print(f"hit {h.rank}: {h.filename} {h.start_ms / 1000:.1f}-{h.end_ms / 1000:.1f} s "
                  f"{h.snippet}")

        done = rf.highlight(video_id, strategy="sliced", slice_seconds=10,
                            timeline_formats=["fcpxml", "edl"])
        for s in done.segments:
            print(f"segment {s.start_ms / 1000:.1f}-{s.end_ms / 1000:.1f} s: {s.description}")
        reel = os.path.join(args.out, "reel.mp4")
        timeline = os.path.join(args.out, "timeline.fcpxml")
        rf.download(done.highlight_id, "reel.mp4", reel)
        rf.download(done.highlight_id, "timeline.fcpxml", timeline)
        print(f"wrote {reel} and {timeline}")

        # A refused call raises reelforge.Error with the status code.
        try:
            rf.search("", top_k=3)
        except Error as e:
            refused = e.code

        print(json.dumps({
            "video_id": video_id,
            "hits": [{"video_id": h.video_id, "start_ms": h.start_ms, "end_ms": h.end_ms}
                     for h in hits],
            "highlight_id": done.highlight_id,
            "segments": [[s.start_ms, s.end_ms] for s in done.segments],
            "files": list(done.files),
            "reel_bytes": os.path.getsize(reel),
            "refused": refused,
        }))


if __name__ == "__main__":
    main()
