"""Reads a timeline file with OpenTimelineIO's own adapters and prints what an editor's
application would see, as JSON: the clips (source file, source range, place on the
record timeline), the transitions, and the timeline's duration.

    read_timeline.py FILE [RATE]

The adapter is chosen from the file's extension (.edl: otio-cmx3600-adapter, .otio:
OpenTimelineIO's own JSON, .fcpxml: otio-fcpx-xml-adapter, .xml: otio-fcp-adapter). A
file the adapter refuses exits 1 with its error. Where the adapter reads a file into a
collection (FCPXML: library → event → projects), the first timeline in it is read.
"""
import json
import sys

import opentimelineio as otio


def seconds(t):
    return t.to_seconds()


def main():
    path = sys.argv[1]
    rate = float(sys.argv[2]) if len(sys.argv) > 2 else 25.0
    try:
        if path.endswith(".edl"):
            timeline = otio.adapters.read_from_file(path, rate=rate)
        else:
            timeline = otio.adapters.read_from_file(path)
    except Exception as e:  # the adapter's own error, for the test to show
        print(f"{type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
    if isinstance(timeline, otio.schema.SerializableCollection):
        timelines = list(timeline.find_children(descended_from_type=otio.schema.Timeline)) \
            if hasattr(timeline, "find_children") else []
        timelines = timelines or [t for t in timeline if isinstance(t, otio.schema.Timeline)]
        if not timelines:
            print("the file holds no timeline", file=sys.stderr)
            sys.exit(1)
        timeline = timelines[0]
    clips, transitions = [], []
    for track in timeline.video_tracks():
        for item in track:
            if isinstance(item, otio.schema.Transition):
                transitions.append({
                    "in_offset_s": seconds(item.in_offset),
                    "out_offset_s": seconds(item.out_offset),
                })
            elif isinstance(item, otio.schema.Clip):
                placed = item.range_in_parent()
                ref = item.media_reference
                clips.append({
                    "name": item.name,
                    "markers": [m.name for m in item.markers],
                    "source_start_s": seconds(item.source_range.start_time),
                    "source_duration_s": seconds(item.source_range.duration),
                    "record_start_s": seconds(placed.start_time),
                    "target_url": getattr(ref, "target_url", None),
                })
    print(json.dumps({
        "clips": clips,
        "transitions": transitions,
        "duration_s": seconds(timeline.duration()),
    }))


if __name__ == "__main__":
    main()
