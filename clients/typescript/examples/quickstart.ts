// Upload a video, search it, make a highlight and download the reel and a timeline.
//
//   node dist/examples/quickstart.js VIDEO [--addr 127.0.0.1:50051] [--out DIR]
//
// The API key comes from REELFORGE_TOKEN when the server needs one. Prints what it did,
// then a JSON summary as its last line.
import * as fs from "node:fs";
import * as path from "node:path";
import { Client, ReelforgeError } from "../src";

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const flag = (name: string, fallback: string) => {
    const i = args.indexOf(name);
    return i >= 0 ? args.splice(i, 2)[1] : fallback;
  };
  const addr = flag("--addr", process.env.REELFORGE_ADDR ?? "127.0.0.1:50051");
  const out = flag("--out", ".");
  const video = args[0];
  if (!video) throw new Error("usage: quickstart.js VIDEO [--addr HOST:PORT] [--out DIR]");

  const rf = new Client(addr, { token: process.env.REELFORGE_TOKEN });
  try {
    // Upload with progress; each analysed slice as it finishes.
    const videoId = await rf.upload(video, {
      sliceSeconds: 10,
      onProgress: (sent, total) => process.stderr.write(`\ruploaded ${Math.floor((sent * 100) / total)}%`),
      onEvent: (e) => {
        const a = e.slice_finished?.analysis;
        if (a) console.log(`slice ${a.index}: ${Number(a.start_ms) / 1000}-${Number(a.end_ms) / 1000} s score ${a.highlight_score.toFixed(2)}`);
      },
    });
    console.log(`\nvideo ${videoId}`);

    const hits = await rf.search("fast motion", { mode: "SEARCH_MODE_SCENE", top_k: 3, video_ids: [videoId] });
    for (const h of hits) {
      console.log(`hit ${h.rank}: ${h.filename} ${Number(h.start_ms) / 1000}-${Number(h.end_ms) / 1000} s ${h.snippet}`);
    }

    const done = await rf.highlight({
      video_id: videoId,
      strategy: "HIGHLIGHT_STRATEGY_SLICED",
      slice_seconds: 10,
      timeline_formats: ["TIMELINE_FORMAT_XMEML", "TIMELINE_FORMAT_EDL"],
    });
    for (const s of done.segments) {
      console.log(`segment ${Number(s.start_ms) / 1000}-${Number(s.end_ms) / 1000} s: ${s.description}`);
    }
    const reel = path.join(out, "reel.mp4");
    const timeline = path.join(out, "timeline.xml");
    await rf.download(done.highlight_id, "reel.mp4", reel);
    await rf.download(done.highlight_id, "timeline.xml", timeline);
    console.log(`wrote ${reel} and ${timeline}`);

    // A refused call rejects with ReelforgeError and the status code.
    let refused = "";
    try {
      await rf.search("", { top_k: 3 });
    } catch (e) {
      if (e instanceof ReelforgeError) refused = e.code;
      else throw e;
    }

    console.log(
      JSON.stringify({
        video_id: videoId,
        hits: hits.map((h) => ({ video_id: h.video_id, start_ms: Number(h.start_ms), end_ms: Number(h.end_ms) })),
        highlight_id: done.highlight_id,
        segments: done.segments.map((s) => [Number(s.start_ms), Number(s.end_ms)]),
        files: done.files,
        reel_bytes: fs.statSync(reel).size,
        refused,
      }),
    );
  } finally {
    rf.close();
  }
}

main().catch((e) => {
  console.error(`quickstart: ${e instanceof Error ? e.message : e}`);
  process.exit(1);
});
