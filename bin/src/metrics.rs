//! `bosun worker --metrics-addr`: serve the worker's metrics (see `bosun_workers::metrics`)
//! for Prometheus at `/metrics`.

use std::net::SocketAddr;

use anyhow::Context;
use bosun_workers::metrics::SECONDS_BUCKETS;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};

/// Install the Prometheus recorder and its HTTP listener on `addr`.
///
/// # Errors
/// When the address cannot be bound or a recorder is installed already.
pub fn serve(addr: SocketAddr) -> anyhow::Result<()> {
    // Bind first: the exporter binds in the background, where a taken port would only be
    // logged, and an operator should learn at once.
    drop(std::net::TcpListener::bind(addr).with_context(|| format!("--metrics-addr {addr}"))?);
    PrometheusBuilder::new()
        .with_http_listener(addr)
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
        .context("histogram buckets")?
        .install()
        .context("starting the metrics listener")?;
    bosun_workers::metrics::describe();
    tracing::info!(%addr, "serving Prometheus metrics at /metrics");
    Ok(())
}
