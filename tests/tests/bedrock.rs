//! The Bedrock providers through the real `aws-sdk-bedrockruntime` client, pointed by
//! endpoint override at a local server that speaks Bedrock's wire format
//! (`reelforge_tests::bedrock_stub`): the conformance suites, the exact request bodies and
//! signing, throttling retried, server errors exhausting retries, validation errors not
//! retried, and a real reelforge-server ingesting and searching with Bedrock embeddings
//! and reranking.

use std::sync::{Arc, OnceLock};

use reelforge_core::Error;
use reelforge_models::bedrock::{
    Bedrock, BedrockConfig, BedrockEmbedder, CohereReranker, EmbedModel, NovaAnalyzer,
    NovaVideoEmbedder,
};
use reelforge_models::{conformance, EmbedPurpose, TextEmbedder};
use reelforge_proto::v1 as pb;
use reelforge_tests::bedrock_stub::BedrockStub;
use reelforge_tests::{
    demo_video, drain, free_port, ingest_path_done, scrape, search_results, stored_video, Server,
};

const NOVA: &str = "bedrock:us.amazon.nova-lite-v1:0";

/// The stub's model: the offline MiniLM (a real model whose answers depend on the text,
/// standing in for Titan's and Nova's), loaded once per test binary.
fn stub_model() -> Arc<dyn TextEmbedder> {
    static MODEL: OnceLock<Arc<dyn TextEmbedder>> = OnceLock::new();
    MODEL
        .get_or_init(|| {
            let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../models");
            reelforge_models::load_text_embedder(&dir, reelforge_models::MiniLmEmbedder::NAME, 1)
                .unwrap()
        })
        .clone()
}

/// Credentials and region for the SDK's standard chain, as a deployment sets them.
fn aws_environment() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        // Set once, before any client reads them; every test here wants the same values.
        std::env::set_var("AWS_ACCESS_KEY_ID", "AKIDREELFORGETEST");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "reelforge-test-secret");
        std::env::set_var("AWS_REGION", "us-east-1");
        std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
    });
}

async fn client(stub: &BedrockStub, max_attempts: u32) -> Bedrock {
    aws_environment();
    Bedrock::connect(&BedrockConfig {
        endpoint_url: stub.url.clone(),
        max_attempts,
        ..BedrockConfig::default()
    })
    .await
    .unwrap()
}

/// A stub and a real server reading demo.mp4's folder, with Bedrock, S3 and Data
/// Automation reached at the stub (asynchronous jobs polled every 50 ms), and `env`.
async fn demo_server(env: &[(&str, &str)]) -> (BedrockStub, tempfile::TempDir, Server) {
    aws_environment();
    let stub = BedrockStub::start(stub_model()).await;
    let data = tempfile::tempdir().unwrap();
    let demo = demo_video();
    let url = stub.url.as_str();
    let mut all = vec![
        ("REELFORGE_TRANSCRIBER", "none"),
        ("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", url),
        ("REELFORGE_BEDROCK_S3_ENDPOINT_URL", url),
        ("REELFORGE_BEDROCK_S3_FORCE_PATH_STYLE", "true"),
        ("REELFORGE_BEDROCK_DATA_AUTOMATION_ENDPOINT_URL", url),
        ("REELFORGE_BEDROCK_ASYNC_POLL_SECONDS", "0.05"),
    ];
    all.extend_from_slice(env);
    let server = Server::start_with(data.path(), &[demo.parent().unwrap()], &all).await;
    (stub, data, server)
}

#[tokio::test]
async fn bedrock_providers_pass_the_conformance_suites_through_the_real_sdk() {
    let stub = BedrockStub::start(stub_model()).await;
    let bedrock = client(&stub, 3).await;

    let titan = BedrockEmbedder::new(bedrock.clone(), EmbedModel::Titan, 512).unwrap();
    assert_eq!(titan.name(), "bedrock:amazon.titan-embed-text-v2:0");
    conformance::text_embedder(&titan).await;
    let requests = stub.requests();
    let first = &requests[0];
    assert_eq!(first.method, "POST");
    assert_eq!(first.path, "/model/amazon.titan-embed-text-v2:0/invoke");
    assert_eq!(
        first.body,
        serde_json::json!({
            "inputText": "A goal is scored and the crowd erupts.",
            "dimensions": 512,
            "normalize": true
        })
    );
    let auth = &first.headers["authorization"];
    assert!(
        auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDREELFORGETEST/")
            && auth.contains("/us-east-1/bedrock/aws4_request"),
        "SigV4 for bedrock in the configured region: {auth}"
    );
    assert_eq!(first.headers["content-type"], "application/json");
    // The 1,600-word text is cut before it is sent, and says so.
    assert!(requests
        .iter()
        .all(|r| r.body["inputText"].as_str().unwrap().chars().count() <= 24_000));
    stub.clear();

    let nova = BedrockEmbedder::new(bedrock.clone(), EmbedModel::Nova, 1024).unwrap();
    conformance::text_embedder(&nova).await;
    let requests = stub.requests();
    assert!(requests
        .iter()
        .all(|r| r.path == "/model/amazon.nova-2-multimodal-embeddings-v1:0/invoke"));
    let params = |i: usize| requests[i].body["singleEmbeddingParams"].clone();
    assert_eq!(
        requests[0].body["schemaVersion"],
        "nova-multimodal-embed-v1"
    );
    assert_eq!(requests[0].body["taskType"], "SINGLE_EMBEDDING");
    assert_eq!(params(0)["embeddingPurpose"], "GENERIC_INDEX");
    assert_eq!(params(0)["embeddingDimension"], 1024);
    assert_eq!(
        params(0)["text"],
        serde_json::json!({ "truncationMode": "END", "value": "A goal is scored and the crowd erupts." })
    );
    stub.clear();
    nova.embed(&["where is the goal".into()], EmbedPurpose::Query)
        .await
        .unwrap();
    assert_eq!(
        stub.requests()[0].body["singleEmbeddingParams"]["embeddingPurpose"],
        "TEXT_RETRIEVAL",
        "queries use the retrieval purpose"
    );
    stub.clear();

    let cohere = CohereReranker::new(bedrock.clone());
    conformance::reranker(&cohere).await;
    let requests = stub.requests();
    let first = &requests[0];
    assert_eq!(first.path, "/model/cohere.rerank-v3-5:0/invoke");
    assert_eq!(first.body["api_version"], 2);
    assert_eq!(
        first.body["query"],
        "a goal scored at the end of a football match"
    );
    assert_eq!(first.body["documents"].as_array().unwrap().len(), 4);
    assert_eq!(first.body["top_n"], 4);

    // More candidates than one request takes go in batches, scored as one list.
    stub.clear();
    let many: Vec<reelforge_models::RerankCandidate> = (0..250)
        .map(|i| reelforge_models::RerankCandidate {
            text: format!("candidate number {i} about the weather"),
            first_stage_score: 0.0,
            vector: None,
        })
        .collect();
    let scores = reelforge_models::Reranker::rerank(&cohere, "the weather", &many)
        .await
        .unwrap();
    assert_eq!(scores.len(), 250);
    let sizes: Vec<usize> = stub
        .requests()
        .iter()
        .map(|r| r.body["documents"].as_array().unwrap().len())
        .collect();
    assert_eq!(sizes, vec![100, 100, 50]);

    // Sizes the model does not offer are refused before any call.
    let err = BedrockEmbedder::new(bedrock.clone(), EmbedModel::Titan, 384)
        .err()
        .unwrap();
    assert!(err.to_string().contains("embedding_dimensions"), "{err}");

    // Nova as the video analyser, and Nova Multimodal Embeddings as the video embedder,
    // on demo.mp4 (bikes moving at 20-30 s, a still picture before).
    let demo = demo_video();
    let work = tempfile::tempdir().unwrap();
    let analyzer = NovaAnalyzer::new(
        bedrock.clone(),
        "us.amazon.nova-lite-v1:0",
        "ffmpeg",
        work.path().join("proxies"),
    );
    stub.clear();
    // Slices of demo.mp4 with action in them: the bikes, Big Buck Bunny.
    conformance::video_analyzer(
        &analyzer,
        &demo,
        60_000,
        &[(2, 20_000, 30_000), (4, 42_000, 52_000)],
    )
    .await;
    assert_eq!(
        stub.requests().len(),
        5,
        "two slices, each read twice, and one again in Chinese"
    );
    let video = NovaVideoEmbedder::new(bedrock, 1024, "ffmpeg", work.path().join("clips")).unwrap();
    stub.clear();
    conformance::video_embedder(&video, &demo, 60_000, (22_000, 24_000), (4_000, 6_000)).await;
    let requests = stub.requests();
    assert!(requests
        .iter()
        .all(|r| r.body["taskType"] == "SINGLE_EMBEDDING"));
    assert_eq!(
        requests.len(),
        5,
        "2 + 2 spans and 1 query; refusals cost no call"
    );
}

#[tokio::test]
async fn throttling_is_retried_and_server_errors_exhaust_the_retries() {
    let stub = BedrockStub::start(stub_model()).await;
    let bedrock = client(&stub, 3).await;
    let titan = BedrockEmbedder::new(bedrock, EmbedModel::Titan, 256).unwrap();
    let text = vec!["a burst of fast motion".to_string()];
    let counted = || {
        reelforge_models::bedrock::telemetry::snapshot()
            .get(reelforge_models::bedrock::TITAN_TEXT_V2)
            .cloned()
            .unwrap_or_default()
    };
    let before = counted();

    // Throttled on the first attempt, then served.
    stub.fail_next(429, "ThrottlingException", 1);
    let v = titan.embed(&text, EmbedPurpose::Index).await.unwrap();
    assert_eq!(v[0].vector.len(), 256);
    assert_eq!(stub.requests().len(), 2, "one retry after the throttle");
    stub.clear();

    // The model timing out once is retried too.
    stub.fail_next(408, "ModelTimeoutException", 1);
    titan.embed(&text, EmbedPurpose::Index).await.unwrap();
    assert_eq!(
        stub.requests().len(),
        2,
        "one retry after the model timed out"
    );
    stub.clear();

    // 5xx on every attempt: the retries run out and the error says what the service said.
    stub.fail_next(500, "InternalServerException", 3);
    let err = titan.embed(&text, EmbedPurpose::Index).await.unwrap_err();
    assert!(matches!(err, Error::Unavailable(_)), "{err:?}");
    assert!(err.to_string().contains("InternalServerException"), "{err}");
    assert_eq!(stub.requests().len(), 3, "three attempts");
    stub.clear();

    // A validation error is the caller's to fix: not retried.
    stub.fail_next(400, "ValidationException", 1);
    let err = titan.embed(&text, EmbedPurpose::Index).await.unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)), "{err:?}");
    assert!(err.to_string().contains("ValidationException"), "{err}");
    assert_eq!(stub.requests().len(), 1);

    // The SDK interceptor saw every attempt (other tests in this process use Titan too,
    // so these are at least what this test made).
    let after = counted();
    assert!(after.calls - before.calls >= 4, "{after:?}");
    assert!(
        after.retries - before.retries >= 4,
        "1 + 1 + 2 retries: {after:?}"
    );
    assert!(after.throttled - before.throttled >= 1, "{after:?}");
    assert!(after.errors - before.errors >= 6, "{after:?}");
    assert!(
        after.input_tokens - before.input_tokens >= 2 * 5,
        "{after:?}"
    );
}

#[tokio::test]
async fn a_server_on_bedrock_models_ingests_and_searches() {
    let metrics = format!("127.0.0.1:{}", free_port());
    let (stub, data, server) = demo_server(&[
        (
            "REELFORGE_TEXT_EMBEDDER",
            "bedrock:amazon.titan-embed-text-v2:0",
        ),
        ("REELFORGE_RERANKER", "bedrock:cohere.rerank-v3-5:0"),
        ("REELFORGE_BEDROCK_EMBEDDING_DIMENSIONS", "1024"),
        ("REELFORGE_METRICS_LISTEN", metrics.as_str()),
    ])
    .await;
    let demo = demo_video();
    let mut ingest = server.client().await;
    let (events, video_id) = ingest_path_done(&mut ingest, &demo, 30.0).await;
    let stored: Vec<&pb::EmbeddingsStored> = events
        .iter()
        .filter_map(|e| match e {
            pb::ingest_event::Event::EmbeddingsStored(s) => Some(s),
            _ => None,
        })
        .collect();
    assert!(
        stored.iter().any(
            |s| s.kind == "text (bedrock:amazon.titan-embed-text-v2:0)" && s.dimensions == 1024
        ),
        "{stored:?}"
    );
    let indexed = stub.requests().len();
    assert!(
        indexed >= 3,
        "descriptions and the summary go through Titan"
    );
    assert!(stub
        .requests()
        .iter()
        .all(|r| r.path == "/model/amazon.titan-embed-text-v2:0/invoke"));

    let mut search = pb::search_client::SearchClient::new(server.channel().await);
    let query = || pb::SearchRequest {
        query: "sudden loud audio".into(),
        top_k: 3,
        ..Default::default()
    };
    let results = search_results(&mut search, query()).await.unwrap();
    assert!(!results.is_empty());
    assert!(results.iter().all(|r| r.video_id == video_id));
    assert!(results[0].scores.unwrap().reranked, "{:?}", results[0]);
    let after: Vec<String> = stub.requests()[indexed..]
        .iter()
        .map(|r| r.path.clone())
        .collect();
    assert!(
        after.contains(&"/model/amazon.titan-embed-text-v2:0/invoke".to_string()),
        "the query is embedded by Titan: {after:?}"
    );
    assert!(
        after.contains(&"/model/cohere.rerank-v3-5:0/invoke".to_string()),
        "Cohere reranks: {after:?}"
    );
    // The server's metrics count every call the stub saw, per model, with the tokens the
    // service reported and the bytes that went each way.
    let text = scrape(&metrics).await;
    let value = |line: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(line)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no {line} in {text}"))
    };
    let requests = stub.requests();
    for model in ["amazon.titan-embed-text-v2:0", "cohere.rerank-v3-5:0"] {
        let path = format!("/model/{model}/invoke");
        let seen = requests.iter().filter(|r| r.path == path).count() as u64;
        let sent: u64 = requests
            .iter()
            .filter(|r| r.path == path)
            .map(|r| r.headers["content-length"].parse::<u64>().unwrap())
            .sum();
        let label = |kind: &str, what: &str| format!(r#"{kind}{{{what},model="{model}"}}"#);
        assert_eq!(
            value(&label("reelforge_bedrock_requests_total", r#"kind="call""#)),
            seen,
            "{model}"
        );
        assert_eq!(
            value(&label(
                "reelforge_bedrock_bytes_total",
                r#"direction="sent""#
            )),
            sent
        );
        assert!(
            value(&label(
                "reelforge_bedrock_bytes_total",
                r#"direction="received""#
            )) > 0
        );
        assert!(
            value(&label(
                "reelforge_bedrock_tokens_total",
                r#"direction="input""#
            )) >= seen
        );
    }
    server.stop().await;

    // Back to the local embedder: its vectors cannot be compared with Titan's, so the
    // server refuses to serve this index and names the command that embeds it again.
    let local = |args: &[&str]| {
        let models = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../models");
        std::process::Command::new(reelforge_tests::binary("reelforge-server"))
            .arg("--data-dir")
            .arg(data.path())
            .args(args)
            .env("REELFORGE_MODELS_DIR", models)
            .env("REELFORGE_TRANSCRIBER", "none")
            .env("RUST_LOG", "warn")
            .output()
            .unwrap()
    };
    let refused = local(&["--listen", "127.0.0.1:0"]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{stderr}");
    assert!(
        stderr.contains("embedded by bedrock:amazon.titan-embed-text-v2:0 (1024 dims)")
            && stderr.contains("reelforge-server reindex"),
        "{stderr}"
    );
    let reindexed = local(&["reindex"]);
    let stderr = String::from_utf8_lossy(&reindexed.stderr);
    assert!(reindexed.status.success(), "{stderr}");
    assert!(stderr.contains("reindexed 1 videos"), "{stderr}");
    let server = Server::start_with(
        data.path(),
        &[demo.parent().unwrap()],
        &[("REELFORGE_TRANSCRIBER", "none")],
    )
    .await;
    let mut ingest = server.client().await;
    let video = stored_video(&mut ingest, &video_id, false).await;
    assert!(video.embedding_counts.get("text").copied().unwrap_or(0) > 0);
    assert_eq!(
        video.summary.unwrap().text_embedder,
        reelforge_models::MuseEmbedder::NAME,
        "embedded again by the configured model (the default)"
    );
    let mut search = pb::search_client::SearchClient::new(server.channel().await);
    let found = search_results(&mut search, query()).await.unwrap();
    assert!(!found.is_empty(), "the re-embedded index is searched");
    assert!(found.iter().all(|r| r.video_id == video_id));
    server.stop().await;
}

type HighlightClient = pb::highlight_client::HighlightClient<tonic::transport::Channel>;

async fn highlight(
    client: &mut HighlightClient,
    req: pb::HighlightRequest,
) -> Result<(Vec<pb::highlight_event::Event>, pb::HighlightResult), tonic::Status> {
    let mut stream = client.highlight(req).await?.into_inner();
    let mut events = Vec::new();
    while let Some(e) = stream.message().await? {
        events.push(e.event.expect("event set"));
    }
    match events.last() {
        Some(pb::highlight_event::Event::Done(d)) => {
            let d = d.clone();
            Ok((events, d))
        }
        other => panic!("the last event is not done: {other:?}"),
    }
}

fn slices_of(events: &[pb::highlight_event::Event]) -> Vec<pb::SliceResult> {
    events
        .iter()
        .filter_map(|e| match e {
            pb::highlight_event::Event::Slice(s) => Some(s.clone()),
            _ => None,
        })
        .collect()
}

fn spans(segments: &[pb::HighlightSegment]) -> Vec<(i64, i64)> {
    segments.iter().map(|s| (s.start_ms, s.end_ms)).collect()
}

#[tokio::test]
async fn nova_reads_the_video_for_the_direct_sliced_and_points_strategies() {
    use reelforge_tests::bedrock_stub::ConverseMode;
    let (stub, _data, server) = demo_server(&[
        ("REELFORGE_ANALYZER", NOVA),
        ("REELFORGE_BEDROCK_MAX_ATTEMPTS", "2"),
    ])
    .await;
    let demo = demo_video();
    let mut ingest = server.client().await;
    let (_, video_id) = ingest_path_done(&mut ingest, &demo, 30.0).await;
    assert_eq!(
        stub.requests().len(),
        2,
        "ingest reads each 30 s slice once"
    );
    stub.clear();
    let mut client = HighlightClient::new(server.channel().await);
    let request = |strategy: pb::HighlightStrategy, slice_seconds: f64| pb::HighlightRequest {
        video_id: video_id.clone(),
        strategy: strategy as i32,
        slice_seconds,
        concurrency: 3,
        render: Some(false),
        ..Default::default()
    };

    // Sliced: 10 s slices, each proxy sent as a video block, the answer's times (the
    // middle third of each slice) mapped back to the video's timeline.
    let (events, sliced) = highlight(&mut client, request(pb::HighlightStrategy::Sliced, 10.0))
        .await
        .unwrap();
    let slices = slices_of(&events);
    assert_eq!(slices.len(), 6);
    assert!(
        slices.iter().all(|s| s.error.is_empty() && s.model == NOVA),
        "{slices:?}"
    );
    // The stub looks at what it is sent: the answers land on the footage that moves,
    // mapped from each slice's clock to the video's, with the model's own priority and
    // reason kept.
    eprintln!("nova sliced 10 s: {:?}", sliced.segments);
    assert!(
        inside_the_moving_footage(&sliced.segments),
        "{:?}",
        spans(&sliced.segments)
    );
    let e = reelforge_core::eval::evaluate(&DEMO_TRUTH, &spans(&sliced.segments), 0.5);
    assert_eq!(e.recall, 1.0, "both moving stretches found: {e:?}");
    assert!(
        sliced
            .segments
            .iter()
            .all(|s| s.reason.contains(": action (motion")),
        "{:?}",
        sliced.segments
    );
    let bikes = sliced
        .segments
        .iter()
        .find(|s| s.start_ms < 30_000)
        .unwrap();
    assert_eq!(bikes.priority, 1, "the bikes move a lot: {bikes:?}");
    let requests = stub.requests();
    assert_eq!(requests.len(), 6, "one Converse call per slice");
    let body = &requests[0].body;
    assert_eq!(requests[0].path, "/model/us.amazon.nova-lite-v1:0/converse");
    assert_eq!(
        body["toolConfig"]["toolChoice"]["tool"]["name"],
        "report_highlights"
    );
    assert_eq!(
        body["toolConfig"]["tools"][0]["toolSpec"]["inputSchema"]["json"]["required"],
        serde_json::json!(["summary", "highlights"])
    );
    assert_eq!(body["inferenceConfig"]["maxTokens"], 2048);
    let prompt = body["messages"][0]["content"][1]["text"].as_str().unwrap();
    assert!(
        prompt.contains("10.0 seconds long") && prompt.contains("step by step"),
        "{prompt}"
    );
    // Nova is sent the pictures only; the sound goes as our measurements, in the prompt:
    // Big Buck Bunny's soundtrack starts 5 s into the 40-50 s slice.
    let prompt_of = |r: &reelforge_tests::bedrock_stub::Recorded| {
        r.body["messages"][0]["content"][1]["text"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert!(requests
        .iter()
        .all(|r| prompt_of(r).contains("its sound is not sent")));
    let bunny_prompt = requests
        .iter()
        .map(prompt_of)
        .find(|p| p.contains("sudden loud sound at 5."))
        .unwrap_or_else(|| panic!("{:?}", requests.iter().map(prompt_of).collect::<Vec<_>>()));
    eprintln!("the 40-50 s slice's sound, as sent: {bunny_prompt}");
    let proxy = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        proxy.path(),
        inline_bytes(&requests[4].body["messages"][0]["content"][0]["video"]["source"]),
    )
    .unwrap();
    let streams = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_type",
            "-of",
            "csv=p=0",
        ])
        .arg(proxy.path())
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&streams.stdout).trim(), "video");
    let sent: usize = requests
        .iter()
        .map(|r| inline_bytes(&r.body["messages"][0]["content"][0]["video"]["source"]).len())
        .sum();
    let source = std::fs::metadata(&demo).unwrap().len() as usize;
    eprintln!(
        "nova sliced 10 s: 6 requests per minute of video; {sent} bytes sent for 60 s (the source: {source} bytes)"
    );
    assert!(
        sent * 2 < source,
        "the proxy costs far fewer bytes: {sent} vs {source}"
    );
    // Each slice's event carries its call's cost.
    let usage: Vec<pb::ModelUsage> = slices.iter().map(|s| s.usage.unwrap()).collect();
    let (tokens_in, tokens_out): (u64, u64) = (
        usage.iter().map(|u| u.input_tokens).sum(),
        usage.iter().map(|u| u.output_tokens).sum(),
    );
    assert!(tokens_in > 0 && tokens_out > 0);
    assert_eq!(usage.iter().map(|u| u.bytes_sent).sum::<u64>(), sent as u64);
    let source_share: u64 = usage.iter().map(|u| u.source_bytes).sum();
    eprintln!(
        "nova sliced 10 s per minute of video: {tokens_in} input and {tokens_out} output tokens (the stub's usage); {sent} bytes sent against {source_share} bytes of source"
    );

    // Direct, with a text answer instead of the tool call: the JSON is found in prose.
    stub.clear();
    stub.converse_next(&[ConverseMode::Text]);
    let (_, direct) = highlight(&mut client, request(pb::HighlightStrategy::Direct, 0.0))
        .await
        .unwrap();
    eprintln!("nova direct: {:?}", spans(&direct.segments));
    assert!(inside_the_moving_footage(&direct.segments));
    assert_eq!(
        reelforge_core::eval::evaluate(&DEMO_TRUTH, &spans(&direct.segments), 0.5).recall,
        1.0
    );
    assert_eq!(stub.requests().len(), 1, "one call for the whole minute");

    // A slice answered without JSON, and one whose calls all fail with 5xx: each is a
    // reported slice failure, and the job goes on with the others.
    stub.clear();
    stub.converse_next(&[ConverseMode::Garbage]);
    let mut one_at_a_time = request(pb::HighlightStrategy::Sliced, 20.0);
    one_at_a_time.concurrency = 1;
    let (events, partial) = highlight(&mut client, one_at_a_time.clone()).await.unwrap();
    let slices = slices_of(&events);
    assert!(
        slices[0].error.contains("without usable highlights"),
        "{:?}",
        slices[0]
    );
    assert!(slices[1].error.is_empty() && slices[2].error.is_empty());
    assert_eq!(partial.segments.len(), 2);
    stub.fail_next(500, "InternalServerException", 2);
    let (events, partial) = highlight(&mut client, one_at_a_time.clone()).await.unwrap();
    let slices = slices_of(&events);
    assert!(
        slices[0].error.contains("InternalServerException"),
        "{:?}",
        slices[0]
    );
    assert_eq!(partial.segments.len(), 2);
    // Every slice failing fails the job, with the first reason.
    stub.converse_next(&[ConverseMode::Garbage; 3]);
    let err = highlight(&mut client, one_at_a_time).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unavailable, "{err:?}");
    assert!(
        err.message().contains("every one of the 3 slices failed"),
        "{}",
        err.message()
    );

    // Points + clips: Nova's reading gives the points (each names the model), the local
    // text embedder matches them against the clips.
    stub.clear();
    let (events, points) = highlight(&mut client, request(pb::HighlightStrategy::Points, 0.0))
        .await
        .unwrap();
    let written = events
        .iter()
        .find_map(|e| match e {
            pb::highlight_event::Event::Points(p) => Some(p.points.clone()),
            _ => None,
        })
        .unwrap();
    assert!(written.iter().any(|p| p.model == NOVA), "{written:?}");
    assert_eq!(stub.requests().len(), 1);
    eprintln!("nova points: {:?}", spans(&points.segments));

    // No double pay: Sliced on the grid ingest analysed (30 s, the same model and prompt
    // version) reuses the stored analyses; `fresh` pays again. The cost report counts both.
    stub.clear();
    let (events, reused) = highlight(&mut client, request(pb::HighlightStrategy::Sliced, 30.0))
        .await
        .unwrap();
    let slices = slices_of(&events);
    assert!(
        slices.iter().all(|s| s.reused && s.model == NOVA),
        "{slices:?}"
    );
    assert_eq!(stub.converse_calls(), 0, "nothing is sent again");
    let cost = reused.cost.unwrap();
    assert_eq!((cost.calls, cost.reused), (0, 2), "{cost:?}");
    assert!(
        cost.saved_bytes > 0 && cost.saved_input_tokens > 0,
        "{cost:?}"
    );
    let mut fresh = request(pb::HighlightStrategy::Sliced, 30.0);
    fresh.fresh = Some(true);
    let (events, paid) = highlight(&mut client, fresh).await.unwrap();
    assert!(slices_of(&events).iter().all(|s| !s.reused));
    assert_eq!(stub.converse_calls(), 2, "fresh: one call per slice");
    let paid_cost = paid.cost.unwrap();
    assert_eq!((paid_cost.calls, paid_cost.reused), (2, 0));
    // The same slices cut again (ffmpeg's output differs by a few bytes run to run).
    let ratio = paid_cost.bytes_sent as f64 / cost.saved_bytes as f64;
    assert!((0.95..1.05).contains(&ratio), "{paid_cost:?} vs {cost:?}");
    assert_eq!(spans(&paid.segments), spans(&reused.segments));
    eprintln!(
        "nova sliced 30 s after a 30 s ingest: reused {} slices, 0 requests, 0 bytes (saved {} bytes, {} input tokens); fresh: {} requests, {} bytes, {} input tokens",
        cost.reused,
        cost.saved_bytes,
        cost.saved_input_tokens,
        paid_cost.calls,
        paid_cost.bytes_sent,
        paid_cost.input_tokens
    );

    // Ingest reads slices in parallel; a slice Nova fails on (an answer without JSON) is
    // kept with the offline reading and its error, the rest stands, and a later highlight
    // pays only for the failed slice.
    stub.clear();
    stub.converse_next(&[ConverseMode::Garbage]);
    let mut again = reelforge_tests::path_request(&demo, 30.0);
    again.options.as_mut().unwrap().force = true;
    let (events, status) = drain(ingest.ingest_path(again).await.unwrap().into_inner()).await;
    status.unwrap();
    let finished: Vec<pb::SliceAnalysis> = events
        .iter()
        .filter_map(|e| match e {
            pb::ingest_event::Event::SliceFinished(f) => f.analysis.clone(),
            _ => None,
        })
        .collect();
    assert_eq!(finished.len(), 2);
    let (failed, good): (Vec<_>, Vec<_>) = finished.iter().partition(|a| !a.error.is_empty());
    assert_eq!((failed.len(), good.len()), (1, 1), "{finished:?}");
    assert!(
        failed[0].error.contains("without usable highlights")
            && failed[0].analyzer == "signal-analyzer-v1",
        "{:?}",
        failed[0]
    );
    assert_eq!(good[0].analyzer, NOVA);
    stub.clear();
    let (events, _) = highlight(&mut client, request(pb::HighlightStrategy::Sliced, 30.0))
        .await
        .unwrap();
    let slices = slices_of(&events);
    let reused: Vec<u32> = slices
        .iter()
        .filter(|s| s.reused)
        .map(|s| s.index)
        .collect();
    assert_eq!(reused, vec![good[0].index], "{slices:?}");
    assert_eq!(
        stub.converse_calls(),
        1,
        "only the failed slice is read again"
    );

    // The failed slice, read again into the store: one call; then every slice is Nova's
    // and a highlight on the same grid pays for nothing. (Through the client: the stub
    // answers on this test's runtime, which a blocking CLI call would stall.)
    stub.clear();
    let r = ingest
        .reanalyse_video(pb::ReanalyseVideoRequest {
            video_id: video_id.clone(),
            failed_only: true,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((r.slices_given, r.slices_replaced), (1, 1), "{r:?}");
    assert!(r.failed.is_empty());
    assert_eq!(stub.converse_calls(), 1);
    let stored = ingest
        .get_video(pb::GetVideoRequest {
            video_id: video_id.clone(),
            include_signals: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        stored
            .slices
            .iter()
            .all(|s| s.error.is_empty() && s.analyzer == NOVA),
        "{:?}",
        stored.slices
    );
    stub.clear();
    let (events, _) = highlight(&mut client, request(pb::HighlightStrategy::Sliced, 30.0))
        .await
        .unwrap();
    assert!(slices_of(&events).iter().all(|s| s.reused));
    assert_eq!(stub.converse_calls(), 0);
    // Nothing left to read again (the CLI); an unknown video is NOT_FOUND.
    let out = server.cli(&["videos", "reanalyse", &video_id, "--failed"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("0 slices analysed again"));
    let err = ingest
        .reanalyse_video(pb::ReanalyseVideoRequest {
            video_id: "0123456789abcdef".into(),
            failed_only: true,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound, "{err:?}");
    server.stop().await;
}

/// The video bytes a request's `source` carries inline.
fn inline_bytes(source: &serde_json::Value) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(source["bytes"].as_str().expect("inline bytes"))
        .expect("base64")
}

/// The demo's moving footage: bikes at 20-30 s, Big Buck Bunny at 45-50.3 s.
const DEMO_TRUTH: [(i64, i64); 2] = [(20_000, 30_000), (45_000, 50_280)];

/// The demo's moving footage: bikes at 20-30 s, Big Buck Bunny at 45-50.3 s.
fn inside_the_moving_footage(segments: &[pb::HighlightSegment]) -> bool {
    segments.iter().all(|s| {
        (s.start_ms >= 18_000 && s.end_ms <= 32_000) || (s.start_ms >= 42_000 && s.end_ms <= 52_000)
    })
}

fn points_of(events: &[pb::highlight_event::Event]) -> Vec<pb::HighlightPoint> {
    events
        .iter()
        .find_map(|e| match e {
            pb::highlight_event::Event::Points(p) => Some(p.points.clone()),
            _ => None,
        })
        .unwrap_or_default()
}

fn funnel_of(events: &[pb::highlight_event::Event]) -> pb::ClipFunnel {
    events
        .iter()
        .find_map(|e| match e {
            pb::highlight_event::Event::Funnel(f) => Some(f.clone()),
            _ => None,
        })
        .expect("a funnel event")
}

#[tokio::test]
async fn large_video_goes_through_s3_and_clips_are_matched_by_nova_video_embeddings() {
    const MME: &str = "/model/amazon.nova-2-multimodal-embeddings-v1:0/invoke";
    let (stub, _data, server) = demo_server(&[
        ("REELFORGE_ANALYZER", NOVA),
        (
            "REELFORGE_VIDEO_EMBEDDER",
            "bedrock:amazon.nova-2-multimodal-embeddings-v1:0",
        ),
        ("REELFORGE_BEDROCK_S3_URI", "s3://reelforge-staging/work"),
        // A 30 s analysis proxy is ~300 kB: over this, so it goes through S3.
        ("REELFORGE_BEDROCK_INLINE_VIDEO_LIMIT_BYTES", "200000"),
        ("REELFORGE_BEDROCK_ASYNC_EMBEDDING_MIN_CLIPS", "20"),
    ])
    .await;
    let demo = demo_video();
    let mut ingest = server.client().await;
    let (_, video_id) = ingest_path_done(&mut ingest, &demo, 30.0).await;

    // Oversized inline video: each slice's proxy is put in S3, passed as s3Location, and
    // removed after the call.
    let requests = stub.requests();
    let puts: Vec<_> = requests.iter().filter(|r| r.method == "PUT").collect();
    let converse: Vec<_> = requests
        .iter()
        .filter(|r| r.path.ends_with("/converse"))
        .collect();
    assert_eq!((puts.len(), converse.len()), (2, 2), "{requests:?}");
    for (put, call) in puts.iter().zip(&converse) {
        let source = &call.body["messages"][0]["content"][0]["video"]["source"];
        assert!(source["bytes"].is_null(), "not inline: {source}");
        let uri = source["s3Location"]["uri"].as_str().unwrap();
        assert_eq!(format!("s3:/{}", put.path), uri);
        assert!(uri.starts_with("s3://reelforge-staging/work/proxies/") && uri.ends_with(".mp4"));
    }
    assert!(
        stub.objects().is_empty(),
        "proxies are removed: {:?}",
        stub.objects()
    );

    let mut client = HighlightClient::new(server.channel().await);
    let points = |prefilter: bool| pb::HighlightRequest {
        video_id: video_id.clone(),
        strategy: pb::HighlightStrategy::Points as i32,
        prefilter: Some(prefilter),
        render: Some(false),
        ..Default::default()
    };

    // Points + clips, the still and quiet clips filtered out first: one SINGLE_EMBEDDING
    // request per kept clip (its picture and sound, inline), one for the point's words.
    stub.clear();
    let (events, sync) = highlight(&mut client, points(true)).await.unwrap();
    let funnel = funnel_of(&events);
    let requests = stub.requests();
    let clips: Vec<_> = requests
        .iter()
        .filter(|r| r.path == MME && !r.body["singleEmbeddingParams"]["video"].is_null())
        .collect();
    let queries: Vec<_> = requests
        .iter()
        .filter(|r| r.path == MME && !r.body["singleEmbeddingParams"]["text"].is_null())
        .collect();
    assert_eq!(clips.len() as u32, funnel.after_prefilter, "{funnel:?}");
    assert!(funnel.after_prefilter < funnel.total, "{funnel:?}");
    let written = points_of(&events);
    assert_eq!(
        written.len(),
        2,
        "Nova's reading (the stub looks): the bikes and the bunny: {written:?}"
    );
    assert_eq!(queries.len(), written.len(), "one query per point");
    for r in &clips {
        let p = &r.body["singleEmbeddingParams"];
        assert_eq!(r.body["taskType"], "SINGLE_EMBEDDING");
        assert_eq!(p["embeddingPurpose"], "GENERIC_INDEX");
        assert_eq!(p["embeddingDimension"], 1024);
        assert_eq!(p["video"]["format"], "mp4");
        assert_eq!(p["video"]["embeddingMode"], "AUDIO_VIDEO_COMBINED");
        assert!(p["text"].is_null() && p["image"].is_null() && p["audio"].is_null());
        assert_eq!(&inline_bytes(&p["video"]["source"])[4..8], b"ftyp");
    }
    assert_eq!(
        queries[0].body["singleEmbeddingParams"]["embeddingPurpose"],
        "VIDEO_RETRIEVAL"
    );
    let matched = events
        .iter()
        .find_map(|e| match e {
            pb::highlight_event::Event::PointMatch(m) => Some(m.clone()),
            _ => None,
        })
        .unwrap();
    let clip_bytes: usize = clips
        .iter()
        .map(|r| inline_bytes(&r.body["singleEmbeddingParams"]["video"]["source"]).len())
        .sum();
    eprintln!(
        "nova video embeddings, sync: {} clip requests ({clip_bytes} bytes of clips) + {} queries + 1 Converse for 60 s; best similarity {:.3}; segments {:?}",
        clips.len(),
        queries.len(),
        matched.best_similarity,
        spans(&sync.segments)
    );
    assert!(!sync.segments.is_empty());
    assert!(
        inside_the_moving_footage(&sync.segments),
        "{:?}",
        spans(&sync.segments)
    );
    assert!(
        sync.segments
            .iter()
            .any(|s| s.start_ms <= 22_000 && s.end_ms >= 28_000),
        "the bikes are found: {:?}",
        spans(&sync.segments)
    );

    // Every clip of the video: the 10 embedded above are stored with the video, the 20
    // others (the async threshold here) come from one asynchronous SEGMENTED_EMBEDDING
    // job over the video's proxy in S3, polled until done, its segments read back from
    // S3 and mapped onto the clips.
    stub.clear();
    let (events, batch) = highlight(&mut client, points(false)).await.unwrap();
    assert_eq!(funnel_of(&events).after_coarse, 30);
    let requests = stub.requests();
    let start: Vec<_> = requests
        .iter()
        .filter(|r| r.method == "POST" && r.path == "/async-invoke")
        .collect();
    assert_eq!(start.len(), 1, "{requests:?}");
    let input = &start[0].body["modelInput"];
    assert_eq!(input["taskType"], "SEGMENTED_EMBEDDING");
    let video = &input["segmentedEmbeddingParams"]["video"];
    assert_eq!(video["segmentationConfig"]["durationSeconds"], 2);
    assert!(video["source"]["s3Location"]["uri"]
        .as_str()
        .unwrap()
        .starts_with("s3://reelforge-staging/work/proxies/"));
    assert!(
        start[0].body["outputDataConfig"]["s3OutputDataConfig"]["s3Uri"]
            .as_str()
            .unwrap()
            .starts_with("s3://reelforge-staging/work/embeddings/")
    );
    let polls = requests
        .iter()
        .filter(|r| r.method == "GET" && r.path.starts_with("/async-invoke/"))
        .count();
    assert_eq!(polls, 2, "polled until Completed");
    assert!(
        !requests
            .iter()
            .any(|r| r.path == MME && !r.body["singleEmbeddingParams"]["video"].is_null()),
        "no clip is embedded one by one"
    );
    eprintln!(
        "nova video embeddings, async: {} requests to Bedrock and {} to S3 ({} bytes of proxy put) for 60 s; segments {:?}",
        requests
            .iter()
            .filter(|r| r.path.starts_with("/model/") || r.path.starts_with("/async-invoke"))
            .count(),
        requests
            .iter()
            .filter(|r| !r.path.starts_with("/model/") && !r.path.starts_with("/async-invoke"))
            .count(),
        requests
            .iter()
            .filter(|r| r.method == "PUT")
            .filter_map(|r| r.headers.get("content-length")?.parse::<usize>().ok())
            .sum::<usize>(),
        spans(&batch.segments)
    );
    assert!(
        inside_the_moving_footage(&batch.segments),
        "{:?}",
        spans(&batch.segments)
    );
    assert!(batch
        .segments
        .iter()
        .any(|s| s.start_ms <= 22_000 && s.end_ms >= 28_000));
    assert!(
        stub.objects().is_empty(),
        "staged objects are removed: {:?}",
        stub.objects()
    );

    // Asked again, every clip's vector is stored: no embedding is paid for twice.
    stub.clear();
    let (_, again) = highlight(&mut client, points(false)).await.unwrap();
    let requests = stub.requests();
    assert!(
        !requests
            .iter()
            .any(|r| r.path == "/async-invoke"
                || !r.body["singleEmbeddingParams"]["video"].is_null()),
        "{requests:?}"
    );
    assert_eq!(spans(&again.segments), spans(&batch.segments));
    let stored = stored_video(&mut ingest, &video_id, false)
        .await
        .embedding_counts;
    assert_eq!(stored.get("clip_video"), Some(&30), "{stored:?}");

    // No Data Automation project here: asking for it says what to configure.
    let err = ingest
        .run_bda(pb::RunBdaRequest {
            video_id: video_id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
    assert!(
        err.message().contains("data_automation_project_arn"),
        "{}",
        err.message()
    );
    server.stop().await;
}

#[tokio::test]
async fn staging_and_asynchronous_failures_are_clear() {
    let stub = BedrockStub::start(stub_model()).await;
    aws_environment();
    let demo = demo_video();
    let work = tempfile::tempdir().unwrap();
    // Over the inline limit with no S3 location: the slice fails before any call, naming
    // the setting to fix.
    let small = Bedrock::connect(&BedrockConfig {
        endpoint_url: stub.url.clone(),
        inline_video_limit_bytes: 1_000,
        ..BedrockConfig::default()
    })
    .await
    .unwrap();
    let nova = NovaAnalyzer::new(
        small,
        "us.amazon.nova-lite-v1:0",
        "ffmpeg",
        work.path().join("p"),
    );
    let windows = [];
    let err = reelforge_models::analysis::VideoAnalyzer::analyze_slice(
        &nova,
        reelforge_models::analysis::SliceInput {
            source: &demo,
            video_duration_ms: 60_000,
            index: 0,
            start_ms: 0,
            end_ms: 10_000,
            windows: &windows,
            cut_points_ms: &[],
            baseline: reelforge_models::analysis::Baseline {
                loudness_db: -50.0,
                motion: 0.0,
                windows: 0,
            },
            language: Default::default(),
            sounds: &[],
            sights: &[],
        },
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, Error::FailedPrecondition(ref m) if m.contains("models.bedrock.s3_uri") && m.contains("inline_video_limit_bytes")),
        "{err:?}"
    );
    assert!(stub.requests().is_empty());

    // An asynchronous job that fails: its reason is reported, and what was staged is
    // removed.
    let staged = Bedrock::connect(&BedrockConfig {
        endpoint_url: stub.url.clone(),
        s3_uri: "s3://reelforge-staging/jobs".into(),
        s3_endpoint_url: stub.url.clone(),
        s3_force_path_style: true,
        async_embedding_min_clips: 2,
        async_poll_seconds: 0.01,
        ..BedrockConfig::default()
    })
    .await
    .unwrap();
    let video = NovaVideoEmbedder::new(staged, 256, "ffmpeg", work.path().join("c")).unwrap();
    let grid: Vec<(i64, i64)> = (0..5).map(|i| (i * 4000, i * 4000 + 4000)).collect();
    stub.fail_next_job("The video could not be decoded (queued by the test)");
    let err = reelforge_models::VideoEmbedder::embed_spans(&video, &demo, 60_000, &grid)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Unavailable(ref m) if m.contains("failed: The video could not be decoded")),
        "{err:?}"
    );
    assert!(stub.objects().is_empty(), "{:?}", stub.objects());
    // The next one completes: 4 s segments, 256 dimensions.
    let vectors = reelforge_models::VideoEmbedder::embed_spans(&video, &demo, 60_000, &grid)
        .await
        .unwrap();
    assert_eq!(vectors.len(), 5);
    assert!(vectors.iter().all(|v| v.len() == 256));
    // One failed segment (its own FAILURE line) costs only its clip: the others keep
    // their vectors, the failed one has none.
    stub.fail_next_segment(2, "Segment could not be processed (queued by the test)");
    let partial = reelforge_models::VideoEmbedder::embed_spans(&video, &demo, 60_000, &grid)
        .await
        .unwrap();
    assert_eq!(partial.len(), 5);
    assert!(
        partial[2].is_empty(),
        "the failed segment's clip has no vector"
    );
    for i in [0, 1, 3, 4] {
        assert_eq!(partial[i], vectors[i], "clip {i} is embedded as before");
    }
    let start = stub
        .requests()
        .into_iter()
        .rfind(|r| r.path == "/async-invoke")
        .unwrap();
    assert_eq!(
        start.body["modelInput"]["segmentedEmbeddingParams"]["video"]["segmentationConfig"]
            ["durationSeconds"],
        4
    );
    assert_eq!(
        start.body["modelInput"]["segmentedEmbeddingParams"]["embeddingDimension"],
        256
    );
}

// Two threads: the stub answers the server while this test waits on the CLI.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_automation_runs_on_a_stored_video_and_its_chapters_become_searchable() {
    let (stub, _data, server) = demo_server(&[
        ("REELFORGE_BEDROCK_S3_URI", "s3://reelforge-staging/work"),
        (
            "REELFORGE_BEDROCK_DATA_AUTOMATION_PROJECT_ARN",
            "arn:aws:bedrock:us-east-1:123456789012:data-automation-project/reelforge",
        ),
        (
            "REELFORGE_BEDROCK_DATA_AUTOMATION_PROFILE_ARN",
            "arn:aws:bedrock:us-east-1:123456789012:data-automation-profile/us.data-automation-v1",
        ),
    ])
    .await;
    let demo = demo_video();
    let mut ingest = server.client().await;
    let (_, video_id) = ingest_path_done(&mut ingest, &demo, 30.0).await;
    assert!(
        stub.requests().is_empty(),
        "the offline models did the ingest"
    );

    // Through the real CLI: the source goes to S3, the project runs, its result is read
    // through job_metadata.json and imported.
    let out = tokio::task::block_in_place(|| server.cli(&["run-bda", &video_id]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("7 documents for video {video_id}")),
        "a summary and six 10 s chapters: {stdout}"
    );
    let requests = stub.requests();
    let invoke: Vec<_> = requests
        .iter()
        .filter(|r| r.path.ends_with(".InvokeDataAutomationAsync"))
        .collect();
    assert_eq!(invoke.len(), 1, "{requests:?}");
    let body = &invoke[0].body;
    let input = body["inputConfiguration"]["s3Uri"].as_str().unwrap();
    assert!(input.starts_with("s3://reelforge-staging/work/bda-input/") && input.ends_with(".mp4"));
    assert_eq!(body["dataAutomationConfiguration"]["stage"], "LIVE");
    assert_eq!(
        invoke[0].headers["content-type"],
        "application/x-amz-json-1.1"
    );
    let polls = requests
        .iter()
        .filter(|r| r.path.ends_with(".GetDataAutomationStatus"))
        .count();
    assert_eq!(polls, 2, "polled until Success");
    assert!(stub.objects().is_empty(), "{:?}", stub.objects());

    let mut search = pb::search_client::SearchClient::new(server.channel().await);
    let results = search_results(
        &mut search,
        pb::SearchRequest {
            query: "fast motion and action".into(),
            mode: pb::SearchMode::Scene as i32,
            top_k: 2,
            kinds: vec!["chapter_summary".into()],
            video_ids: vec![video_id.clone()],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let mut found: Vec<(i64, i64)> = results.iter().map(|r| (r.start_ms, r.end_ms)).collect();
    found.sort();
    assert_eq!(
        found,
        vec![(20_000, 30_000), (40_000, 50_000)],
        "the chapters with the bikes and the bunny: {results:?}"
    );
    assert!(results.iter().all(|r| r.source == "chapter_summary"));

    // Over gRPC it is a job: its steps stream as they happen, GetJob knows it by kind, and
    // a failed run ends with the service's reason.
    let stream = ingest
        .run_bda(pb::RunBdaRequest {
            video_id: video_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let (events, status) = drain(stream).await;
    status.unwrap();
    let stages: Vec<String> = events
        .iter()
        .filter_map(|e| match e {
            pb::ingest_event::Event::Bda(p) => Some(p.stage.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        stages.first().map(String::as_str),
        Some("uploaded"),
        "{stages:?}"
    );
    assert_eq!(stages[1], "submitted");
    assert!(stages.contains(&"running".to_string()), "{stages:?}");
    assert_eq!(stages.last().map(String::as_str), Some("reading"));
    let Some(pb::ingest_event::Event::BdaImported(imported)) = events.last() else {
        panic!("the last event is bda_imported: {events:?}")
    };
    assert_eq!((imported.documents, imported.created), (7, false));
    let jobs = ingest
        .list_jobs(pb::ListJobsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .jobs;
    let bda_jobs: Vec<_> = jobs.iter().filter(|j| j.kind == "bda").collect();
    assert_eq!(bda_jobs.len(), 2, "the CLI's run and this one: {jobs:?}");
    assert!(bda_jobs
        .iter()
        .all(|j| j.state == pb::JobState::Succeeded as i32 && j.video_id == video_id));
    stub.fail_next_job("The video could not be decoded (queued by the test)");
    let stream = ingest
        .run_bda(pb::RunBdaRequest {
            video_id: video_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let (_, status) = drain(stream).await;
    let status = status.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    assert!(
        status.message().contains("could not be decoded"),
        "{status:?}"
    );
    server.stop().await;
}

/// Each provider has its own limit of calls in flight: with a limit of one, a search's
/// query embedding (Titan) still runs while a Nova video call is outstanding.
#[tokio::test]
async fn a_query_embedding_never_waits_behind_nova_video_calls() {
    let (stub, _data, server) = demo_server(&[
        ("REELFORGE_ANALYZER", NOVA),
        (
            "REELFORGE_TEXT_EMBEDDER",
            "bedrock:amazon.titan-embed-text-v2:0",
        ),
        ("REELFORGE_BEDROCK_CONCURRENCY", "1"),
    ])
    .await;
    let mut ingest = server.client().await;
    let (_, video_id) = ingest_path_done(&mut ingest, &demo_video(), 30.0).await;
    stub.clear();
    // Nova takes as long as this test says: a Sliced highlight's first call is held.
    let hold = stub.hold_converse().await;
    let mut client = HighlightClient::new(server.channel().await);
    let request = pb::HighlightRequest {
        video_id: video_id.clone(),
        strategy: pb::HighlightStrategy::Sliced as i32,
        slice_seconds: 20.0,
        render: Some(false),
        ..Default::default()
    };
    let running = tokio::spawn(async move { highlight(&mut client, request).await });
    for _ in 0..600 {
        if stub.converse_calls() > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        stub.converse_calls(),
        1,
        "the analyser's one permitted call is in flight"
    );
    let mut search = pb::search_client::SearchClient::new(server.channel().await);
    let results = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        search_results(
            &mut search,
            pb::SearchRequest {
                query: "bikes racing".into(),
                top_k: 3,
                ..Default::default()
            },
        ),
    )
    .await
    .expect("the search does not wait for the Nova call")
    .unwrap();
    assert!(!results.is_empty());
    assert_eq!(stub.converse_calls(), 1, "Nova is still held");
    drop(hold);
    let (_, done) = running.await.unwrap().unwrap();
    assert_eq!(
        stub.converse_calls(),
        3,
        "then the slices go through, one at a time"
    );
    assert!(!done.segments.is_empty());
}

#[tokio::test]
async fn script_and_template_match_clips_by_their_nova_video_embeddings() {
    const MME: &str = "/model/amazon.nova-2-multimodal-embeddings-v1:0/invoke";
    let (stub, _data, server) = demo_server(&[(
        "REELFORGE_VIDEO_EMBEDDER",
        "bedrock:amazon.nova-2-multimodal-embeddings-v1:0",
    )])
    .await;
    let demo = demo_video();
    let mut ingest = server.client().await;
    let (_, video_id) = ingest_path_done(&mut ingest, &demo, 30.0).await;
    let mut client = HighlightClient::new(server.channel().await);
    let clip_calls = |stub: &BedrockStub| {
        stub.requests()
            .iter()
            .filter(|r| r.path == MME && !r.body["singleEmbeddingParams"]["video"].is_null())
            .count()
    };

    // Script across the library: each event's words against every clip's picture and
    // sound (the stub's embedding says whether a clip moves), not the search index.
    stub.clear();
    let (events, done) = highlight(
        &mut client,
        pb::HighlightRequest {
            strategy: pb::HighlightStrategy::Script as i32,
            script: "fast motion and action on screen, then a static image".into(),
            render: Some(false),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let matches: Vec<pb::ScriptMatch> = events
        .iter()
        .filter_map(|e| match e {
            pb::highlight_event::Event::ScriptMatch(m) => Some(m.clone()),
            _ => None,
        })
        .collect();
    eprintln!("script by clip video: {matches:#?}");
    assert_eq!(matches.len(), 2);
    assert!(
        matches.iter().all(|m| m.source == "clip_video"),
        "{matches:?}"
    );
    let (action, still) = (
        matches[0].segment.clone().unwrap(),
        matches[1].segment.clone().unwrap(),
    );
    assert!(
        inside_the_moving_footage(std::slice::from_ref(&action)),
        "{action:?}"
    );
    // The still segment overlaps neither moving stretch (bikes 20-30 s, cartoon 45-50.3 s).
    let overlaps = |a: i64, b: i64| still.start_ms < b && a < still.end_ms;
    assert!(
        !overlaps(20_000, 30_000) && !overlaps(45_000, 50_280),
        "{still:?}"
    );
    assert!(
        action.model.contains("nova-2-multimodal-embeddings") && action.similarity.unwrap() >= 0.3
    );
    assert_eq!(done.segments.len(), 2);
    // Every 2 s clip of the 60 s video was embedded once (then kept).
    assert_eq!(clip_calls(&stub), 30);

    // A library entry (the bikes) keeps its clips' video embeddings: already kept with
    // the video, so adding it costs no new call.
    stub.clear();
    pb::library_client::LibraryClient::new(server.channel().await)
        .add_entry(pb::AddLibraryEntryRequest {
            video_id: video_id.clone(),
            start_seconds: 20.0,
            end_seconds: 30.0,
            category: "bikes".into(),
            description: "riders on a dirt track".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(clip_calls(&stub), 0);

    // Template: clips compared with the entry's clips by video embedding (its own
    // footage excluded): the other moving footage, the cartoon, is found.
    let (events, done) = highlight(
        &mut client,
        pb::HighlightRequest {
            video_id: video_id.clone(),
            strategy: pb::HighlightStrategy::Template as i32,
            category: "bikes".into(),
            render: Some(false),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let effective = events
        .iter()
        .find_map(|e| match e {
            pb::highlight_event::Event::Started(s) => s.effective.clone(),
            _ => None,
        })
        .unwrap();
    assert_eq!(effective.similarity_threshold, Some(0.75));
    eprintln!("template by clip video: {:?}", spans(&done.segments));
    assert!(!done.segments.is_empty());
    assert!(
        inside_the_moving_footage(&done.segments),
        "{:?}",
        spans(&done.segments)
    );
    assert!(
        done.segments.iter().all(|s| s.start_ms >= 42_000
            && s.model.contains("clip video match")
            && s.similarity.unwrap() >= 0.75),
        "{:?}",
        done.segments
    );
    assert_eq!(clip_calls(&stub), 0, "every clip's vector was kept");
}

/// A tenant's Bedrock budget: its ingest's Nova calls are charged to it; once spent, its
/// next highlight and ingest are refused with RESOURCE_EXHAUSTED before any call reaches
/// Bedrock (the stub counts none), while a tenant without a budget goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spend_guard_stops_a_tenants_bedrock_work_before_any_call() {
    use reelforge_tests::{done_video_id, drain, fixtures, upload_chunks, with_token};
    let f = fixtures();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("reelforge.toml");
    std::fs::write(
        &config,
        "[tenants.acme]\nbedrock_bytes_per_day = 1\nmax_concurrent_jobs = 4\n",
    )
    .unwrap();
    let (stub, data, server) = demo_server(&[
        ("REELFORGE_ANALYZER", NOVA),
        ("REELFORGE_CONFIG", config.to_str().unwrap()),
    ])
    .await;
    let channel = server.channel().await;
    let mut admin = pb::admin_client::AdminClient::new(channel.clone());
    let ops = admin
        .create_key(pb::CreateKeyRequest {
            tenant: "ops".into(),
            role: pb::Role::Admin as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .secret;
    let mut admin = pb::admin_client::AdminClient::new(with_token(channel.clone(), &ops));
    let mut keys = Vec::new();
    for tenant in ["acme", "beta"] {
        let req = pb::CreateKeyRequest {
            tenant: tenant.into(),
            role: pb::Role::Write as i32,
            ..Default::default()
        };
        keys.push(admin.create_key(req).await.unwrap().into_inner().secret);
    }
    let (acme, beta) = (keys[0].clone(), keys[1].clone());
    let upload = |token: String| {
        let channel = channel.clone();
        async move {
            let mut client = pb::ingest_client::IngestClient::new(with_token(channel, &token));
            match client
                .ingest_upload(tokio_stream::iter(upload_chunks(&f.small, 6.0, false)))
                .await
            {
                Err(status) => Err(status),
                Ok(stream) => {
                    let (events, status) = drain(stream.into_inner()).await;
                    status.map(|()| done_video_id(&events))
                }
            }
        }
    };
    let video = upload(acme.clone()).await.unwrap();
    assert!(
        stub.converse_calls() > 0,
        "the ingest read its slices with Nova"
    );

    // Spent: the next Bedrock-backed work is refused before any call.
    stub.clear();
    let mut highlight =
        pb::highlight_client::HighlightClient::new(with_token(channel.clone(), &acme));
    let refused = highlight
        .highlight(pb::HighlightRequest {
            video_id: video.clone(),
            strategy: pb::HighlightStrategy::Sliced as i32,
            slice_seconds: 6.0,
            fresh: Some(true),
            render: Some(false),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
    let message = refused.message();
    assert!(
        message.contains("tenants.acme.bedrock_bytes_per_day")
            && message.contains("resets at 00:00 UTC"),
        "{message}"
    );
    let again = upload(acme.clone()).await.unwrap_err();
    assert_eq!(again.code(), tonic::Code::ResourceExhausted);
    assert_eq!(stub.converse_calls(), 0, "no call reached Bedrock");
    assert!(stub.requests().is_empty(), "{:?}", stub.requests());

    // Another tenant's budget is its own.
    upload(beta)
        .await
        .expect("a tenant without a budget goes on");
    assert!(stub.converse_calls() > 0);

    // The day's spending outlives a restart.
    server.stop().await;
    let url = stub.url.clone();
    let server = Server::start_with(
        data.path(),
        &[],
        &[
            ("REELFORGE_TRANSCRIBER", "none"),
            ("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", url.as_str()),
            ("REELFORGE_ANALYZER", NOVA),
            ("REELFORGE_CONFIG", config.to_str().unwrap()),
        ],
    )
    .await;
    stub.clear();
    let mut highlight =
        pb::highlight_client::HighlightClient::new(with_token(server.channel().await, &acme));
    let refused = highlight
        .highlight(pb::HighlightRequest {
            video_id: video.clone(),
            strategy: pb::HighlightStrategy::Sliced as i32,
            slice_seconds: 6.0,
            fresh: Some(true),
            render: Some(false),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        refused.code(),
        tonic::Code::ResourceExhausted,
        "{refused:?}"
    );
    assert_eq!(stub.converse_calls(), 0);
    server.stop().await;
}
