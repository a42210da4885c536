//! The server's own calls to the bucket: every one is signed by one helper (so a header is
//! written once, and sent exactly as signed), has a deadline, and turns a refusal into an
//! error that says what S3 said.

use std::time::Duration;

use reqwest::StatusCode;
use rusty_s3::{Method, S3Action};

use super::{CONTROL_URL_LIFETIME, S3BlobStore};
use crate::{BlobError, BlobResult};

pub(super) const SHORT_CALL: Duration = Duration::from_secs(30);
pub(super) const LISTING_CALL: Duration = Duration::from_secs(60);
/// Calls that carry up to a part of bytes, or make the bucket assemble an object.
pub(super) const LONG_CALL: Duration = Duration::from_secs(300);

pub(super) fn storage_error(what: impl std::fmt::Display) -> BlobError {
    BlobError::Storage(std::io::Error::other(what.to_string()))
}

fn reqwest_method(method: Method) -> reqwest::Method {
    match method {
        Method::Head => reqwest::Method::HEAD,
        Method::Get => reqwest::Method::GET,
        Method::Post => reqwest::Method::POST,
        Method::Put => reqwest::Method::PUT,
        Method::Delete => reqwest::Method::DELETE,
    }
}

impl S3BlobStore {
    /// A control call for `action`, signed with `headers`, which the request then carries
    /// exactly as signed (a header signed but not sent, or sent with another value, would fail
    /// the signature; one sent but not signed would not be covered by it).
    pub(super) fn signed<'a, A: S3Action<'a>>(
        &self,
        action: &mut A,
        headers: &[(&'static str, String)],
    ) -> reqwest::RequestBuilder {
        for (name, value) in headers {
            action.headers_mut().insert(*name, value.clone());
        }
        let url = action.sign(CONTROL_URL_LIFETIME);
        headers.iter().fold(
            self.http.request(reqwest_method(A::METHOD), url),
            |request, (name, value)| request.header(*name, value),
        )
    }

    /// A control call on the bucket itself with sub-resource query parameters rusty-s3 has
    /// no action for (`?versioning`, `?versions`, `?uploads`).
    pub(super) fn signed_bucket(
        &self,
        method: Method,
        query: &[(&str, &str)],
    ) -> reqwest::RequestBuilder {
        let url = rusty_s3::signing::sign(
            &jiff::Timestamp::now(),
            method,
            self.bucket.base_url().clone(),
            self.credentials.key(),
            self.credentials.secret(),
            self.credentials.token(),
            self.bucket.region(),
            CONTROL_URL_LIFETIME.as_secs(),
            query.iter().copied(),
            std::iter::empty(),
        );
        self.http.request(reqwest_method(method), url)
    }
}

/// The `<Code>` of an S3 error document, or the document's start when it has none.
pub(super) fn s3_error_code(body: &str) -> String {
    body.split_once("<Code>")
        .and_then(|(_, rest)| rest.split_once("</Code>"))
        .map(|(code, _)| code.to_owned())
        .unwrap_or_else(|| body.chars().take(200).collect())
}

/// Turns a non-success answer into an error that says what S3 said.
pub(super) async fn check(
    response: reqwest::Response,
    what: &str,
) -> BlobResult<reqwest::Response> {
    if response.status().is_success() {
        return Ok(response);
    }
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    let body: String = body.chars().take(500).collect();
    Err(storage_error(format!(
        "S3 {what} failed with {status}: {body}"
    )))
}

/// Sends a control call to the bucket with a deadline.
pub(super) async fn send(
    request: reqwest::RequestBuilder,
    timeout: Duration,
) -> BlobResult<reqwest::Response> {
    request.timeout(timeout).send().await.map_err(storage_error)
}

/// Sends a control call and insists on success.
pub(super) async fn call(
    request: reqwest::RequestBuilder,
    timeout: Duration,
    what: &str,
) -> BlobResult<reqwest::Response> {
    check(send(request, timeout).await?, what).await
}

/// Like [`call`], but "no such object or upload" (404) is `None`: deleting or aborting what is
/// already gone is not an error.
pub(super) async fn call_unless_missing(
    request: reqwest::RequestBuilder,
    timeout: Duration,
    what: &str,
) -> BlobResult<Option<reqwest::Response>> {
    let response = send(request, timeout).await?;
    if response.status() == StatusCode::NOT_FOUND {
        return Ok(None);
    }
    check(response, what).await.map(Some)
}

/// The text of an answer already checked (XML listings and results).
pub(super) async fn text_of(response: reqwest::Response) -> BlobResult<String> {
    response.text().await.map_err(storage_error)
}

/// [`call`], then the answer's body as text.
pub(super) async fn call_text(
    request: reqwest::RequestBuilder,
    timeout: Duration,
    what: &str,
) -> BlobResult<String> {
    text_of(call(request, timeout, what).await?).await
}

/// Like [`call_text`], but a store that does not implement the call (501) answers `None`.
pub(super) async fn call_text_if_implemented(
    request: reqwest::RequestBuilder,
    timeout: Duration,
    what: &str,
) -> BlobResult<Option<String>> {
    let response = send(request, timeout).await?;
    if response.status() == StatusCode::NOT_IMPLEMENTED {
        return Ok(None);
    }
    text_of(check(response, what).await?).await.map(Some)
}
