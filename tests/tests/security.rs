//! Security end to end: real TLS handshakes with certificates made here by rcgen (TLS,
//! mutual TLS, a reload on SIGHUP), API keys with roles against every RPC of the protos,
//! expired and revoked keys, rate and message-size limits, the audit log, the
//! plaintext-on-the-network refusal, key management through the CLI and offline, and
//! Python's grpcio (a client no one here wrote) with a CA bundle and a token.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::str::FromStr;
use std::time::Duration;

use reelforge_engine::keys::Role;
use reelforge_proto::v1 as pb;
use reelforge_server::auth::ROLES;
use reelforge_tests::{binary, with_token, Server};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic::Code;

/// A CA and what it signed, as PEM files in a directory.
struct Pki {
    dir: PathBuf,
}

struct Ca {
    cert_pem: String,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

fn new_ca(name: &str) -> Ca {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    Ca {
        cert_pem: cert.pem(),
        issuer: rcgen::Issuer::new(params, key),
    }
}

/// A leaf certificate and its key (PEM) signed by `ca`.
fn leaf(ca: &Ca, names: &[&str], server: bool) -> (String, String) {
    let mut params =
        rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, names[0]);
    params.extended_key_usages = vec![if server {
        rcgen::ExtendedKeyUsagePurpose::ServerAuth
    } else {
        rcgen::ExtendedKeyUsagePurpose::ClientAuth
    }];
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &ca.issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

impl Pki {
    fn write(&self, name: &str, pem: &str) -> PathBuf {
        let path = self.dir.join(name);
        std::fs::write(&path, pem).unwrap();
        path
    }
}

async fn tls_channel(
    addr: &str,
    ca: &str,
    identity: Option<(&str, &str)>,
) -> Result<Channel, String> {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca))
        .domain_name("localhost");
    if let Some((cert, key)) = identity {
        tls = tls.identity(Identity::from_pem(cert, key));
    }
    let endpoint = Endpoint::from_shared(addr.to_string())
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect_timeout(Duration::from_secs(10));
    endpoint.connect().await.map_err(|e| format!("{e:?}"))
}

/// Health says SERVING through `channel`, or the error that stopped it.
async fn health(channel: Channel) -> Result<(), tonic::Status> {
    let mut client = tonic_health::pb::health_client::HealthClient::new(channel);
    client
        .check(tonic_health::pb::HealthCheckRequest::default())
        .await
        .map(|_| ())
}

/// Whether a connection attempt ended without a served call: the handshake failed, or
/// the first call did (TLS 1.3 reports a refused client certificate after the client's
/// side of the handshake is done).
async fn refused(channel: Result<Channel, String>) -> bool {
    match channel {
        Ok(channel) => health(channel).await.is_err(),
        Err(_) => true,
    }
}

/// ListVideos through `channel`, with `token` as its bearer key when given.
async fn list_videos(channel: Channel, token: Option<&str>) -> Result<usize, tonic::Status> {
    let mut client = pb::ingest_client::IngestClient::new(channel);
    let mut req = tonic::Request::new(pb::ListVideosRequest::default());
    if let Some(t) = token {
        req.metadata_mut()
            .insert("authorization", format!("Bearer {t}").parse().unwrap());
    }
    client
        .list_videos(req)
        .await
        .map(|r| r.into_inner().videos.len())
}

/// Messages as raw bytes: calls any RPC by its path with an empty request.
#[derive(Clone, Default)]
struct Raw;

struct RawEncoder;
struct RawDecoder;

impl Codec for Raw {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawEncoder;
    type Decoder = RawDecoder;
    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }
    fn decoder(&mut self) -> RawDecoder {
        RawDecoder
    }
}

impl Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        use bytes::BufMut;
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawDecoder {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, tonic::Status> {
        use bytes::Buf;
        Ok(Some(src.copy_to_bytes(src.remaining()).to_vec()))
    }
}

/// The code an RPC answers an empty request with, called with `token`; a refusal for
/// the caller's role reads as PERMISSION_DENIED, any other answer (a PERMISSION_DENIED
/// for a path outside the tenant's folders included) as what the handler said.
async fn raw_call(channel: Channel, path: &str, token: Option<&str>) -> Code {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let mut req = tonic::Request::new(Vec::new());
    req.set_timeout(Duration::from_secs(20));
    if let Some(t) = token {
        req.metadata_mut()
            .insert("authorization", format!("Bearer {t}").parse().unwrap());
    }
    let path = http::uri::PathAndQuery::from_str(path).unwrap();
    match grpc.unary::<Vec<u8>, Vec<u8>, Raw>(req, path, Raw).await {
        Ok(_) => Code::Ok,
        Err(status) if status.code() == Code::PermissionDenied => {
            if status.message().contains(" role") {
                Code::PermissionDenied
            } else {
                Code::FailedPrecondition
            }
        }
        Err(status) => status.code(),
    }
}

async fn create_key(
    channel: Channel,
    token: Option<&str>,
    tenant: &str,
    role: pb::Role,
    expires_in_seconds: i64,
) -> Result<pb::CreatedKey, tonic::Status> {
    let mut admin = pb::admin_client::AdminClient::new(channel);
    let mut req = tonic::Request::new(pb::CreateKeyRequest {
        tenant: tenant.into(),
        role: role as i32,
        expires_in_seconds,
        note: format!("{tenant} test key"),
        max_concurrent_jobs: 0,
    });
    if let Some(t) = token {
        req.metadata_mut()
            .insert("authorization", format!("Bearer {t}").parse().unwrap());
    }
    admin.create_key(req).await.map(|r| r.into_inner())
}

fn python() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv-tools/bin/python")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_mutual_tls_reload_and_a_python_client_with_a_token() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki {
        dir: tmp.path().to_path_buf(),
    };
    let ca = new_ca("reelforge test CA");
    let (server_cert, server_key) = leaf(&ca, &["localhost", "127.0.0.1"], true);
    let (client_cert, client_key) = leaf(&ca, &["test client"], false);
    let stranger_ca = new_ca("someone else's CA");
    let (stranger_cert, stranger_key) = leaf(&stranger_ca, &["stranger"], false);
    let cert_file = pki.write("server.pem", &server_cert);
    let key_file = pki.write("server.key", &server_key);
    let ca_file = pki.write("ca.pem", &ca.cert_pem);
    let client_cert_file = pki.write("client.pem", &client_cert);
    let client_key_file = pki.write("client.key", &client_key);
    let data = tmp.path().join("data");
    let server = Server::start_with(
        &data,
        &[],
        &[
            ("REELFORGE_TLS_CERT", cert_file.to_str().unwrap()),
            ("REELFORGE_TLS_KEY", key_file.to_str().unwrap()),
            ("REELFORGE_TLS_CLIENT_CA", ca_file.to_str().unwrap()),
        ],
    )
    .await;
    assert!(server.addr.starts_with("https://"), "{}", server.addr);
    let plain_addr = server.addr.replace("https://", "http://");

    // Plaintext to a TLS port: no answer a gRPC client accepts.
    let plain = Endpoint::from_shared(plain_addr.clone())
        .unwrap()
        .connect()
        .await;
    assert!(
        refused(plain.map_err(|e| e.to_string())).await,
        "a plaintext call succeeded"
    );
    // TLS without a client certificate: refused in the handshake.
    assert!(
        refused(tls_channel(&server.addr, &ca.cert_pem, None).await).await,
        "no client certificate, yet served"
    );
    // A certificate from a CA the server does not trust: refused.
    assert!(
        refused(
            tls_channel(
                &server.addr,
                &ca.cert_pem,
                Some((&stranger_cert, &stranger_key)),
            )
            .await
        )
        .await,
        "a stranger's certificate was served"
    );
    // The right certificate: served.
    let good = tls_channel(
        &server.addr,
        &ca.cert_pem,
        Some((&client_cert, &client_key)),
    )
    .await
    .expect("mutual TLS with the right certificate");
    health(good.clone()).await.expect("health over mutual TLS");
    assert_eq!(list_videos(good.clone(), None).await.unwrap(), 0);

    // The CLI over mutual TLS, and its message without a client certificate.
    let cli = |extra: &[&str]| {
        Command::new(binary("reelforge"))
            .args(["--addr", &server.addr, "--ca", ca_file.to_str().unwrap()])
            .args(extra)
            .output()
            .unwrap()
    };
    let out = cli(&[
        "--cert",
        client_cert_file.to_str().unwrap(),
        "--key",
        client_key_file.to_str().unwrap(),
        "keys",
        "whoami",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("tenant default"));
    let out = cli(&["videos", "list"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--cert"), "{err}");
    // `reelforge doctor` over mutual TLS, and what it says without the certificate.
    let out = cli(&[
        "--cert",
        client_cert_file.to_str().unwrap(),
        "--key",
        client_key_file.to_str().unwrap(),
        "doctor",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("ok    tls      TLS with a client certificate"),
        "{text}"
    );
    let out = cli(&["doctor"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success()
            && text.contains("FAIL  tls")
            && text.contains("needs --cert and --key"),
        "{text}"
    );

    // An admin key (the server has none, so the first is made anonymously over mTLS).
    let admin = create_key(good.clone(), None, "acme", pb::Role::Admin, 0)
        .await
        .unwrap();
    assert_eq!(
        list_videos(good.clone(), None).await.unwrap_err().code(),
        Code::Unauthenticated,
        "once a key exists, every call needs one"
    );

    // Python's grpcio with a CA bundle, a client certificate and the token.
    let addr = server.addr.trim_start_matches("https://");
    let out = Command::new(python())
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("python/secure_client.py"))
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../proto"))
        .arg(addr)
        .arg(&ca_file)
        .arg(&admin.secret)
        .arg(&client_cert_file)
        .arg(&client_key_file)
        .output()
        .expect("run the Python client");
    assert!(
        out.status.success(),
        "python client: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(seen["tenant"], "acme", "{seen}");
    assert_eq!(seen["role"], "ROLE_ADMIN", "{seen}");
    assert_eq!(seen["key_id"], admin.key.as_ref().unwrap().key_id.as_str());
    assert_eq!(seen["without_key"], "UNAUTHENTICATED", "{seen}");

    // A new certificate from a new CA, reloaded on SIGHUP: the open connection keeps
    // working, new connections get the new certificate.
    let ca2 = new_ca("reelforge test CA 2");
    let (server_cert2, server_key2) = leaf(&ca2, &["localhost", "127.0.0.1"], true);
    pki.write("server.pem", &server_cert2);
    pki.write("server.key", &server_key2);
    server.signal(libc::SIGHUP);
    let mut reloaded = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if let Ok(channel) = tls_channel(
            &server.addr,
            &ca2.cert_pem,
            Some((&client_cert, &client_key)),
        )
        .await
        {
            if health(channel).await.is_ok() {
                reloaded = true;
                break;
            }
        }
    }
    assert!(reloaded, "the new certificate is served after SIGHUP");
    health(good.clone())
        .await
        .expect("the connection made before the reload still serves");
    assert!(
        refused(
            tls_channel(
                &server.addr,
                &ca.cert_pem,
                Some((&client_cert, &client_key)),
            )
            .await
        )
        .await,
        "the old certificate is still served to new connections"
    );
    // A broken file on the next SIGHUP keeps the certificate that works.
    pki.write("server.key", "not a key");
    server.signal(libc::SIGHUP);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let channel = tls_channel(
        &server.addr,
        &ca2.cert_pem,
        Some((&client_cert, &client_key)),
    )
    .await
    .expect("still serving after a failed reload");
    health(channel).await.unwrap();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rpc_checks_its_role_and_keys_expire_and_are_revoked() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let log = tmp.path().join("server.log");
    let server =
        Server::start_logging_to(&data, &[], &[("RUST_LOG", "warn,audit=info")], &log).await;
    let channel = server.channel().await;

    // No keys yet: the server serves everyone (as the README's commands need).
    assert_eq!(list_videos(channel.clone(), None).await.unwrap(), 0);
    let admin = create_key(channel.clone(), None, "acme", pb::Role::Admin, 0)
        .await
        .unwrap();
    let admin_token = admin.secret.clone();
    let write = create_key(
        channel.clone(),
        Some(&admin_token),
        "acme",
        pb::Role::Write,
        0,
    )
    .await
    .unwrap();
    let read = create_key(
        channel.clone(),
        Some(&admin_token),
        "acme",
        pb::Role::Read,
        0,
    )
    .await
    .unwrap();
    // A write key cannot make keys.
    let refused = create_key(
        channel.clone(),
        Some(&write.secret),
        "acme",
        pb::Role::Admin,
        0,
    )
    .await
    .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    assert!(
        refused.message().contains("needs the admin role")
            && refused.message().contains("write role"),
        "{}",
        refused.message()
    );

    // Every RPC of the protos, with no key and with each role.
    let set = <prost_types::FileDescriptorSet as prost::Message>::decode(pb::FILE_DESCRIPTOR_SET)
        .unwrap();
    let mut rpcs = Vec::new();
    for file in &set.file {
        for service in &file.service {
            for method in &service.method {
                rpcs.push(format!(
                    "/{}.{}/{}",
                    file.package(),
                    service.name(),
                    method.name()
                ));
            }
        }
    }
    assert!(rpcs.len() >= 30, "{rpcs:?}");
    let keys = [
        (Role::Read, &read.secret),
        (Role::Write, &write.secret),
        (Role::Admin, &admin_token),
    ];
    for rpc in &rpcs {
        let needed = ROLES
            .iter()
            .find(|(p, _)| p == rpc)
            .map(|(_, r)| *r)
            .unwrap_or_else(|| panic!("{rpc} has no role in auth::ROLES"));
        assert_eq!(
            raw_call(channel.clone(), rpc, None).await,
            Code::Unauthenticated,
            "{rpc} without a key"
        );
        assert_eq!(
            raw_call(channel.clone(), rpc, Some("rf_0123456789ab_00")).await,
            Code::Unauthenticated,
            "{rpc} with a made-up key"
        );
        for (role, token) in &keys {
            let code = raw_call(channel.clone(), rpc, Some(token)).await;
            if *role < needed {
                assert_eq!(
                    code,
                    Code::PermissionDenied,
                    "{rpc} with a {} key",
                    role.name()
                );
            } else {
                assert!(
                    !matches!(code, Code::PermissionDenied | Code::Unauthenticated),
                    "{rpc} with a {} key answered {code:?}",
                    role.name()
                );
            }
        }
    }
    // Health and reflection stay open.
    health(channel.clone()).await.expect("health needs no key");

    // An expired key and a revoked key.
    let short = create_key(
        channel.clone(),
        Some(&admin_token),
        "acme",
        pb::Role::Read,
        1,
    )
    .await
    .unwrap();
    assert_eq!(
        list_videos(channel.clone(), Some(&short.secret))
            .await
            .unwrap(),
        0
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let expired = list_videos(channel.clone(), Some(&short.secret))
        .await
        .unwrap_err();
    assert_eq!(expired.code(), Code::Unauthenticated);
    assert!(
        expired.message().contains("expired"),
        "{}",
        expired.message()
    );
    let out = server.cli(&[
        "--token",
        &admin_token,
        "keys",
        "revoke",
        &read.key.as_ref().unwrap().key_id,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let revoked = list_videos(channel.clone(), Some(&read.secret))
        .await
        .unwrap_err();
    assert_eq!(revoked.code(), Code::Unauthenticated);
    assert!(
        revoked.message().contains("revoked"),
        "{}",
        revoked.message()
    );

    // The CLI: keys through the server, and what it says without a key.
    let out = server.cli(&["--token", &admin_token, "keys", "list"]);
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(
        listed.contains("revoked") && listed.contains("expired") && listed.contains("active"),
        "{listed}"
    );
    assert!(
        !listed.contains(&admin_token[16..]),
        "no secret is ever listed"
    );
    let out = server.cli(&["videos", "list"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("UNAUTHENTICATED") && err.contains("REELFORGE_TOKEN"),
        "{err}"
    );
    let out = server.cli(&["--token", &write.secret, "keys", "whoami"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("tenant acme, role write"));

    // Keys management offline needs the server stopped.
    let offline = |args: &[&str]| {
        Command::new(binary("reelforge-server"))
            .arg("--data-dir")
            .arg(&data)
            .arg("keys")
            .args(args)
            .output()
            .unwrap()
    };
    let busy = offline(&["list"]);
    assert!(!busy.status.success());
    assert!(String::from_utf8_lossy(&busy.stderr).contains("reelforge keys"));
    server.stop().await;

    // The audit log: one line per mutating call, with key, tenant, RPC, target and
    // outcome; never a secret.
    let text = std::fs::read_to_string(&log).unwrap();
    let audit: Vec<&str> = text.lines().filter(|l| l.contains("audit")).collect();
    assert!(
        audit
            .iter()
            .any(|l| l.contains("rpc=reelforge.v1.Admin/RevokeKey")
                && l.contains(&read.key.as_ref().unwrap().key_id)
                && l.contains("tenant=acme")
                && l.contains("outcome=OK")),
        "{audit:#?}"
    );
    assert!(
        audit
            .iter()
            .any(|l| l.contains("Ingest/DeleteVideo") && l.contains("PERMISSION_DENIED")),
        "refused mutating calls are audited too"
    );
    assert!(
        !audit.iter().any(|l| l.contains("rf_")),
        "no key secret in the audit log"
    );
    assert!(
        !audit.iter().any(|l| l.contains("Ingest/ListVideos")),
        "reads are not audited"
    );

    let made = offline(&[
        "create",
        "--tenant",
        "beta",
        "--role",
        "read",
        "--expires",
        "30d",
    ]);
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let secret = String::from_utf8_lossy(&made.stdout).trim().to_string();
    assert!(secret.starts_with("rf_"));
    let listed = offline(&["list", "--tenant", "beta"]);
    let listed = String::from_utf8_lossy(&listed.stdout).to_string();
    assert!(
        listed.contains("beta") && listed.contains("active"),
        "{listed}"
    );
    let bad = offline(&["create", "--tenant", "beta", "--role", "root"]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("read, write, admin"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_and_size_limits_refuse_and_recover_and_plaintext_stays_on_loopback() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        &tmp.path().join("data"),
        &[],
        &[
            ("REELFORGE_RATE_LIMIT_RPS", "2"),
            ("REELFORGE_RATE_LIMIT_BURST", "3"),
            ("REELFORGE_MAX_MESSAGE_BYTES", "65536"),
        ],
    )
    .await;
    let channel = server.channel().await;
    for i in 0..3 {
        list_videos(channel.clone(), None)
            .await
            .unwrap_or_else(|e| panic!("call {i} within the burst: {e}"));
    }
    let limited = list_videos(channel.clone(), None).await.unwrap_err();
    assert_eq!(limited.code(), Code::ResourceExhausted);
    assert!(
        limited.message().contains("limits.requests_per_second")
            && limited.message().contains("retry in"),
        "{}",
        limited.message()
    );
    health(channel.clone())
        .await
        .expect("health is not rate limited");
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        list_videos(channel.clone(), None).await.unwrap(),
        0,
        "the bucket refilled"
    );

    // A message over the cap is refused before any handler reads it.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let mut search = pb::search_client::SearchClient::new(channel.clone());
    let big = search
        .search(pb::SearchRequest {
            query: "x".repeat(100_000),
            ..Default::default()
        })
        .await;
    let code = match big {
        Err(s) => s.code(),
        Ok(r) => match r.into_inner().message().await {
            Err(s) => s.code(),
            Ok(_) => Code::Ok,
        },
    };
    assert!(
        matches!(code, Code::ResourceExhausted | Code::OutOfRange),
        "{code:?}"
    );
    server.stop().await;

    // Plaintext on an address other than loopback needs --insecure.
    let out = Command::new(binary("reelforge-server"))
        .args(["--listen", "0.0.0.0:0", "--data-dir"])
        .arg(tmp.path().join("other"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--insecure") && err.contains("--tls-cert"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_see_and_touch_only_their_own() {
    use reelforge_tests::{done_video_id, drain, fixtures, path_request, upload_chunks};
    let f = fixtures();
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("reelforge.toml");
    std::fs::write(
        &config,
        format!(
            "[tenants.acme]\nallowed_roots = [{:?}]\nmax_concurrent_jobs = 1\n[tenants.beta]\nstorage_bytes = {}\n[tenants.gamma]\nallowed_roots = [{:?}]\n",
            f.dir,
            std::fs::metadata(&f.small).unwrap().len() + 1000,
            f.dir,
        ),
    )
    .unwrap();
    let server = Server::start_with(
        &tmp.path().join("data"),
        &[],
        &[
            ("REELFORGE_CONFIG", config.to_str().unwrap()),
            // Speech is not what this is about: a tone needs no transcript.
            ("REELFORGE_TRANSCRIBER", "none"),
        ],
    )
    .await;
    let channel = server.channel().await;
    let ops = create_key(channel.clone(), None, "ops", pb::Role::Admin, 0)
        .await
        .unwrap()
        .secret;
    let acme = create_key(channel.clone(), Some(&ops), "acme", pb::Role::Write, 0)
        .await
        .unwrap()
        .secret;
    let beta = create_key(channel.clone(), Some(&ops), "beta", pb::Role::Write, 0)
        .await
        .unwrap()
        .secret;
    let ingest =
        |token: &str| pb::ingest_client::IngestClient::new(with_token(channel.clone(), token));

    // The same bytes: acme names the file on the server (its own root), beta uploads it.
    let stream = ingest(&acme)
        .ingest_path(path_request(&f.small, 4.0))
        .await
        .unwrap()
        .into_inner();
    let (events, status) = drain(stream).await;
    status.unwrap();
    let acme_video = done_video_id(&events);
    let stream = ingest(&beta)
        .ingest_upload(tokio_stream::iter(upload_chunks(&f.small, 4.0, false)))
        .await
        .unwrap()
        .into_inner();
    let (events, status) = drain(stream).await;
    status.unwrap();
    let beta_video = done_video_id(&events);
    // beta's quota holds that upload and not one more video.
    let over = ingest(&beta)
        .ingest_upload(tokio_stream::iter(upload_chunks(&f.silent, 4.0, false)))
        .await
        .unwrap_err();
    assert_eq!(over.code(), Code::ResourceExhausted);
    assert!(
        over.message().contains("tenants.beta.storage_bytes"),
        "{}",
        over.message()
    );
    assert_ne!(
        acme_video, beta_video,
        "the same file is two videos for two tenants"
    );
    let refused = ingest(&beta)
        .ingest_path(path_request(&f.small, 4.0))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    assert!(
        refused.message().contains("[tenants.beta]"),
        "{}",
        refused.message()
    );

    // Lists, gets and deletes: each its own; the other's ids are NOT_FOUND.
    for (token, own, other) in [
        (&acme, &acme_video, &beta_video),
        (&beta, &beta_video, &acme_video),
    ] {
        let mut client = ingest(token);
        let videos = client
            .list_videos(pb::ListVideosRequest::default())
            .await
            .unwrap()
            .into_inner()
            .videos;
        assert_eq!(videos.len(), 1);
        assert_eq!(&videos[0].video_id, own);
        let jobs = client
            .list_jobs(pb::ListJobsRequest::default())
            .await
            .unwrap()
            .into_inner()
            .jobs;
        assert!(
            !jobs.is_empty() && jobs.iter().all(|j| &j.video_id == own),
            "{jobs:?}"
        );
        for code in [
            client
                .get_video(pb::GetVideoRequest {
                    video_id: other.clone(),
                    include_signals: false,
                })
                .await
                .map(|_| ())
                .unwrap_err()
                .code(),
            client
                .delete_video(pb::DeleteVideoRequest {
                    video_id: other.clone(),
                })
                .await
                .map(|_| ())
                .unwrap_err()
                .code(),
            client
                .reanalyse_video(pb::ReanalyseVideoRequest {
                    video_id: other.clone(),
                    failed_only: false,
                })
                .await
                .map(|_| ())
                .unwrap_err()
                .code(),
        ] {
            assert_eq!(code, Code::NotFound);
        }
        let mut highlight =
            pb::highlight_client::HighlightClient::new(with_token(channel.clone(), token));
        let clip = highlight
            .get_clip(pb::GetClipRequest {
                video_id: other.clone(),
                start_ms: 0,
                end_ms: 2000,
                ..Default::default()
            })
            .await;
        let clip_code = match clip {
            Err(s) => s.code(),
            Ok(r) => r
                .into_inner()
                .message()
                .await
                .map(|_| Code::Ok)
                .unwrap_or_else(|s| s.code()),
        };
        assert_eq!(clip_code, Code::NotFound);
        let made = highlight
            .highlight(pb::HighlightRequest {
                video_id: other.clone(),
                render: Some(false),
                ..Default::default()
            })
            .await;
        let code = match made {
            Err(s) => s.code(),
            Ok(r) => {
                let mut stream = r.into_inner();
                loop {
                    match stream.message().await {
                        Ok(Some(_)) => continue,
                        Ok(None) => break Code::Ok,
                        Err(s) => break s.code(),
                    }
                }
            }
        };
        assert_eq!(
            code,
            Code::NotFound,
            "a highlight of the other tenant's video"
        );
        // Search: the same words, only the tenant's own video.
        let mut search = pb::search_client::SearchClient::new(with_token(channel.clone(), token));
        let mut stream = search
            .search(pb::SearchRequest {
                query: "tone".into(),
                top_k: 20,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        let mut hits = Vec::new();
        while let Some(reply) = stream.message().await.unwrap() {
            if let Some(pb::search_response::Item::Result(r)) = reply.item {
                hits.push(r.video_id);
            }
        }
        assert!(!hits.is_empty(), "the tenant finds its own video");
        assert!(hits.iter().all(|h| h == own), "{hits:?}");
        let filtered = search
            .search(pb::SearchRequest {
                query: "tone".into(),
                video_ids: vec![other.clone()],
                ..Default::default()
            })
            .await;
        assert!(
            filtered.is_err(),
            "a filter naming the other tenant's video is refused"
        );
    }
    // acme runs one job at a time: a second waits for the first to end.
    let mut long = ingest(&acme)
        .ingest_path(path_request(&f.long, 4.0))
        .await
        .unwrap()
        .into_inner();
    let job_id = long.message().await.unwrap().unwrap().job_id;
    let busy = ingest(&acme)
        .ingest_path(path_request(&f.silent, 4.0))
        .await
        .unwrap_err();
    assert_eq!(busy.code(), Code::ResourceExhausted);
    assert!(
        busy.message().contains("tenants.acme.max_concurrent_jobs"),
        "{}",
        busy.message()
    );
    ingest(&acme)
        .cancel_job(pb::CancelJobRequest { job_id })
        .await
        .unwrap();

    // Highlights and the library: acme's are not beta's.
    let mut acme_highlight =
        pb::highlight_client::HighlightClient::new(with_token(channel.clone(), &acme));
    let mut stream = acme_highlight
        .highlight(pb::HighlightRequest {
            video_id: acme_video.clone(),
            render: Some(false),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut highlight_id = String::new();
    while let Some(e) = stream.message().await.unwrap() {
        if let Some(pb::highlight_event::Event::Started(s)) = e.event {
            highlight_id = s.highlight_id;
        }
    }
    assert!(!highlight_id.is_empty());
    let mut beta_highlight =
        pb::highlight_client::HighlightClient::new(with_token(channel.clone(), &beta));
    let got = beta_highlight
        .get_highlight(pb::GetHighlightRequest {
            highlight_id: highlight_id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(got.code(), Code::NotFound);
    let listed = beta_highlight
        .list_highlights(pb::ListHighlightsRequest::default())
        .await
        .unwrap()
        .into_inner();
    // beta's list holds only its own: the highlight it asked of acme's video, failed
    // as one of a missing video does, and never acme's.
    assert_eq!(listed.highlights.len(), 1, "{listed:?}");
    assert!(listed
        .highlights
        .iter()
        .all(|h| h.highlight_id != highlight_id && h.state == pb::HighlightState::Failed as i32));
    let mut acme_library =
        pb::library_client::LibraryClient::new(with_token(channel.clone(), &acme));
    acme_library
        .add_entry(pb::AddLibraryEntryRequest {
            video_id: acme_video.clone(),
            start_seconds: 1.0,
            end_seconds: 4.0,
            category: "tones".into(),
            description: "a steady tone".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut beta_library =
        pb::library_client::LibraryClient::new(with_token(channel.clone(), &beta));
    let entries = beta_library
        .list_entries(pb::ListLibraryEntriesRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(entries.entries.is_empty(), "{entries:?}");
    let refused = beta_library
        .add_entry(pb::AddLibraryEntryRequest {
            video_id: acme_video.clone(),
            start_seconds: 1.0,
            end_seconds: 4.0,
            category: "tones".into(),
            description: "a steady tone".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::NotFound);

    // A key's own limit on jobs at once: gamma has no tenant limit, but this key runs
    // one job at a time while another gamma key goes on.
    let mut admin = pb::admin_client::AdminClient::new(with_token(channel.clone(), &ops));
    let one_at_a_time = admin
        .create_key(pb::CreateKeyRequest {
            tenant: "gamma".into(),
            role: pb::Role::Write as i32,
            max_concurrent_jobs: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(one_at_a_time.key.as_ref().unwrap().max_concurrent_jobs, 1);
    let gamma = create_key(channel.clone(), Some(&ops), "gamma", pb::Role::Write, 0)
        .await
        .unwrap()
        .secret;
    let mut long = ingest(&one_at_a_time.secret)
        .ingest_path(path_request(&f.long, 4.0))
        .await
        .unwrap()
        .into_inner();
    let job_id = long.message().await.unwrap().unwrap().job_id;
    let busy = ingest(&one_at_a_time.secret)
        .ingest_path(path_request(&f.silent, 4.0))
        .await
        .unwrap_err();
    assert_eq!(busy.code(), Code::ResourceExhausted);
    let key_id = &one_at_a_time.key.as_ref().unwrap().key_id;
    assert!(
        busy.message()
            .contains(&format!("API key {key_id} has 1 jobs running")),
        "{}",
        busy.message()
    );
    let (events, status) = drain(
        ingest(&gamma)
            .ingest_path(path_request(&f.small, 4.0))
            .await
            .unwrap()
            .into_inner(),
    )
    .await;
    status.unwrap();
    let gamma_video = done_video_id(&events);

    // Cross-tenant views are an admin's: a write key naming another tenant, or every
    // tenant, is refused naming the role; the admin sees each tenant's, marked.
    let videos_as = |token: &str, tenant: &str| {
        let mut client = ingest(token);
        let tenant = tenant.to_string();
        async move {
            client
                .list_videos(pb::ListVideosRequest {
                    tenant,
                    ..Default::default()
                })
                .await
                .map(|r| r.into_inner().videos)
        }
    };
    let denied = videos_as(&beta, "acme").await.unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    assert!(
        denied.message().contains("admin role"),
        "{}",
        denied.message()
    );
    let denied = ingest(&beta)
        .list_jobs(pb::ListJobsRequest {
            tenant: "*".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    let own = videos_as(&beta, "beta").await.unwrap();
    assert_eq!(own.len(), 1, "naming its own tenant is no crossing");
    let all: Vec<(String, String)> = videos_as(&ops, "*")
        .await
        .unwrap()
        .into_iter()
        .map(|v| (v.tenant, v.video_id))
        .collect();
    for pair in [
        ("acme".to_string(), acme_video.clone()),
        ("beta".to_string(), beta_video.clone()),
        ("gamma".to_string(), gamma_video.clone()),
    ] {
        assert!(all.contains(&pair), "{pair:?} in {all:?}");
    }
    let acme_only = videos_as(&ops, "acme").await.unwrap();
    assert!(acme_only.iter().all(|v| v.tenant == "acme") && !acme_only.is_empty());
    let jobs = ingest(&ops)
        .list_jobs(pb::ListJobsRequest {
            tenant: "*".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .jobs;
    let tenants: std::collections::BTreeSet<&str> =
        jobs.iter().map(|j| j.tenant.as_str()).collect();
    assert_eq!(
        tenants.into_iter().collect::<Vec<_>>(),
        ["acme", "beta", "gamma"]
    );
    let bad = videos_as(&ops, "../acme").await.unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert!(bad.message().starts_with("tenant:"), "{}", bad.message());
    let mut ops_highlight =
        pb::highlight_client::HighlightClient::new(with_token(channel.clone(), &ops));
    let highlights = ops_highlight
        .list_highlights(pb::ListHighlightsRequest {
            tenant: "*".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .highlights;
    assert!(highlights
        .iter()
        .any(|h| h.highlight_id == highlight_id && h.tenant == "acme"));
    assert!(highlights.iter().any(|h| h.tenant == "beta"));

    // Every tenant's use against its limits, while gamma's long job still runs.
    let tenants = admin
        .list_tenants(pb::ListTenantsRequest {})
        .await
        .unwrap()
        .into_inner()
        .tenants;
    let of = |name: &str| {
        tenants
            .iter()
            .find(|t| t.tenant == name)
            .unwrap_or_else(|| panic!("{name} in {tenants:?}"))
            .clone()
    };
    let (acme_t, beta_t, gamma_t, ops_t) = (of("acme"), of("beta"), of("gamma"), of("ops"));
    assert_eq!((acme_t.videos, acme_t.active_keys), (1, 1));
    assert_eq!(acme_t.max_concurrent_jobs, 1);
    assert_eq!(
        acme_t.uploaded_bytes, 0,
        "acme's file is on the server's disk"
    );
    assert_eq!(
        beta_t.uploaded_bytes,
        std::fs::metadata(&f.small).unwrap().len()
    );
    assert!(beta_t.storage_quota_bytes > beta_t.uploaded_bytes);
    assert_eq!((gamma_t.videos, gamma_t.active_keys), (1, 2));
    assert_eq!(gamma_t.jobs_running, 1, "{gamma_t:?}");
    assert_eq!((ops_t.active_keys, ops_t.videos), (1, 0));
    let denied = pb::admin_client::AdminClient::new(with_token(channel.clone(), &acme))
        .list_tenants(pb::ListTenantsRequest {})
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    // The CLI's view of the same.
    let out = server.cli(&["--token", &ops, "tenants"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("gamma") && l.contains(" 1 ")),
        "{text}"
    );
    let out = server.cli(&["--token", &ops, "videos", "list", "--tenant", "*"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.starts_with("TENANT") && text.contains(&beta_video),
        "{text}"
    );
    ingest(&one_at_a_time.secret)
        .cancel_job(pb::CancelJobRequest { job_id })
        .await
        .unwrap();
    server.stop().await;
}
