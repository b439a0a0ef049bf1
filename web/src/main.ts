// reelforge's web page: the library (cards, drag-and-drop upload with live per-slice
// progress), a video (player, 1 fps thumbnail strip, score curve, candidates, transcript),
// search (thumbnails, marked snippets, every stage's score, play in place) and highlights
// (options, live events, segments on the timeline, the reel, downloads). Every call is
// gRPC-Web to the server that serves this page; media comes from its /media paths (byte
// ranges), uploads go to /api/upload. No framework, no external fonts or scripts.

import { createClient, type Client, type Interceptor, ConnectError } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { Admin } from "./gen/reelforge/v1/admin_pb";
import { Ingest } from "./gen/reelforge/v1/ingest_pb";
import { Search, SearchMode } from "./gen/reelforge/v1/search_pb";
import {
  Highlight,
  HighlightStrategy,
  TimelineFormat,
  type HighlightSegment,
} from "./gen/reelforge/v1/highlight_pb";
import type { VideoSummary } from "./gen/reelforge/v1/common_pb";

const KEY = "reelforge.key";
const key = () => sessionStorage.getItem(KEY) ?? "";

const withKey: Interceptor = (next) => async (req) => {
  if (key()) req.header.set("authorization", `Bearer ${key()}`);
  return next(req);
};
const transport = createGrpcWebTransport({ baseUrl: location.origin, interceptors: [withKey] });
const ingest: Client<typeof Ingest> = createClient(Ingest, transport);
const search: Client<typeof Search> = createClient(Search, transport);
const highlights: Client<typeof Highlight> = createClient(Highlight, transport);
const admin: Client<typeof Admin> = createClient(Admin, transport);

// ---- small helpers ------------------------------------------------------------------

type Attrs = Record<string, string | number | boolean | ((e: Event) => void)>;

function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  ...children: (Node | string | null | undefined)[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (typeof value === "function") el.addEventListener(name.replace(/^on/, ""), value);
    // Through CSSOM: the page's CSP allows no inline style attributes.
    else if (name === "style") el.style.cssText = String(value);
    else if (typeof value === "boolean") {
      if (value) el.setAttribute(name, "");
    } else el.setAttribute(name, String(value));
  }
  for (const c of children) if (c !== null && c !== undefined) el.append(c);
  return el;
}

const clock = (ms: number | bigint) => {
  const s = Number(ms) / 1000;
  const m = Math.floor(s / 60);
  return `${String(m).padStart(2, "0")}:${(s - m * 60).toFixed(1).padStart(4, "0")}`;
};

const frameUrl = (videoId: string, ms: number | bigint) =>
  `/media/videos/${videoId}/frames/${Math.max(0, Math.round(Number(ms)))}.jpg`;
const sourceUrl = (videoId: string) => `/media/videos/${videoId}/source`;
const fileUrl = (highlightId: string, file: string) => `/media/highlights/${highlightId}/${file}`;

function errorText(e: unknown): string {
  if (e instanceof ConnectError) return `${e.code === undefined ? "" : codeName(e.code)}: ${e.rawMessage}`;
  return e instanceof Error ? e.message : String(e);
}

function codeName(code: number): string {
  const names = [
    "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
    "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
    "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
    "UNAUTHENTICATED",
  ];
  return names[code] ?? String(code);
}

const main = () => document.getElementById("main") as HTMLElement;
const status = (text: string, error = false) => {
  const s = document.getElementById("status") as HTMLElement;
  s.textContent = text;
  s.className = error ? "error" : "";
};

function show(...children: Node[]) {
  main().replaceChildren(...children);
  const first = main().querySelector<HTMLElement>("h1");
  first?.focus();
}

// ---- the key --------------------------------------------------------------------------

async function setKey(value: string) {
  if (value) sessionStorage.setItem(KEY, value);
  else sessionStorage.removeItem(KEY);
  // The same key as an HttpOnly cookie for <video> and <img> (media paths only).
  await fetch("/api/session", {
    method: "POST",
    headers: value ? { authorization: `Bearer ${value}` } : {},
  });
  route();
}

function keyForm(): HTMLElement {
  const input = h("input", { type: "password", id: "key", placeholder: "API key (rf_…)", "aria-label": "API key", value: key() });
  return h(
    "form",
    { class: "key", onsubmit: (e: Event) => { e.preventDefault(); void setKey(input.value.trim()); } },
    input,
    h("button", { type: "submit" }, "Use key"),
  );
}

// ---- library --------------------------------------------------------------------------

async function libraryView() {
  const cards = h("ul", { class: "cards", "aria-label": "Videos" });
  const progress = h("div", { class: "progress", "aria-live": "polite" });
  const file = h("input", { type: "file", id: "upload-file", accept: "video/*", multiple: true });
  const drop = h(
    "label",
    { class: "drop", for: "upload-file", tabindex: 0 },
    "Drop videos here or choose files to ingest",
    file,
  );
  const refresh = async () => {
    try {
      const videos: VideoSummary[] = [];
      let pageToken = "";
      do {
        const page = await ingest.listVideos({ pageToken });
        videos.push(...page.videos);
        pageToken = page.nextPageToken;
      } while (pageToken);
      cards.replaceChildren(...videos.map(card));
      if (!videos.length) cards.append(h("li", { class: "empty" }, "No videos yet."));
      status(`${videos.length} videos`);
    } catch (e) {
      status(errorText(e), true);
    }
  };
  const uploadAll = async (files: File[]) => {
    for (const f of files) await upload(f, progress);
    await refresh();
  };
  file.addEventListener("change", () => { if (file.files) void uploadAll([...file.files]); });
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    if (e.dataTransfer?.files) void uploadAll([...e.dataTransfer.files]);
  });
  show(h("h1", { tabindex: -1 }, "Library"), drop, progress, cards);
  await refresh();
}

function card(v: VideoSummary): HTMLElement {
  const models = [v.analyzer, v.transcriber, v.textEmbedder].filter(Boolean).join(", ");
  return h(
    "li",
    { class: "card" },
    h(
      "a",
      { href: `#/video/${v.videoId}`, "data-video": v.videoId },
      h("img", { src: frameUrl(v.videoId, Number(v.durationMs) / 2), alt: "", loading: "lazy" }),
      h("strong", {}, v.filename),
      h("span", {}, `${clock(v.durationMs)} · ${v.sliceCount} slices`),
      h("small", {}, models),
    ),
  );
}

async function upload(f: File, progress: HTMLElement) {
  const line = h("p", {}, `${f.name}: uploading…`);
  const bar = h("progress", { max: 1, value: 0, "aria-label": `${f.name} slices analysed` });
  progress.append(h("div", { class: "job" }, line, bar));
  const response = await fetch(`/api/upload?filename=${encodeURIComponent(f.name)}`, {
    method: "POST",
    headers: key() ? { authorization: `Bearer ${key()}` } : {},
    body: f,
  });
  if (!response.ok) {
    line.textContent = `${f.name}: ${response.headers.get("x-reelforge-error") ?? response.statusText}`;
    line.className = "error";
    return;
  }
  const { job_id } = (await response.json()) as { job_id: string };
  try {
    for await (const e of ingest.watchJob({ jobId: job_id })) {
      const ev = e.event;
      if (ev.case === "accepted") {
        bar.max = Math.max(1, ev.value.sliceCount);
        line.textContent = `${f.name}: video ${ev.value.videoId}, ${ev.value.sliceCount} slices`;
      } else if (ev.case === "sliceFinished" && ev.value.analysis) {
        const a = ev.value.analysis;
        bar.value = a.index + 1;
        line.textContent = `${f.name}: slice ${a.index + 1}/${bar.max} ${clock(a.startMs)}–${clock(a.endMs)} score ${a.highlightScore.toFixed(2)}`;
      } else if (ev.case === "done") {
        bar.value = bar.max;
        line.textContent = `${f.name}: done, video ${ev.value.videoId}`;
      } else if (ev.case === "error") {
        line.textContent = `${f.name}: ${ev.value.code}: ${ev.value.message}`;
        line.className = "error";
      }
    }
  } catch (e) {
    line.textContent = `${f.name}: ${errorText(e)}`;
    line.className = "error";
  }
}

// ---- a video ----------------------------------------------------------------------------

async function videoView(videoId: string) {
  const player = h("video", { id: "player", src: sourceUrl(videoId), controls: true, preload: "metadata" });
  const seek = (ms: number | bigint) => {
    player.currentTime = Number(ms) / 1000;
    void player.play().catch(() => undefined);
  };
  show(h("h1", { tabindex: -1 }, "Video"), player);
  try {
    const v = await ingest.getVideo({ videoId });
    const s = v.summary!;
    const duration = Math.max(1, Number(s.durationMs));
    main().querySelector("h1")!.textContent = s.filename;
    const pct = (ms: number | bigint) => `${(100 * Number(ms)) / duration}%`;
    // The 1 fps thumbnails (every other when there are many), each a seek button.
    const step = Math.max(1, Math.ceil(v.frames.length / 120));
    const strip = h(
      "div",
      { class: "strip", role: "group", "aria-label": "Thumbnails" },
      ...v.frames
        .filter((_, i) => i % step === 0)
        .map((f) =>
          h(
            "button",
            { class: "thumb", "data-ms": Number(f.tMs), "aria-label": `seek to ${clock(f.tMs)}`, onclick: () => seek(f.tMs) },
            h("img", { src: frameUrl(videoId, f.tMs), alt: "", loading: "lazy", width: 85, height: 48 }),
          ),
        ),
    );
    // The slices' scores as a curve; candidates as marks under it.
    const points = v.slices
      .map((a) => `${(1000 * (Number(a.startMs) + Number(a.endMs))) / 2 / duration},${100 - 90 * a.highlightScore}`)
      .join(" ");
    const curve = document.createElementNS("http://www.w3.org/2000/svg", "svg");
    curve.setAttribute("viewBox", "0 0 1000 100");
    curve.setAttribute("preserveAspectRatio", "none");
    curve.setAttribute("class", "curve");
    curve.setAttribute("role", "img");
    curve.setAttribute("aria-label", "highlight score per slice");
    curve.innerHTML = `<polyline fill="none" stroke="currentColor" stroke-width="2" points="${points}"/>`;
    const candidates = h(
      "div",
      { class: "lane", role: "group", "aria-label": "Highlight candidates" },
      ...v.slices.flatMap((a) =>
        a.segments.map((c) =>
          h(
            "button",
            {
              class: `mark p${c.priority}`,
              style: `left:${pct(c.startMs)};width:${pct(Number(c.endMs) - Number(c.startMs))}`,
              title: `${clock(c.startMs)}–${clock(c.endMs)} score ${c.score.toFixed(2)}: ${c.description}`,
              "aria-label": `candidate ${clock(c.startMs)} to ${clock(c.endMs)}`,
              onclick: () => seek(c.startMs),
            },
          ),
        ),
      ),
    );
    const transcript = h(
      "ol",
      { class: "transcript", "aria-label": "Transcript" },
      ...[...v.transcript, ...v.subtitles].map((t) =>
        h("li", {}, h("button", { onclick: () => seek(t.startMs) }, `${clock(t.startMs)} `, t.text)),
      ),
    );
    main().append(
      h("p", { class: "summary" }, s.summary),
      h("h2", {}, "Timeline"),
      strip,
      curve,
      candidates,
      h("p", {}, h("a", { href: `#/highlight/new/${videoId}` }, "Make a highlight of this video")),
      h("h2", {}, "Transcript"),
      v.transcript.length + v.subtitles.length ? transcript : h("p", {}, "No speech or subtitles."),
      h("h2", {}, "Slices"),
      h(
        "ol",
        { class: "slices" },
        ...v.slices.map((a) =>
          h("li", {}, h("button", { onclick: () => seek(a.startMs) }, `${clock(a.startMs)}–${clock(a.endMs)} `, h("b", {}, a.highlightScore.toFixed(2)), ` ${a.description}`)),
        ),
      ),
    );
    status(`${s.filename}: ${v.slices.length} slices, ${v.frames.length} thumbnails`);
  } catch (e) {
    status(errorText(e), true);
  }
}

// ---- search -----------------------------------------------------------------------------

function marked(snippet: string): Node[] {
  // The server marks matched words **like this**.
  return snippet.split("**").map((part, i) => (i % 2 ? h("mark", {}, part) : document.createTextNode(part)));
}

function searchView(initial = "") {
  const query = h("input", { id: "query", type: "search", placeholder: "a moment, a line of dialogue, a scene", "aria-label": "Search", value: initial });
  const mode = h(
    "select",
    { id: "mode", "aria-label": "Mode" },
    ...["all", "scene", "transcript", "visual"].map((m) => h("option", { value: m }, m)),
  );
  const topK = h("input", { id: "top-k", type: "number", min: 1, max: 200, value: 10, "aria-label": "Results" });
  const kind = h(
    "select",
    { id: "kind", "aria-label": "Kind" },
    h("option", { value: "" }, "any kind"),
    ...["slice_description", "video_summary", "transcript_chunk", "sound_event", "ocr_text", "chapter_summary", "shot", "frame"].map((k) =>
      h("option", { value: k }, k.split("_").join(" ")),
    ),
  );
  const video = h("select", { id: "video", "aria-label": "Video" }, h("option", { value: "" }, "every video"));
  void (async () => {
    try {
      const page = await ingest.listVideos({ pageSize: 1000 });
      video.append(...page.videos.map((v) => h("option", { value: v.videoId }, v.filename)));
    } catch {
      // The search still works across the library.
    }
  })();
  const results = h("ol", { class: "results", id: "results", "aria-label": "Results" });
  const player = h("video", { id: "hit-player", controls: true, preload: "metadata", hidden: true });
  const form = h(
    "form",
    { class: "search", onsubmit: (e: Event) => { e.preventDefault(); void run(); } },
    query, mode, kind, video, topK, h("button", { type: "submit" }, "Search"),
  );
  const modes: Record<string, SearchMode> = {
    all: SearchMode.ALL, scene: SearchMode.SCENE, transcript: SearchMode.TRANSCRIPT, visual: SearchMode.VISUAL,
  };
  async function run() {
    results.replaceChildren();
    status("searching…");
    try {
      let n = 0;
      for await (const r of search.search({
        query: query.value,
        mode: modes[mode.value],
        topK: Number(topK.value),
        kinds: kind.value ? [kind.value] : [],
        videoIds: video.value ? [video.value] : [],
      })) {
        if (r.item.case !== "result") continue;
        const hit = r.item.value;
        const sc = hit.scores;
        const stages = sc
          ? `BM25 rank ${sc.bm25Rank || "–"} (${sc.bm25Score.toFixed(2)}), vector rank ${sc.vectorRank || "–"} (cosine ${sc.vectorCosine.toFixed(3)}), fused ${sc.fused.toFixed(4)}${sc.reranked ? `, rerank ${sc.rerank.toFixed(3)}` : ""}, final ${sc.finalScore.toFixed(3)}`
          : "";
        const play = () => {
          player.hidden = false;
          const start = Number(hit.startMs) / 1000;
          const src = sourceUrl(hit.videoId);
          const begin = () => {
            player.currentTime = start;
            void player.play().catch(() => undefined);
          };
          if (player.dataset.video !== hit.videoId) {
            player.dataset.video = hit.videoId;
            player.addEventListener("loadedmetadata", begin, { once: true });
            player.src = src;
            player.load();
          } else begin();
          player.dataset.start = String(start);
        };
        results.append(
          h(
            "li",
            {},
            h(
              "button",
              { class: "hit", title: stages, "data-start-ms": Number(hit.startMs), onclick: play },
              h("img", { src: frameUrl(hit.videoId, hit.thumbnailMs || hit.startMs), alt: "" }),
              h("span", { class: "when" }, `${hit.filename} ${clock(hit.startMs)}–${clock(hit.endMs)} · ${hit.source}`),
              h("span", { class: "snippet" }, ...marked(hit.snippet || hit.text)),
              h("span", { class: "stages" }, stages),
            ),
          ),
        );
        n++;
      }
      status(`${n} results for “${query.value}”`);
    } catch (e) {
      status(errorText(e), true);
    }
  }
  show(h("h1", { tabindex: -1 }, "Search"), form, player, results);
  if (initial) void run();
}

// ---- highlights -------------------------------------------------------------------------

async function highlightView(videoId: string) {
  const strategy = h(
    "select",
    { id: "strategy", "aria-label": "Strategy" },
    ...["sliced", "direct", "points", "template", "script"].map((s) => h("option", { value: s }, s)),
  );
  const target = h("input", { id: "target", type: "number", min: 0, step: 1, placeholder: "every segment", "aria-label": "Target seconds" });
  const slice = h("input", { id: "slice", type: "number", min: 0, step: 1, placeholder: "30", "aria-label": "Slice seconds" });
  const crossfade = h("input", { id: "crossfade", type: "number", min: 0, step: 0.1, value: 0.4, "aria-label": "Crossfade seconds" });
  const script = h("input", { id: "script", placeholder: "script: a jump, then the crowd", "aria-label": "Script" });
  // What the segments are described in ("" = the server's highlights.language).
  const language = h(
    "select",
    { id: "language", "aria-label": "Description language" },
    h("option", { value: "" }, "server default"),
    h("option", { value: "en" }, "English"),
    h("option", { value: "zh" }, "中文"),
  );
  const events = h("ol", { class: "events", "aria-live": "polite" });
  const timeline = h("div", { class: "lane segments", role: "group", "aria-label": "Chosen segments" });
  const out = h("div", { class: "reel" });
  const strategies: Record<string, HighlightStrategy> = {
    direct: HighlightStrategy.DIRECT, sliced: HighlightStrategy.SLICED, points: HighlightStrategy.POINTS,
    template: HighlightStrategy.TEMPLATE, script: HighlightStrategy.SCRIPT,
  };
  let duration = 1;
  try {
    const v = await ingest.getVideo({ videoId });
    duration = Math.max(1, Number(v.summary?.durationMs ?? 1));
  } catch (e) {
    status(errorText(e), true);
  }
  async function run() {
    events.replaceChildren();
    timeline.replaceChildren();
    out.replaceChildren();
    status("making the highlight…");
    try {
      let segments: HighlightSegment[] = [];
      for await (const e of highlights.highlight({
        videoId,
        strategy: strategies[strategy.value],
        targetSeconds: Number(target.value) || 0,
        sliceSeconds: Number(slice.value) || 0,
        crossfadeSeconds: Number(crossfade.value) || 0,
        script: script.value,
        language: language.value,
        timelineFormats: [TimelineFormat.EDL, TimelineFormat.OTIO, TimelineFormat.FCPXML, TimelineFormat.XMEML],
      })) {
        const ev = e.event;
        if (ev.case === "slice") {
          events.append(h("li", {}, `slice ${ev.value.index + 1} ${clock(ev.value.startMs)}–${clock(ev.value.endMs)}: ${ev.value.segments.length} candidates${ev.value.error ? ` (${ev.value.error})` : ""}`));
        } else if (ev.case === "chosen") {
          segments = ev.value.segments;
          events.append(h("li", {}, `chosen ${segments.length} of ${ev.value.candidates} candidates`));
          timeline.replaceChildren(
            ...segments.map((s, i) =>
              h("span", {
                class: `mark p${s.priority}`,
                style: `left:${(100 * Number(s.startMs)) / duration}%;width:${(100 * (Number(s.endMs) - Number(s.startMs))) / duration}%`,
                title: `${i + 1}. ${clock(s.startMs)}–${clock(s.endMs)} ${s.description}`,
              }),
            ),
          );
        } else if (ev.case === "render") {
          status(`rendering ${Math.round((100 * ev.value.stepsDone) / Math.max(1, ev.value.stepsTotal))}%`);
        } else if (ev.case === "done") {
          const d = ev.value;
          const files = d.files.filter((f) => f === "reel.mp4" || f.startsWith("timeline."));
          out.replaceChildren(
            d.files.includes("reel.mp4")
              ? h("video", { id: "reel", src: fileUrl(d.highlightId, "reel.mp4"), controls: true, preload: "auto" })
              : h("p", {}, "Not rendered."),
            h(
              "ul",
              { class: "downloads", "aria-label": "Downloads" },
              ...files.map((f) => h("li", {}, h("a", { href: fileUrl(d.highlightId, f), download: f }, f))),
            ),
            h(
              "ol",
              { class: "segments-list" },
              ...d.segments.map((s) => h("li", {}, `${clock(s.startMs)}–${clock(s.endMs)} `, h("b", {}, s.score.toFixed(2)), ` ${s.description}`)),
            ),
          );
          status(`highlight ${d.highlightId}: ${d.segments.length} segments, reel ${clock(d.reelDurationMs)}`);
        }
      }
    } catch (e) {
      status(errorText(e), true);
    }
  }
  show(
    h("h1", { tabindex: -1 }, "Highlight"),
    h(
      "form",
      { class: "options", onsubmit: (e: Event) => { e.preventDefault(); void run(); } },
      h("label", {}, "Strategy ", strategy),
      h("label", {}, "Target s ", target),
      h("label", {}, "Slice s ", slice),
      h("label", {}, "Crossfade s ", crossfade),
      h("label", {}, "Script ", script),
      h("label", {}, "Language ", language),
      h("button", { type: "submit", id: "make" }, "Make the highlight"),
    ),
    timeline,
    events,
    out,
  );
}

// ---- routing ----------------------------------------------------------------------------

function route() {
  const parts = location.hash.replace(/^#\/?/, "").split("/");
  document.querySelectorAll("nav a").forEach((a) =>
    a.setAttribute("aria-current", String(a.getAttribute("href") === `#/${parts[0]}`)),
  );
  if (parts[0] === "video" && parts[1]) void videoView(parts[1]);
  else if (parts[0] === "search") searchView(decodeURIComponent(parts[1] ?? ""));
  else if (parts[0] === "highlight" && parts[2]) void highlightView(parts[2]);
  else void libraryView();
}

async function start() {
  document.getElementById("keyslot")?.replaceChildren(keyForm());
  try {
    const info = await admin.getServerInfo({});
    const footer = document.getElementById("server");
    if (footer) footer.textContent = `reelforge-server ${info.version}`;
  } catch {
    // Without a key on a server that needs one: the key form is the way in.
  }
  window.addEventListener("hashchange", route);
  route();
}

void start();
