//! `reelforge doctor`: checks, in order, that the server is reachable at the address, that
//! TLS is what it should be, that the key is accepted, what models the server runs and
//! that its ffmpeg and ffprobe work; each failure says what to fix. Exit status 1 when any
//! check fails.

use reelforge_proto::v1 as pb;
use reelforge_proto::v1::admin_client::AdminClient;
use serde::Serialize;

use crate::connect::{self, ConnectArgs};
use crate::output;

#[derive(Serialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Status {
    Ok,
    /// Works, but worth knowing (a role off, plaintext beyond this machine).
    Note,
    Fail,
    /// Not checked: an earlier check failed.
    Skipped,
}

#[derive(Serialize)]
struct Check {
    check: &'static str,
    status: Status,
    detail: String,
    /// What to do about it (failures and notes).
    #[serde(skip_serializing_if = "String::is_empty")]
    fix: String,
}

fn check(check: &'static str, status: Status, detail: impl Into<String>) -> Check {
    Check {
        check,
        status,
        detail: detail.into(),
        fix: String::new(),
    }
}

impl Check {
    fn fix(mut self, fix: impl Into<String>) -> Check {
        self.fix = fix.into();
        self
    }
}

fn loopback(url: &str) -> bool {
    let host = url
        .split("://")
        .nth(1)
        .unwrap_or(url)
        .split('/')
        .next()
        .unwrap_or_default();
    let host = host.rsplit_once(':').map_or(host, |(h, _)| h);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

async fn run_checks(args: &ConnectArgs) -> Vec<Check> {
    let mut checks = Vec::new();
    let url = &args.addr;
    let tls = url.starts_with("https://");
    let skip = |checks: &mut Vec<Check>, names: &[&'static str]| {
        for name in names {
            checks.push(check(name, Status::Skipped, "an earlier check failed"));
        }
    };
    let channel = match connect::connect(args).await {
        Ok(c) => {
            checks.push(check("address", Status::Ok, format!("{url}: connected")));
            c
        }
        Err(e) => {
            checks.push(check("address", Status::Fail, output::one_line(&e)).fix(
                "start reelforge-server, or point --addr (REELFORGE_ADDR) at it: \
                     http://HOST:PORT, or https://HOST:PORT for TLS",
            ));
            skip(&mut checks, &["tls", "key", "server", "models", "ffmpeg"]);
            return checks;
        }
    };
    let mut admin = AdminClient::new(channel);
    // The first call completes the handshake: a refused certificate shows here.
    let info = admin.get_server_info(pb::GetServerInfoRequest {}).await;
    // What the server itself answers GetServerInfo with; anything else (UNAVAILABLE,
    // UNKNOWN, INTERNAL, CANCELLED: which one depends on when the server's TLS refusal
    // reaches the client) is the connection failing.
    let answered = |code: tonic::Code| {
        matches!(
            code,
            tonic::Code::Unauthenticated
                | tonic::Code::PermissionDenied
                | tonic::Code::ResourceExhausted
                | tonic::Code::Unimplemented
        )
    };
    let info = match info.map(tonic::Response::into_inner) {
        Err(s) if !answered(s.code()) => {
            let detail = format!("{}: {}", output::code_name(s.code()), s.message());
            checks.push(check("tls", Status::Fail, detail).fix(if tls {
                "--ca (REELFORGE_CA) must name the CA that signed the server's certificate; \
                 a server that asks for client certificates needs --cert and --key"
            } else {
                "the server may speak TLS: use https:// with --ca"
            }));
            skip(&mut checks, &["key", "server", "models", "ffmpeg"]);
            return checks;
        }
        other => other,
    };
    // TLS as it should be.
    checks.push(match (tls, &info) {
        (true, Ok(i)) => check(
            "tls",
            Status::Ok,
            if i.client_certificates {
                "TLS with a client certificate (mutual TLS)"
            } else {
                "TLS; the server's certificate is trusted"
            },
        ),
        (true, Err(_)) => check("tls", Status::Ok, "TLS handshake completed"),
        (false, _) if loopback(url) => {
            check("tls", Status::Ok, "plaintext on this machine (loopback)")
        }
        (false, _) => check(
            "tls",
            Status::Note,
            "plaintext beyond this machine: calls and the key cross the network unencrypted",
        )
        .fix("serve TLS (tls.cert, tls.key) and use an https:// address"),
    });
    // The key.
    let key = match &info {
        Err(s) if s.code() == tonic::Code::Unauthenticated => check(
            "key",
            Status::Fail,
            format!("UNAUTHENTICATED: {}", s.message()),
        )
        .fix(
            "pass --token (REELFORGE_TOKEN) with a key from `reelforge keys create` or \
                 `reelforge-server keys create`",
        ),
        Err(s) if s.code() == tonic::Code::ResourceExhausted => check(
            "key",
            Status::Fail,
            format!("RESOURCE_EXHAUSTED: {}", s.message()),
        )
        .fix("wait for the key's rate limit, or ask for a higher one"),
        _ => match admin.who_am_i(pb::WhoAmIRequest {}).await {
            Ok(k) => {
                let k = k.into_inner();
                let keys_required = info.as_ref().is_ok_and(|i| i.keys_required);
                if !keys_required {
                    check(
                        "key",
                        Status::Ok,
                        "this server needs no key: every caller is the default tenant's admin",
                    )
                } else {
                    let role = crate::keys::role_name(k.role);
                    let expires = match k.expires_unix_ms {
                        0 => "never expires".to_string(),
                        ms => {
                            let now = std::time::SystemTime::now()
                                .duration_since(std::time::UNIX_EPOCH)
                                .map_or(0, |d| d.as_millis() as i64);
                            format!("expires in {:.1} days", (ms - now) as f64 / 86_400_000.0)
                        }
                    };
                    check(
                        "key",
                        Status::Ok,
                        format!(
                            "key {} of tenant {}, role {role}, {expires}",
                            k.key_id, k.tenant
                        ),
                    )
                }
            }
            Err(s) => check(
                "key",
                Status::Fail,
                format!("{}: {}", output::code_name(s.code()), s.message()),
            )
            .fix("check --token (REELFORGE_TOKEN)"),
        },
    };
    let key_failed = key.status == Status::Fail;
    checks.push(key);
    let info = match info {
        Ok(i) if !key_failed => i,
        Ok(_) => {
            skip(&mut checks, &["server", "models", "ffmpeg"]);
            return checks;
        }
        Err(s) => {
            if !key_failed {
                checks.push(
                    check(
                        "server",
                        Status::Fail,
                        format!("{}: {}", output::code_name(s.code()), s.message()),
                    )
                    .fix("a server older than this CLI lacks GetServerInfo: upgrade it"),
                );
            } else {
                skip(&mut checks, &["server"]);
            }
            skip(&mut checks, &["models", "ffmpeg"]);
            return checks;
        }
    };
    let ours = env!("CARGO_PKG_VERSION");
    checks.push(if info.version == ours {
        check(
            "server",
            Status::Ok,
            format!(
                "reelforge-server {}, search index {}",
                info.version, info.search_backend
            ),
        )
    } else {
        check(
            "server",
            Status::Note,
            format!("reelforge-server {}, this CLI {ours}", info.version),
        )
        .fix("use a CLI of the server's version for every option to be understood")
    });
    // Models: a role that is off is worth knowing, not a failure.
    let named: Vec<String> = info
        .models
        .iter()
        .filter(|m| !m.name.is_empty())
        .map(|m| format!("{} {}", m.role, m.name))
        .collect();
    checks.push(check("models", Status::Ok, named.join(", ")));
    if !info.speech_languages.is_empty() {
        let assumed = match info.ingest_language.as_str() {
            "" | "auto" => "told by the model unless an ingest names one (--language)".into(),
            code => format!("{code} unless an ingest names another (--language)"),
        };
        checks.push(check(
            "speech",
            Status::Ok,
            format!(
                "languages {} ({}); spoken language {assumed}",
                info.speech_languages.join(" "),
                info.speech_languages.len()
            ),
        ));
    }
    for m in info.models.iter().filter(|m| m.name.is_empty()) {
        let (what, fix) = match m.role.as_str() {
            "transcriber" => (
                "off: speech is not transcribed",
                "set models.transcriber (REELFORGE_TRANSCRIBER) to local:whisper-tiny-en (the default)",
            ),
            "image_embedder" => (
                "off: thumbnails are not embedded (no frame matching)",
                "set models.image_embedder (REELFORGE_IMAGE_EMBEDDER) to clip:<dir> with CLIP weights",
            ),
            "video_embedder" => (
                "off: clips are matched by their captions",
                "set models.video_embedder to bedrock:amazon.nova-2-multimodal-embeddings-v1:0",
            ),
            "data_automation" => (
                "off: run-bda is unavailable",
                "set models.bedrock.data_automation_project_arn",
            ),
            _ => ("off", ""),
        };
        checks.push(check("models", Status::Note, format!("{} {what}", m.role)).fix(fix));
    }
    for (tool, line, error) in [
        ("ffmpeg", &info.ffmpeg, &info.ffmpeg_error),
        ("ffprobe", &info.ffprobe, &info.ffprobe_error),
    ] {
        checks.push(if error.is_empty() {
            check("ffmpeg", Status::Ok, line.clone())
        } else {
            check("ffmpeg", Status::Fail, format!("{tool}: {error}")).fix(format!(
                "install ffmpeg on the server (scripts/setup.sh does), or set {tool} = \"PATH\" in its configuration"
            ))
        });
    }
    checks
}

pub async fn run(args: &ConnectArgs, json: bool) -> anyhow::Result<()> {
    let checks = run_checks(args).await;
    if json {
        output::json_line(&serde_json::json!({ "checks": checks }))?;
    } else {
        for c in &checks {
            let status = match c.status {
                Status::Ok => "ok",
                Status::Note => "note",
                Status::Fail => "FAIL",
                Status::Skipped => "skip",
            };
            if output::quiet() && c.status == Status::Ok {
                continue;
            }
            println!("{status:<5} {:<8} {}", c.check, c.detail);
            if !c.fix.is_empty() {
                println!("{:<14} fix: {}", "", c.fix);
            }
        }
    }
    let failed = checks.iter().filter(|c| c.status == Status::Fail).count();
    if failed > 0 {
        anyhow::bail!(
            "{failed} check{} failed (see the fixes above)",
            if failed == 1 { "" } else { "s" }
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_addresses() {
        assert!(loopback("http://127.0.0.1:50051"));
        assert!(loopback("http://localhost:1"));
        assert!(loopback("https://[::1]:50051"));
        assert!(!loopback("http://10.0.0.5:50051"));
        assert!(!loopback("https://reelforge.example.com"));
    }
}
