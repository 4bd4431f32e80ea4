//! `bosun worker --metrics-addr`: serve the worker's metrics (see `bosun_workers::metrics`)
//! for Prometheus at `/metrics`.
//!
//! The exporter crate's own listener answers any path with the metrics, so a typo in a
//! scrape config (`/metric`, `/`) would look healthy; here `/metrics` is the only path that
//! answers 200, any other is 404, and a method other than GET or HEAD on it is 405.

use std::{convert::Infallible, net::SocketAddr, time::Duration};

use anyhow::Context;
use bosun_workers::metrics::SECONDS_BUCKETS;
use http_body_util::Full;
use hyper::{
    body::{Bytes, Incoming},
    header::{HeaderValue, ALLOW, CONTENT_TYPE},
    server::conn::http1,
    service::service_fn,
    Method, Request, Response, StatusCode,
};
use hyper_util::rt::TokioIo;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// The one path that serves the metrics.
pub const PATH: &str = "/metrics";

/// How often the recorder drains its histograms when nobody scrapes (the exporter's default).
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// Install the Prometheus recorder and serve it on `addr` at [`PATH`]. Call from within the
/// Tokio runtime; the listener runs on it until the process exits.
///
/// # Errors
/// When the address cannot be bound or a recorder is installed already.
pub fn serve(addr: SocketAddr) -> anyhow::Result<()> {
    // Bound here, before anything runs in the background, so that a taken port is an error
    // an operator sees at once rather than a log line.
    let listener = std::net::TcpListener::bind(addr)
        .and_then(|listener| {
            listener.set_nonblocking(true)?;
            tokio::net::TcpListener::from_std(listener)
        })
        .with_context(|| format!("--metrics-addr {addr}"))?;
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
        .context("histogram buckets")?
        .install_recorder()
        .context("installing the metrics recorder")?;
    bosun_workers::metrics::describe();
    let upkeep = handle.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(UPKEEP_INTERVAL).await;
            upkeep.run_upkeep();
        }
    });
    tokio::spawn(accept(listener, handle));
    tracing::info!(%addr, "serving Prometheus metrics at {PATH}");
    Ok(())
}

async fn accept(listener: tokio::net::TcpListener, handle: PrometheusHandle) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(error) => {
                tracing::warn!(%error, "accepting a metrics connection");
                continue;
            }
        };
        let handle = handle.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let handle = handle.clone();
                async move { Ok::<_, Infallible>(respond(&handle, &request)) }
            });
            if let Err(error) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%error, "serving a metrics connection");
            }
        });
    }
}

fn respond(handle: &PrometheusHandle, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    if request.uri().path() != PATH {
        return plain(
            StatusCode::NOT_FOUND,
            format!("not found: metrics are at {PATH}\n"),
        );
    }
    if request.method() != Method::GET && request.method() != Method::HEAD {
        let mut response = plain(StatusCode::METHOD_NOT_ALLOWED, "use GET\n".to_string());
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    let mut response = Response::new(Full::new(Bytes::from(handle.render())));
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    response
}

fn plain(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    response
}
