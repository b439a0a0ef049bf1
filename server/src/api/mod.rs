//! The gRPC layer: the only place (with `main.rs`) that knows tonic and the generated
//! types. Handlers convert, call one engine service (which checks the request and fills
//! in its defaults) and convert back; `status` is the one map from engine errors to
//! gRPC codes.

mod admin;
mod convert;
mod feedback;
mod highlight;
mod ingest;
mod library;
mod search;
pub mod status;
pub mod web;

use std::future::Future;

use reelforge_proto::v1::admin_server::AdminServer;
use reelforge_proto::v1::feedback_server::FeedbackServer;
use reelforge_proto::v1::highlight_server::HighlightServer;
use reelforge_proto::v1::ingest_server::IngestServer;
use reelforge_proto::v1::library_server::LibraryServer;
use reelforge_proto::v1::search_server::SearchServer;
use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;

pub use admin::AdminApi;
pub use feedback::FeedbackApi;
pub use highlight::HighlightApi;
pub use ingest::IngestApi;
pub use library::LibraryApi;
pub use search::SearchApi;
pub use status::to_status;

use reelforge_engine::Engine;
use std::sync::Arc;

use crate::auth::{Access, AuthLayer};
use crate::logging::RequestIdLayer;
use crate::metrics::{Metrics, MetricsLayer};
use crate::tls::Reloadable;

/// Idle time before TCP keepalive probes start on a connection.
pub const KEEPALIVE: std::time::Duration = std::time::Duration::from_secs(60);

/// How the server meets its callers: who may call (keys, roles, rate limits), how big a
/// request may be, and TLS (`None`: plaintext).
pub struct Gate {
    pub access: Arc<Access>,
    pub max_message_bytes: usize,
    pub tls: Option<Arc<Reloadable>>,
}

/// The connections `listener` accepts, each with Nagle's algorithm off (a small response
/// must not wait for the caller's delayed ACK: ~40 ms a call) and TCP keepalive on (dead
/// peers are found). tonic's own `tcp_nodelay` setting does not reach connections from a
/// listener handed to it, so they are set here.
pub fn incoming(listener: TcpListener) -> TcpIncoming {
    TcpIncoming::from(listener)
        .with_nodelay(Some(true))
        .with_keepalive(Some(KEEPALIVE))
}

/// Serves every reelforge service, health and reflection (v1 and v1alpha) on `listener`
/// behind `gate` until `shutdown` completes; with `http`, the web page there too (`web`:
/// the page, media, uploads, and every service over gRPC-Web), behind the same gate.
pub async fn serve(
    engine: Engine,
    listener: TcpListener,
    http: Option<TcpListener>,
    metrics: Arc<Metrics>,
    gate: Gate,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<IngestServer<IngestApi>>()
        .await;
    health_reporter
        .set_serving::<SearchServer<SearchApi>>()
        .await;
    health_reporter
        .set_serving::<HighlightServer<HighlightApi>>()
        .await;
    health_reporter
        .set_serving::<LibraryServer<LibraryApi>>()
        .await;
    health_reporter
        .set_serving::<FeedbackServer<FeedbackApi>>()
        .await;
    health_reporter.set_serving::<AdminServer<AdminApi>>().await;

    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(reelforge_proto::v1::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1 = reflection().build_v1()?;
    let reflection_v1alpha = reflection().build_v1alpha()?;

    // Every request message is capped at the same size: large enough that an oversized
    // query reaches its handler and gets a clear INVALID_ARGUMENT, small enough that no
    // caller makes the server hold more.
    let max = gate.max_message_bytes;
    let web = Arc::new(web::Web {
        catalog: engine.catalog.clone(),
        ingest: engine.ingest.clone(),
        highlights: engine.highlights.clone(),
        limits: engine.limits.clone(),
        tls: gate.tls.is_some(),
    });
    let ingest = IngestServer::new(IngestApi::new(
        engine.ingest,
        engine.catalog,
        engine.limits.clone(),
    ))
    .max_decoding_message_size(max);
    let search = SearchServer::new(SearchApi::new(engine.search, metrics.clone()))
        .max_decoding_message_size(max);
    let highlight =
        HighlightServer::new(HighlightApi::new(engine.highlights, engine.limits.clone()))
            .max_decoding_message_size(max);
    let library =
        LibraryServer::new(LibraryApi::new(engine.library)).max_decoding_message_size(max);
    let feedback =
        FeedbackServer::new(FeedbackApi::new(engine.feedback)).max_decoding_message_size(max);
    let access = (
        gate.access.required(),
        gate.tls.is_some(),
        gate.tls.as_ref().is_some_and(|t| t.mutual()),
    );
    let admin = AdminServer::new(AdminApi::new(
        engine.keys,
        engine.limits,
        engine.about,
        access,
    ))
    .max_decoding_message_size(max);

    let routes = tonic::service::Routes::new(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(ingest)
        .add_service(search)
        .add_service(highlight)
        .add_service(library)
        .add_service(feedback)
        .add_service(admin);
    // Both listeners stop when `shutdown` completes.
    let stop = tokio_util::sync::CancellationToken::new();
    let trigger = {
        let stop = stop.clone();
        async move {
            shutdown.await;
            stop.cancel();
        }
    };
    let grpc = tonic::transport::Server::builder()
        .layer(RequestIdLayer)
        .layer(MetricsLayer(metrics.clone()))
        .layer(AuthLayer(gate.access.clone()))
        .add_routes(routes.clone());
    let grpc_stop = stop.clone();
    let grpc = async {
        match &gate.tls {
            Some(tls) => {
                grpc.serve_with_incoming_shutdown(
                    crate::tls::incoming(listener, tls.clone(), KEEPALIVE),
                    grpc_stop.cancelled(),
                )
                .await
            }
            None => {
                grpc.serve_with_incoming_shutdown(incoming(listener), grpc_stop.cancelled())
                    .await
            }
        }
    };
    let page = async {
        let Some(http) = http else {
            return Ok(());
        };
        // The services as gRPC-Web (the gate answers a refused gRPC-Web call in kind),
        // beside the page's own paths.
        let grpc_web = routes
            .into_axum_router()
            .layer(tonic_web::GrpcWebLayer::new());
        let page = tonic::transport::Server::builder()
            .accept_http1(true)
            .layer(RequestIdLayer)
            .layer(MetricsLayer(metrics))
            .layer(AuthLayer(gate.access.clone()))
            .add_routes(tonic::service::Routes::from(
                web::router(web).merge(grpc_web),
            ));
        match &gate.tls {
            Some(tls) => {
                page.serve_with_incoming_shutdown(
                    crate::tls::incoming(http, tls.clone(), KEEPALIVE),
                    stop.cancelled(),
                )
                .await
            }
            None => {
                page.serve_with_incoming_shutdown(incoming(http), stop.cancelled())
                    .await
            }
        }
    };
    let (grpc, page, ()) = tokio::join!(grpc, page, trigger);
    grpc?;
    page?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_stream::StreamExt;

    /// Regression: the server used to hand tonic its listener as a plain stream, and every
    /// accepted connection kept Nagle's algorithm on (≈40 ms added to each small call).
    #[tokio::test]
    async fn regression_accepted_connections_have_nodelay_and_keepalive() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut accepted = incoming(listener);
        let _client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let conn = accepted.next().await.unwrap().unwrap();
        assert!(conn.nodelay().unwrap(), "TCP_NODELAY is set");
        assert!(
            socket2::SockRef::from(&conn).keepalive().unwrap(),
            "SO_KEEPALIVE is set"
        );
    }
}
