//! `listen --metrics ADDR`: the crate's metrics in the Prometheus text format
//! at `http://ADDR/metrics`.

use std::process::ExitCode;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::common;

/// How often histograms are folded into their summaries between scrapes.
const UPKEEP: Duration = Duration::from_secs(5);

/// Installs the Prometheus recorder for the process, binds `addr` and serves
/// `GET /metrics` there. Returns the URL to scrape.
pub async fn serve(addr: &str) -> Result<String, ExitCode> {
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder)
        .map_err(|err| common::fail(common::EXIT_USAGE, format_args!("--metrics: {err}"), None))?;
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|err| {
        common::fail(
            common::EXIT_USAGE,
            format_args!(
                "--metrics: cannot listen on {}: {err}",
                common::escape_for_terminal(addr.as_bytes())
            ),
            Some("for example --metrics 127.0.0.1:9464"),
        )
    })?;
    let bound = listener
        .local_addr()
        .map_err(|err| common::fail(common::EXIT_USAGE, format_args!("--metrics: {err}"), None))?;
    tokio::spawn(upkeep(handle.clone()));
    let app = Router::new().route("/metrics", get(move || render(handle.clone())));
    tokio::spawn(async move {
        if let Err(err) = axum::serve(listener, app).await {
            common::warn(format_args!("--metrics stopped: {err}"));
        }
    });
    Ok(format!("http://{bound}/metrics"))
}

async fn render(handle: PrometheusHandle) -> String {
    handle.render()
}

async fn upkeep(handle: PrometheusHandle) {
    let mut every = tokio::time::interval(UPKEEP);
    loop {
        every.tick().await;
        handle.run_upkeep();
    }
}
