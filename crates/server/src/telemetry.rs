//! Optional trace export: with `otlp_endpoint` set, the spans of each step (create, upload,
//! complete, claim, reap) go to an OpenTelemetry collector as OTLP over HTTP (JSON), batched
//! off the request path. Off by default: nothing here runs unless it is configured.

use std::time::Duration;

use anyhow::Context;
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use url::Url;

/// How long one export may take.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// The exporter's HTTP client: the server's own reqwest, run on the server's tokio runtime.
/// The SDK's batch processor exports from a thread of its own, where a reqwest future could
/// not run; spawning onto the runtime and awaiting the join handle works from any executor.
#[derive(Debug)]
struct RuntimeClient {
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for RuntimeClient {
    async fn send_bytes(
        &self,
        request: axum::http::Request<bytes::Bytes>,
    ) -> Result<axum::http::Response<bytes::Bytes>, opentelemetry_http::HttpError> {
        let request = reqwest::Request::try_from(request.map(reqwest::Body::from))?;
        let client = self.client.clone();
        let response = self
            .runtime
            .spawn(async move {
                let response = client.execute(request).await?;
                let status = response.status();
                let body = response.bytes().await?;
                Ok::<_, reqwest::Error>((status, body))
            })
            .await??;
        let (status, body) = response;
        Ok(axum::http::Response::builder().status(status).body(body)?)
    }
}

/// A tracer provider exporting to `endpoint` (the collector's `/v1/traces` URL), or an error
/// that names the setting.
pub fn tracer_provider(endpoint: &Url) -> anyhow::Result<SdkTracerProvider> {
    let client = reqwest::Client::builder()
        .timeout(EXPORT_TIMEOUT)
        .build()
        .context("cannot build the trace export client")?;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpJson)
        .with_endpoint(endpoint.as_str())
        .with_timeout(EXPORT_TIMEOUT)
        .with_http_client(RuntimeClient {
            client,
            runtime: tokio::runtime::Handle::current(),
        })
        .build()
        .context("otlp_endpoint: cannot set up the trace exporter")?;
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(Resource::builder().with_service_name("once").build())
        .build())
}
