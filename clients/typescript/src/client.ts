// A thin layer over @grpc/grpc-js and the types generated from reelforge's protos: what a
// service calling reelforge does most (upload with progress, watch a job, search, make and
// download a highlight). Every refused call rejects with a ReelforgeError carrying the
// gRPC status name and the server's message.

import * as fs from "node:fs";
import * as path from "node:path";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";

import type { ProtoGrpcType as AdminProto } from "./generated/admin";
import type { ProtoGrpcType as HighlightProto } from "./generated/highlight";
import type { ProtoGrpcType as IngestProto } from "./generated/ingest";
import type { ProtoGrpcType as SearchProto } from "./generated/search";
import type { AdminClient } from "./generated/reelforge/v1/Admin";
import type { ApiKey__Output } from "./generated/reelforge/v1/ApiKey";
import type { HighlightClient } from "./generated/reelforge/v1/Highlight";
import type { HighlightEvent__Output } from "./generated/reelforge/v1/HighlightEvent";
import type { HighlightRequest } from "./generated/reelforge/v1/HighlightRequest";
import type { HighlightResult__Output } from "./generated/reelforge/v1/HighlightResult";
import type { IngestClient } from "./generated/reelforge/v1/Ingest";
import type { IngestEvent__Output } from "./generated/reelforge/v1/IngestEvent";
import type { SearchClient } from "./generated/reelforge/v1/Search";
import type { SearchRequest } from "./generated/reelforge/v1/SearchRequest";
import type { SearchResult__Output } from "./generated/reelforge/v1/SearchResult";
import type { ServerInfo__Output } from "./generated/reelforge/v1/ServerInfo";

const CHUNK_BYTES = 1 << 20;
const MAX_MESSAGE_BYTES = 64 << 20;

/** The server refused a call: `code` is the gRPC status name, e.g. "NOT_FOUND". */
export class ReelforgeError extends Error {
  constructor(
    readonly code: string,
    readonly details: string,
  ) {
    super(`${code}: ${details}`);
    this.name = "ReelforgeError";
  }

  static of(e: unknown): ReelforgeError {
    const s = e as Partial<grpc.ServiceError>;
    if (typeof s.code === "number") {
      return new ReelforgeError(grpc.status[s.code] ?? String(s.code), s.details ?? "");
    }
    return new ReelforgeError("UNKNOWN", e instanceof Error ? e.message : String(e));
  }
}

export interface ConnectOptions {
  /** An API key (`rf_...`), sent as `authorization: Bearer`. */
  token?: string;
  /** PEM files: the CA to trust (turns TLS on), and a client certificate and key. */
  ca?: string;
  cert?: string;
  key?: string;
}

type Protos = IngestProto & SearchProto & HighlightProto & AdminProto;

function loadProtos(): Protos {
  const dir = path.join(__dirname, "..", "..", "proto");
  const files = fs
    .readdirSync(path.join(dir, "reelforge", "v1"))
    .filter((f) => f.endsWith(".proto"))
    .map((f) => path.join("reelforge", "v1", f));
  const definition = protoLoader.loadSync(files, {
    keepCase: true,
    longs: String,
    enums: String,
    defaults: true,
    oneofs: true,
    includeDirs: [dir],
  });
  return grpc.loadPackageDefinition(definition) as unknown as Protos;
}

export class Client {
  readonly ingest: IngestClient;
  readonly search_: SearchClient;
  readonly highlights: HighlightClient;
  readonly admin: AdminClient;
  private readonly metadata: grpc.Metadata;

  /** `addr`: "host:port", "http://host:port", or "https://host:port" for TLS. */
  constructor(addr = "127.0.0.1:50051", options: ConnectOptions = {}) {
    const tls = addr.startsWith("https://") || options.ca !== undefined;
    const target = addr.replace(/^[a-z]+:\/\//, "");
    const read = (p?: string) => (p === undefined ? null : fs.readFileSync(p));
    const credentials = tls
      ? grpc.credentials.createSsl(read(options.ca), read(options.key), read(options.cert))
      : grpc.credentials.createInsecure();
    const channelOptions = {
      "grpc.max_receive_message_length": MAX_MESSAGE_BYTES,
      "grpc.max_send_message_length": MAX_MESSAGE_BYTES,
    };
    const v1 = loadProtos().reelforge.v1;
    this.ingest = new v1.Ingest(target, credentials, channelOptions);
    this.search_ = new v1.Search(target, credentials, channelOptions);
    this.highlights = new v1.Highlight(target, credentials, channelOptions);
    this.admin = new v1.Admin(target, credentials, channelOptions);
    this.metadata = new grpc.Metadata();
    if (options.token) {
      this.metadata.set("authorization", `Bearer ${options.token.trim()}`);
    }
  }

  close(): void {
    for (const c of [this.ingest, this.search_, this.highlights, this.admin]) {
      c.close();
    }
  }

  /**
   * Uploads a video and waits for its ingest; resolves to the video id.
   * `onProgress(sent, total)` as the file goes out; `onEvent` with every IngestEvent.
   */
  async upload(
    file: string,
    opts: {
      sliceSeconds?: number;
      force?: boolean;
      onProgress?: (sent: number, total: number) => void;
      onEvent?: (e: IngestEvent__Output) => void;
    } = {},
  ): Promise<string> {
    const total = fs.statSync(file).size;
    const call = this.ingest.IngestUpload(this.metadata);
    const done = this.untilDone(call, opts.onEvent);
    call.write({
      header: {
        filename: path.basename(file),
        size_bytes: total,
        options: { slice_seconds: opts.sliceSeconds ?? 0, force: opts.force ?? false },
      },
    });
    let sent = 0;
    try {
      for await (const chunk of fs.createReadStream(file, { highWaterMark: CHUNK_BYTES })) {
        const data = chunk as Buffer;
        sent += data.length;
        if (!call.write({ data })) {
          await new Promise<void>((resolve) => call.once("drain", () => resolve()));
        }
        opts.onProgress?.(sent, total);
      }
    } finally {
      call.end();
    }
    return done;
  }

  /** Follows a job (from its first event, even after a restart); resolves to the video id. */
  watchJob(jobId: string, onEvent?: (e: IngestEvent__Output) => void): Promise<string> {
    return this.untilDone(this.ingest.WatchJob({ job_id: jobId }, this.metadata), onEvent);
  }

  private untilDone(
    stream: grpc.ClientReadableStream<IngestEvent__Output> | grpc.ClientDuplexStream<unknown, IngestEvent__Output>,
    onEvent?: (e: IngestEvent__Output) => void,
  ): Promise<string> {
    return new Promise((resolve, reject) => {
      let videoId: string | undefined;
      let failed: ReelforgeError | undefined;
      stream.on("data", (e: IngestEvent__Output) => {
        onEvent?.(e);
        if (e.event === "done" && e.done) videoId = e.done.video_id;
        if (e.event === "error" && e.error) failed = new ReelforgeError(e.error.code, e.error.message);
      });
      stream.on("error", (e) => reject(failed ?? ReelforgeError.of(e)));
      stream.on("end", () => {
        if (failed) reject(failed);
        else if (videoId !== undefined) resolve(videoId);
        else reject(new ReelforgeError("UNAVAILABLE", "the job's stream ended without a result"));
      });
    });
  }

  /** Moments best first. */
  search(query: string, request: Omit<SearchRequest, "query"> = {}): Promise<SearchResult__Output[]> {
    return new Promise((resolve, reject) => {
      const results: SearchResult__Output[] = [];
      const stream = this.search_.Search({ ...request, query }, this.metadata);
      stream.on("data", (r) => {
        if (r.item === "result" && r.result) results.push(r.result);
      });
      stream.on("error", (e) => reject(ReelforgeError.of(e)));
      stream.on("end", () => resolve(results));
    });
  }

  /** Makes a highlight and waits for it (`onEvent` sees each slice, the chosen segments, render progress). */
  highlight(
    request: HighlightRequest,
    onEvent?: (e: HighlightEvent__Output) => void,
  ): Promise<HighlightResult__Output> {
    return new Promise((resolve, reject) => {
      let done: HighlightResult__Output | undefined;
      const stream = this.highlights.Highlight(request, this.metadata);
      stream.on("data", (e: HighlightEvent__Output) => {
        onEvent?.(e);
        if (e.event === "done" && e.done) done = e.done;
      });
      stream.on("error", (e) => reject(ReelforgeError.of(e)));
      stream.on("end", () =>
        done ? resolve(done) : reject(new ReelforgeError("UNAVAILABLE", "the highlight's stream ended without a result")),
      );
    });
  }

  /** Writes one of a highlight's files (reel.mp4, timeline.fcpxml, ...) to `toPath`; resolves to the bytes written. */
  download(highlightId: string, file: string, toPath: string): Promise<number> {
    const partial = `${toPath}.part`;
    return new Promise((resolve, reject) => {
      const out = fs.createWriteStream(partial);
      let written = 0;
      const fail = (e: unknown) => {
        out.destroy();
        fs.rmSync(partial, { force: true });
        reject(ReelforgeError.of(e));
      };
      const stream = this.highlights.Download({ highlight_id: highlightId, file }, this.metadata);
      stream.on("data", (chunk) => {
        written += chunk.data.length;
        if (!out.write(chunk.data)) {
          stream.pause();
          out.once("drain", () => stream.resume());
        }
      });
      stream.on("error", fail);
      stream.on("end", () =>
        out.end(() => {
          fs.renameSync(partial, toPath);
          resolve(written);
        }),
      );
    });
  }

  whoami(): Promise<ApiKey__Output> {
    return new Promise((resolve, reject) =>
      this.admin.WhoAmI({}, this.metadata, (e, k) => (e || !k ? reject(ReelforgeError.of(e)) : resolve(k))),
    );
  }

  serverInfo(): Promise<ServerInfo__Output> {
    return new Promise((resolve, reject) =>
      this.admin.GetServerInfo({}, this.metadata, (e, i) => (e || !i ? reject(ReelforgeError.of(e)) : resolve(i))),
    );
  }
}
