//! OpenTelemetry traces (`[tracing]`): the request's `tracing` spans become OpenTelemetry
//! spans, batched and sent to a collector as OTLP protobuf over HTTP.
//!
//! Only spans reach the exporter, and only the gateway's own (`privgate` targets): log
//! events never become span events, so what a span carries is exactly the fields its
//! `info_span!` declares (ids, names, statuses; never a path, header, body, token or
//! subject). Exports run on a thread and a one-worker runtime of their own: a slow or
//! absent collector delays spans (the SDK drops what its queue cannot hold), never
//! requests.

use crate::config::TracingConfig;
use anyhow::Context;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_http::hyper::HyperClient;
use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{Protocol, SpanExporter, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracerProvider,
};
use opentelemetry_sdk::Resource;
use tracing::Subscriber;
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// The instrumentation scope the gateway's spans are reported under.
const SCOPE: &str = "privgate";

/// The trace exporter of a running process: flushes what is queued and stops when dropped
/// (at the end of `privgate serve`).
pub(crate) struct TraceExport {
    provider: SdkTracerProvider,
}

impl Drop for TraceExport {
    fn drop(&mut self) {
        if let Err(e) = self.provider.shutdown() {
            tracing::warn!(error = %e, "trace exporter did not shut down cleanly");
        }
    }
}

/// The subscriber layer that turns the gateway's spans into OpenTelemetry spans, and the
/// exporter behind it.
pub(crate) fn layer<S>(config: &TracingConfig) -> anyhow::Result<(impl Layer<S>, TraceExport)>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let exporter = SpanExporter::builder()
        .with_http()
        .with_http_client(ExportClient::new(config)?)
        .with_endpoint(config.endpoint.as_str())
        .with_protocol(Protocol::HttpBinary)
        .with_timeout(config.export_timeout)
        .build()
        .context("trace exporter")?;
    let batches = BatchConfigBuilder::default()
        .with_scheduled_delay(config.batch_delay)
        .build();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(
            BatchSpanProcessor::builder(exporter)
                .with_batch_config(batches)
                .build(),
        )
        // A trusted caller's decision stands; requests starting a trace here are sampled
        // at the configured ratio.
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            config.sample_ratio,
        ))))
        .with_resource(
            Resource::builder()
                .with_service_name(config.service_name.clone())
                .build(),
        )
        .build();
    // Source locations and thread names say nothing an operator needs and grow every span.
    let layer = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer(SCOPE))
        .with_location(false)
        .with_threads(false)
        .with_tracked_inactivity(false)
        .with_filter(filter_fn(|meta| {
            meta.is_span() && meta.target().starts_with(SCOPE)
        }));
    Ok((layer, TraceExport { provider }))
}

/// opentelemetry-http's hyper client, driven on a runtime of its own: the SDK exports from
/// its own thread, outside the gateway's runtime, and the client needs one.
#[derive(Debug)]
struct ExportClient {
    client: HyperClient<HttpsConnector<HttpConnector>>,
    runtime: tokio::runtime::Runtime,
}

impl ExportClient {
    fn new(config: &TracingConfig) -> anyhow::Result<Self> {
        let tls = match &config.ca {
            Some(ca) => crate::gateway::tls::collector_client_config(ca)?,
            None => crate::gateway::tls::trusts_no_server(),
        };
        let connector = crate::gateway::tls::http_or_https_connector(tls, config.export_timeout);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("privgate-traces")
            .enable_all()
            .build()
            .context("trace exporter runtime")?;
        Ok(Self {
            client: HyperClient::new(connector, config.export_timeout, None),
            runtime,
        })
    }
}

#[async_trait::async_trait]
impl HttpClient for ExportClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let client = self.client.clone();
        self.runtime
            .spawn(async move { client.send_bytes(request).await })
            .await?
    }
}
