"""A thin layer over the generated stubs: what a service calling reelforge does most.

    from reelforge import Client

    with Client("127.0.0.1:50051", token=os.environ.get("REELFORGE_TOKEN")) as rf:
        video_id = rf.upload("match.mp4", on_progress=print)
        for hit in rf.search("a penalty save", top_k=5):
            print(hit.filename, hit.start_ms, hit.snippet)
        done = rf.highlight(video_id, strategy="sliced", target_seconds=60)
        rf.download(done.highlight_id, "reel.mp4", "reel.mp4")

Every call raises `reelforge.Error` (with the gRPC status code and the server's message)
when the server refuses it; the generated messages are in `reelforge.v1.*_pb2`.
"""
import os

import grpc

from reelforge.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    highlight_pb2,
    highlight_pb2_grpc,
    ingest_pb2,
    ingest_pb2_grpc,
    search_pb2,
    search_pb2_grpc,
)

CHUNK_BYTES = 1 << 20
MAX_MESSAGE_BYTES = 64 << 20

_STRATEGIES = {
    "direct": highlight_pb2.HIGHLIGHT_STRATEGY_DIRECT,
    "sliced": highlight_pb2.HIGHLIGHT_STRATEGY_SLICED,
    "script": highlight_pb2.HIGHLIGHT_STRATEGY_SCRIPT,
    "points": highlight_pb2.HIGHLIGHT_STRATEGY_POINTS,
    "template": highlight_pb2.HIGHLIGHT_STRATEGY_TEMPLATE,
}
_MODES = {
    "all": search_pb2.SEARCH_MODE_ALL,
    "scene": search_pb2.SEARCH_MODE_SCENE,
    "transcript": search_pb2.SEARCH_MODE_TRANSCRIPT,
    "visual": search_pb2.SEARCH_MODE_VISUAL,
}
_TIMELINES = {
    "edl": highlight_pb2.TIMELINE_FORMAT_EDL,
    "otio": highlight_pb2.TIMELINE_FORMAT_OTIO,
    "fcpxml": highlight_pb2.TIMELINE_FORMAT_FCPXML,
    "xmeml": highlight_pb2.TIMELINE_FORMAT_XMEML,
}


class Error(Exception):
    """The server refused a call: `code` is the gRPC status name (e.g. "NOT_FOUND")."""

    def __init__(self, code, message):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def _call(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except grpc.RpcError as e:
        raise Error(e.code().name, e.details()) from None


def _stream(iterator):
    try:
        yield from iterator
    except grpc.RpcError as e:
        raise Error(e.code().name, e.details()) from None


class Client:
    """A connection to reelforge-server.

    `addr`: "host:port" (or "http://host:port"; "https://host:port" for TLS, which also
    `ca` turns on). `token`: an API key (`rf_...`). `ca`, `cert`, `key`: PEM file paths for
    TLS and mutual TLS.
    """

    def __init__(self, addr="127.0.0.1:50051", token=None, ca=None, cert=None, key=None):
        tls = addr.startswith("https://") or ca is not None
        target = addr.split("://", 1)[-1]
        options = [
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ]
        self._metadata = (("authorization", f"Bearer {token.strip()}"),) if token else ()
        if tls:
            def read(path):
                if path is None:
                    return None
                with open(path, "rb") as f:
                    return f.read()

            creds = grpc.ssl_channel_credentials(read(ca), read(key), read(cert))
            self._channel = grpc.secure_channel(target, creds, options=options)
        else:
            self._channel = grpc.insecure_channel(target, options=options)
        self.ingest_stub = ingest_pb2_grpc.IngestStub(self._channel)
        self.search_stub = search_pb2_grpc.SearchStub(self._channel)
        self.highlight_stub = highlight_pb2_grpc.HighlightStub(self._channel)
        self.admin_stub = admin_pb2_grpc.AdminStub(self._channel)

    def close(self):
        self._channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- ingest ---------------------------------------------------------------------

    def upload(self, path, slice_seconds=0.0, force=False, on_progress=None, on_event=None):
        """Uploads a video file and waits for its ingest; returns the video id.

        `on_progress(sent_bytes, total_bytes)` is called as the file goes out;
        `on_event(event)` with every `IngestEvent` (accepted, probe, each slice, done).
        """
        total = os.path.getsize(path)
        options = ingest_pb2.IngestOptions(slice_seconds=slice_seconds, force=force)

        def chunks():
            yield ingest_pb2.UploadChunk(
                header=ingest_pb2.UploadHeader(
                    filename=os.path.basename(path), size_bytes=total, options=options
                )
            )
            sent = 0
            with open(path, "rb") as f:
                while True:
                    data = f.read(CHUNK_BYTES)
                    if not data:
                        break
                    sent += len(data)
                    yield ingest_pb2.UploadChunk(data=data)
                    if on_progress:
                        on_progress(sent, total)

        events = self.ingest_stub.IngestUpload(chunks(), metadata=self._metadata)
        return self._until_done(events, on_event)

    def ingest_path(self, path, slice_seconds=0.0, force=False, on_event=None):
        """Ingests a file already on the server (inside its allowed roots)."""
        request = ingest_pb2.IngestPathRequest(
            path=path, options=ingest_pb2.IngestOptions(slice_seconds=slice_seconds, force=force)
        )
        events = self.ingest_stub.IngestPath(request, metadata=self._metadata)
        return self._until_done(events, on_event)

    def watch_job(self, job_id, on_event=None):
        """Follows a job (from its first event, even after a server restart) to its end;
        returns the video id."""
        events = self.ingest_stub.WatchJob(
            ingest_pb2.WatchJobRequest(job_id=job_id), metadata=self._metadata
        )
        return self._until_done(events, on_event)

    def _until_done(self, events, on_event):
        video_id = None
        for e in _stream(events):
            if on_event:
                on_event(e)
            kind = e.WhichOneof("event")
            if kind == "done":
                video_id = e.done.video_id
            elif kind == "error":
                raise Error(e.error.code or "FAILED", e.error.message)
        if video_id is None:
            raise Error("UNAVAILABLE", "the server ended the job's stream without a result")
        return video_id

    def videos(self, name_contains=""):
        """Every stored video (all pages)."""
        out, token = [], ""
        while True:
            page = _call(
                self.ingest_stub.ListVideos,
                ingest_pb2.ListVideosRequest(name_contains=name_contains, page_token=token),
                metadata=self._metadata,
            )
            out.extend(page.videos)
            token = page.next_page_token
            if not token:
                return out

    # -- search ---------------------------------------------------------------------

    def search(self, query, mode="all", top_k=10, video_ids=(), kinds=(), merge_adjacent=False):
        """Moments best first (`SearchResult`: video_id, filename, start_ms, end_ms,
        text, snippet, scores)."""
        if mode not in _MODES:
            raise ValueError(f"mode must be one of {', '.join(_MODES)}, got {mode!r}")
        request = search_pb2.SearchRequest(
            query=query,
            mode=_MODES[mode],
            top_k=top_k,
            video_ids=list(video_ids),
            kinds=list(kinds),
            merge_adjacent=merge_adjacent,
        )
        results = []
        for r in _stream(self.search_stub.Search(request, metadata=self._metadata)):
            if r.WhichOneof("item") == "result":
                results.append(r.result)
        return results

    # -- highlights -----------------------------------------------------------------

    def highlight(self, video_id="", strategy="sliced", on_event=None, timeline_formats=(),
                  **options):
        """Makes a highlight and waits for it; returns its `HighlightResult`
        (highlight_id, segments, reel_duration_ms, files).

        `options` are `HighlightRequest` fields (e.g. target_seconds=60, render=False,
        crossfade_seconds=0.4, script="...", video_ids=[...]); `timeline_formats` names
        the timeline files ("edl", "otio", "fcpxml", "xmeml"; default all).
        """
        if strategy not in _STRATEGIES:
            raise ValueError(f"strategy must be one of {', '.join(_STRATEGIES)}, got {strategy!r}")
        for f in timeline_formats:
            if f not in _TIMELINES:
                raise ValueError(f"timeline format must be one of {', '.join(_TIMELINES)}, got {f!r}")
        request = highlight_pb2.HighlightRequest(
            video_id=video_id,
            strategy=_STRATEGIES[strategy],
            timeline_formats=[_TIMELINES[f] for f in timeline_formats],
            **options,
        )
        done = None
        for e in _stream(self.highlight_stub.Highlight(request, metadata=self._metadata)):
            if on_event:
                on_event(e)
            if e.WhichOneof("event") == "done":
                done = e.done
        if done is None:
            raise Error("UNAVAILABLE", "the server ended the highlight's stream without a result")
        return done

    def download(self, highlight_id, file, to_path):
        """Writes one of a highlight's files (reel.mp4, timeline.fcpxml, ...) to `to_path`
        (beside it first, then renamed); returns the bytes written."""
        partial = f"{to_path}.part"
        written = 0
        request = highlight_pb2.DownloadRequest(highlight_id=highlight_id, file=file)
        try:
            with open(partial, "wb") as out:
                for chunk in _stream(self.highlight_stub.Download(request, metadata=self._metadata)):
                    out.write(chunk.data)
                    written += len(chunk.data)
            os.replace(partial, to_path)
        finally:
            if os.path.exists(partial):
                os.remove(partial)
        return written

    # -- the server -----------------------------------------------------------------

    def whoami(self):
        return _call(self.admin_stub.WhoAmI, admin_pb2.WhoAmIRequest(), metadata=self._metadata)

    def server_info(self):
        return _call(
            self.admin_stub.GetServerInfo, admin_pb2.GetServerInfoRequest(), metadata=self._metadata
        )
