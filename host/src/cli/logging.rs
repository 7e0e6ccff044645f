//! Logs on stderr (`-v`, `-vv`, `RUST_LOG`) and, with the `otlp` feature and
//! `OTEL_EXPORTER_OTLP_ENDPOINT` (or `..._TRACES_ENDPOINT`) set, spans exported to an
//! OpenTelemetry collector over OTLP/HTTP.
//!
//! Why spans are exported whatever the log level: a trace is wanted for every call, while
//! stderr stays quiet by default. The exported spans are those of this crate: a `tools/call`
//! (`call`, parented on the caller's `traceparent`), the plugin or code-mode run inside it,
//! and the upstream requests they make (whose `traceparent` names these spans).

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

/// Sets up logging (and span export); call [`finish`] before the process exits.
pub(super) fn init(verbose: u8, level: Option<&str>) {
    use std::io::IsTerminal;
    // rmcp warns about every slow server exit, and its HTTP client logs each failure it
    // returns to us; our own messages say what matters.
    let default = match (level, verbose) {
        (Some("error"), _) => "error",
        (Some("warn"), _) | (None, 0) => "warn,rmcp=error,rmcp::transport::worker=off",
        (Some("info"), _) | (None, 1) => "info,rmcp=warn,rmcp::transport::worker=off",
        (Some("trace"), _) => "trace",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // Colour only for a person at a terminal: not in a file, a pipe or a client's log.
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let stderr = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(colour)
        .with_filter(filter);
    let _ = tracing_subscriber::registry()
        .with(stderr)
        .with(otlp::layer())
        .try_init();
}

/// Flushes the spans not yet exported.
pub(super) fn finish() {
    otlp::finish();
}

#[cfg(feature = "otlp")]
mod otlp {
    use std::sync::OnceLock;

    use opentelemetry::trace::TracerProvider;
    use opentelemetry_sdk::trace::SdkTracerProvider;
    use tracing_subscriber::Layer;

    static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

    /// The exporting layer, when an endpoint is configured.
    pub(super) fn layer<S>() -> Option<impl Layer<S>>
    where
        S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    {
        let configured = [
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        ]
        .iter()
        .any(|v| std::env::var_os(v).is_some());
        if !configured {
            return None;
        }
        crate::client::install_tls_provider();
        let exporter = match opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .build()
        {
            Ok(exporter) => exporter,
            Err(e) => {
                eprintln!("mcp-registry: OTLP export is off: {e}");
                return None;
            }
        };
        let resource = opentelemetry_sdk::Resource::builder()
            .with_service_name("mcp-registry")
            .build();
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource)
            .build();
        let tracer = provider.tracer("mcp-registry");
        let _ = PROVIDER.set(provider);
        let only_ours = tracing_subscriber::filter::Targets::new()
            .with_target("mcp_registry_host", tracing::Level::INFO);
        Some(
            tracing_opentelemetry::layer()
                .with_tracer(tracer)
                .with_filter(only_ours),
        )
    }

    pub(super) fn finish() {
        if let Some(provider) = PROVIDER.get() {
            let _ = provider.shutdown();
        }
    }
}

#[cfg(not(feature = "otlp"))]
mod otlp {
    /// No exporter without the `otlp` feature.
    pub(super) fn layer() -> Option<tracing_subscriber::layer::Identity> {
        None
    }

    pub(super) fn finish() {}
}
