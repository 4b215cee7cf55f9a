//! Metrics: the process-wide Prometheus recorder behind `/metrics`.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Buckets of every `*_seconds` histogram: from a quick HTTP answer to a slow database call.
const SECONDS_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the Prometheus recorder on first use and returns a handle that renders it. Every
/// later call (another router in the same test process) gets the same recorder.
pub fn prometheus() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            // Histograms rather than summaries: they aggregate across nodes. The buckets are a
            // non-empty constant, the one thing set_buckets_for_metric checks.
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &SECONDS_BUCKETS)
                .unwrap_or_else(|_| PrometheusBuilder::new());
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            // Fails only if another recorder was installed first; the handle still renders
            // what this recorder sees, which is then nothing, and /metrics stays valid text.
            let _ = metrics::set_global_recorder(recorder);
            metrics::gauge!("hotline_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
            handle
        })
        .clone()
}
