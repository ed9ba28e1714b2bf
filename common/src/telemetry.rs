//! Logging, traces and metrics: `tracing` everywhere, pretty in a terminal, JSON lines otherwise
//! (the mesh). Every span is also an OpenTelemetry span, exported over OTLP when
//! `KILN_OTLP_ENDPOINT` is set; every log line written inside one carries its trace id.
//! The trace context crosses processes as a W3C `traceparent`: in HTTP and gRPC headers
//! ([`inject_from`], [`extract`]) and in the messages of the build queue and the event bus
//! ([`traceparent`], [`follow`]). Metrics (`metrics` macros) are rendered for
//! Prometheus by the one recorder of the process ([`metrics_handle`]).

use std::{io::IsTerminal, sync::OnceLock};

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use opentelemetry::{
    KeyValue,
    propagation::TextMapPropagator,
    trace::{TraceContextExt, TracerProvider as _},
};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::{Resource, propagation::TraceContextPropagator, trace::SdkTracerProvider};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::{
    EnvFilter,
    fmt::{self, FmtContext, FormatEvent, FormatFields, format::Writer},
    prelude::*,
    registry::LookupSpan,
};

use crate::config::{Config, LogFormat, OtlpProtocol};

/// The header (and message field) the trace context travels in.
pub const TRACEPARENT: &str = "traceparent";

/// The process's tracer provider: spans end here, and leave through its exporter.
static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

/// Installs the global subscriber once; later calls (tests) keep the first. Spans are
/// exported when `config` names a collector; they get trace ids either way, so logs and
/// propagated context are the same with or without one.
pub fn init(config: &Config) {
    let filter = EnvFilter::try_new(&config.log).unwrap_or_else(|_| EnvFilter::new("info"));
    let json = match config.log_format {
        LogFormat::Json => true,
        LogFormat::Pretty => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    let (provider, export_error) = match tracer_provider(config) {
        Ok(provider) => (provider, None),
        Err(error) => (SdkTracerProvider::builder().build(), Some(error)),
    };
    let tracer = provider.tracer("kiln");
    // Only what the conventions name: no busy/idle timing of every enter and exit (a
    // request's span is entered at each poll of its future), no thread, source or target.
    let otel = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_threads(false)
        .with_location(false)
        .with_target(false)
        .with_tracked_inactivity(false);
    let registry = tracing_subscriber::registry().with(filter).with(otel);
    let result = if json {
        let format = WithTraceId { inner: fmt::format().json().with_current_span(false), json: true };
        registry.with(fmt::layer().json().event_format(format).with_writer(std::io::stderr)).try_init()
    } else {
        let format = WithTraceId { inner: fmt::format(), json: false };
        registry.with(fmt::layer().event_format(format).with_writer(std::io::stderr)).try_init()
    };
    if result.is_err() {
        tracing::debug!("a tracing subscriber was already installed");
        return;
    }
    let _ = PROVIDER.set(provider);
    // The recorder first: what is recorded before it exists (a pool's first reading) is lost.
    metrics_handle();
    match (export_error, &config.otlp_endpoint) {
        (Some(error), _) => tracing::warn!(error = format!("{error:#}"), "traces are not exported"),
        (None, Some(endpoint)) => {
            tracing::info!(endpoint = %crate::db::redact_url(endpoint), protocol = ?config.otlp_protocol, "exporting traces")
        }
        (None, None) => {}
    }
}

/// Sends the spans still buffered to the collector; the process calls it before it exits.
pub fn flush() {
    if let Some(provider) = PROVIDER.get() {
        let _ = provider.force_flush();
    }
}

/// A provider naming this role as the service (`kiln-gateway`, `kiln-model`, …), with a
/// batching OTLP exporter when a collector is configured. The gRPC exporter uses the
/// tokio runtime it is built in.
fn tracer_provider(config: &Config) -> anyhow::Result<SdkTracerProvider> {
    let resource = Resource::builder()
        .with_service_name(format!("kiln-{}", config.role.name()))
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .build();
    let builder = SdkTracerProvider::builder().with_resource(resource);
    let Some(endpoint) = &config.otlp_endpoint else {
        return Ok(builder.build());
    };
    let exporter = match config.otlp_protocol {
        OtlpProtocol::Grpc => {
            opentelemetry_otlp::SpanExporter::builder().with_tonic().with_endpoint(endpoint).build()?
        }
        OtlpProtocol::Http => {
            // The collector's base URL, as for the standard variable; the signal's path is ours to add.
            let endpoint = if endpoint.ends_with("/v1/traces") {
                endpoint.clone()
            } else {
                format!("{}/v1/traces", endpoint.trim_end_matches('/'))
            };
            opentelemetry_otlp::SpanExporter::builder().with_http().with_endpoint(endpoint).build()?
        }
    };
    Ok(builder.with_batch_exporter(exporter).build())
}

/// A log line's format with the trace and span ids of the span it is written in, when
/// it is in one: first in a JSON object, last on a pretty line.
struct WithTraceId<F> {
    inner: F,
    json: bool,
}

impl<S, N, F> FormatEvent<S, N> for WithTraceId<F>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let context = ctx.lookup_current().and_then(|span| {
            tracing::dispatcher::get_default(|dispatch| tracing_opentelemetry::get_otel_context(&span.id(), dispatch))
        });
        let Some(context) = context else {
            return self.inner.format_event(ctx, writer, event);
        };
        let span = context.span();
        let ids = span.span_context();
        if !ids.is_valid() {
            return self.inner.format_event(ctx, writer, event);
        }
        let mut line = String::new();
        self.inner.format_event(ctx, Writer::new(&mut line), event)?;
        let (trace_id, span_id) = (ids.trace_id(), ids.span_id());
        if self.json
            && let Some(rest) = line.strip_prefix('{')
        {
            let comma = if rest.starts_with('}') { "" } else { "," };
            write!(writer, "{{\"trace_id\":\"{trace_id}\",\"span_id\":\"{span_id}\"{comma}{rest}")
        } else {
            let body = line.trim_end_matches('\n');
            writeln!(writer, "{body} trace_id={trace_id} span_id={span_id}")
        }
    }
}

/// The current span's trace context as a W3C `traceparent` value, to put in a message
/// that another process handles (a build job, an event); none outside a span.
pub fn traceparent() -> Option<String> {
    let mut carrier = std::collections::HashMap::new();
    TraceContextPropagator::new().inject_context(&tracing::Span::current().context(), &mut carrier);
    carrier.remove(TRACEPARENT)
}

/// Makes `span` a child of the trace `traceparent` names (a message's), when it names
/// one; call before the span is first entered.
pub fn follow(span: &tracing::Span, traceparent: Option<&str>) {
    let Some(value) = traceparent else { return };
    let carrier = std::collections::HashMap::from([(TRACEPARENT.to_string(), value.to_string())]);
    let parent = TraceContextPropagator::new().extract(&carrier);
    if parent.span().span_context().is_valid() {
        let _ = span.set_parent(parent);
    }
}

/// Puts `span`'s trace context in outgoing `headers`.
pub fn inject_from(span: &tracing::Span, headers: &mut http::HeaderMap) {
    TraceContextPropagator::new().inject_context(&span.context(), &mut opentelemetry_http::HeaderInjector(headers));
}

/// Makes `span` a child of the trace context incoming `headers` carry, if any (a
/// client's own, or the calling role's).
pub fn extract(span: &tracing::Span, headers: &http::HeaderMap) {
    let parent = TraceContextPropagator::new().extract(&opentelemetry_http::HeaderExtractor(headers));
    if parent.span().span_context().is_valid() {
        let _ = span.set_parent(parent);
    }
}

/// Bucket bounds of every histogram (all are durations in seconds): from a fast request
/// (1 ms) to a long build (30 min).
const SECONDS_BUCKETS: [f64; 16] =
    [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0, 300.0, 1800.0];

/// One Prometheus recorder per process: metrics are global in `metrics`.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            // Histograms with buckets rather than the recorder's default summaries: buckets
            // add up across replicas (histogram_quantile over the sum), quantiles do not.
            let recorder = match PrometheusBuilder::new().set_buckets(&SECONDS_BUCKETS) {
                Ok(builder) => builder.build_recorder(),
                Err(error) => {
                    tracing::warn!(%error, "histogram buckets refused; /metrics shows summaries");
                    PrometheusBuilder::new().build_recorder()
                }
            };
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics shows only this one's");
            }
            // Without its own HTTP listener the recorder keeps every histogram sample until
            // upkeep folds them in: memory grew ~12 MB a minute under load, unscraped.
            let upkeep = handle.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
                loop {
                    tick.tick().await;
                    upkeep.run_upkeep();
                }
            });
            handle
        })
        .clone()
}

/// The `/metrics` page of every role: Prometheus' text format.
pub async fn metrics_page() -> impl axum::response::IntoResponse {
    ([(http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], metrics_handle().render())
}
