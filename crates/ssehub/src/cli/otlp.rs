//! OpenTelemetry traces over OTLP/HTTP (protobuf) for `ssehub serve`: off unless
//! `--otlp-endpoint` (`SSEHUB_OTLP_ENDPOINT`) or the standard `OTEL_EXPORTER_OTLP_ENDPOINT` /
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set. The library's spans (target
//! [`ssehub::http::trace::TARGET`]) become OpenTelemetry spans through `tracing-opentelemetry`
//! and leave in batches from a task on the hub's runtime; a slow or absent collector costs
//! dropped spans (the batch queue is bounded), never a slower publish.

use std::time::Duration;

use anyhow::Context as _;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor;
use tracing::Subscriber;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::registry::LookupSpan;

/// How long the last spans get to leave at shutdown.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// The exporter, kept to flush the last batch when the hub stops.
pub(crate) struct Traces(Option<SdkTracerProvider>);

impl Traces {
    /// Logs that traces are exported (once logging is set up, which this layer is part of).
    pub(crate) fn announce(&self, flag: Option<&str>) {
        if self.0.is_some() {
            let to = endpoint(flag).flatten();
            let to = to.as_deref().unwrap_or("the OTEL_EXPORTER_OTLP_* endpoint");
            tracing::info!(endpoint = to, "exporting traces over OTLP/HTTP");
        }
    }

    /// Sends what is still queued, bounded by [`FLUSH_TIMEOUT`].
    pub(crate) async fn shutdown(self) {
        let Some(provider) = self.0 else { return };
        // The SDK's shutdown blocks its thread until the export task answers.
        let flush = tokio::task::spawn_blocking(move || provider.shutdown());
        match tokio::time::timeout(FLUSH_TIMEOUT, flush).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(err))) => tracing::warn!(error = %err, "could not send the last trace spans"),
            Ok(Err(err)) => tracing::warn!(error = %err, "trace exporter shutdown failed"),
            Err(_) => tracing::warn!("the trace collector did not take the last spans in time"),
        }
    }
}

/// Where spans go: the flag's URL (a base like `http://collector:4318`, to which `/v1/traces`
/// is added, as for `OTEL_EXPORTER_OTLP_ENDPOINT`; or the full traces URL), else the standard
/// variables, read by the exporter itself; `None` when nothing asks for traces.
fn endpoint(flag: Option<&str>) -> Option<Option<String>> {
    if let Some(url) = flag.map(str::trim).filter(|u| !u.is_empty()) {
        let url = url.trim_end_matches('/');
        return Some(Some(if url.ends_with("/v1/traces") {
            url.to_owned()
        } else {
            format!("{url}/v1/traces")
        }));
    }
    let set = |name: &str| std::env::var(name).is_ok_and(|v| !v.trim().is_empty());
    (set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") || set("OTEL_EXPORTER_OTLP_ENDPOINT"))
        .then_some(None)
}

/// The layer exporting the hub's spans, or none when traces are off. Call inside the runtime.
///
/// # Errors
/// When the endpoint is not a valid URL.
pub(crate) fn layer<S>(
    flag: Option<&str>,
) -> anyhow::Result<(Option<impl Layer<S> + Send + Sync + 'static>, Traces)>
where
    S: Subscriber + for<'a> LookupSpan<'a> + Send + Sync,
{
    let Some(url) = endpoint(flag) else {
        return Ok((None, Traces(None)));
    };
    let mut builder = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary);
    if let Some(url) = &url {
        builder = builder.with_endpoint(url);
    }
    let exporter = builder.build().with_context(|| {
        format!(
            "the OTLP endpoint {}",
            url.as_deref().unwrap_or("from OTEL_EXPORTER_OTLP_*")
        )
    })?;
    let service = std::env::var("OTEL_SERVICE_NAME")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| "ssehub".to_owned());
    let provider = SdkTracerProvider::builder()
        .with_span_processor(
            BatchSpanProcessor::builder(exporter, opentelemetry_sdk::runtime::Tokio).build(),
        )
        .with_resource(
            Resource::builder()
                .with_service_name(service)
                .with_attribute(opentelemetry::KeyValue::new(
                    "service.version",
                    env!("CARGO_PKG_VERSION"),
                ))
                .build(),
        )
        .build();
    let tracer = provider.tracer("ssehub");
    let only_ours = Targets::new().with_target(ssehub::http::trace::TARGET, tracing::Level::INFO);
    let layer = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_filter(only_ours);
    Ok((Some(layer), Traces(Some(provider))))
}

#[cfg(test)]
mod tests {
    use super::endpoint;

    #[test]
    fn the_flag_is_a_base_url_or_the_traces_url() {
        assert_eq!(
            endpoint(Some("http://collector:4318")),
            Some(Some("http://collector:4318/v1/traces".into()))
        );
        assert_eq!(
            endpoint(Some("http://collector:4318/")),
            Some(Some("http://collector:4318/v1/traces".into()))
        );
        assert_eq!(
            endpoint(Some("https://otel.example.com/v1/traces")),
            Some(Some("https://otel.example.com/v1/traces".into()))
        );
    }
}
