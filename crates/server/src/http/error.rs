//! The one place where errors become HTTP: every refusal is a [`DomainError`] (its stable code
//! and class), the class decides the status, and the body is `{"error": {"code", "message"}}`.
//! Infrastructure failures are answered with a generic code so no internals leak; what really
//! happened travels in a response extension to [`log_failures`], which logs it, so rendering
//! an error never logs by itself.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use once_blob::BlobError;
use once_domain::{DomainError, ErrorClass};

use crate::service::ServiceError;

#[derive(Debug)]
pub struct ApiError(pub ServiceError);

impl<E: Into<ServiceError>> From<E> for ApiError {
    fn from(error: E) -> Self {
        ApiError(error.into())
    }
}

pub fn status_of(class: ErrorClass) -> StatusCode {
    match class {
        ErrorClass::BadInput => StatusCode::BAD_REQUEST,
        ErrorClass::Unauthenticated => StatusCode::UNAUTHORIZED,
        ErrorClass::Forbidden => StatusCode::FORBIDDEN,
        ErrorClass::NotFound => StatusCode::NOT_FOUND,
        ErrorClass::Conflict => StatusCode::CONFLICT,
        ErrorClass::Gone => StatusCode::GONE,
        ErrorClass::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorClass::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        ErrorClass::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        ErrorClass::RangeNotSatisfiable => StatusCode::RANGE_NOT_SATISFIABLE,
        ErrorClass::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorClass::InsufficientStorage => StatusCode::INSUFFICIENT_STORAGE,
        ErrorClass::NotAcceptable => StatusCode::NOT_ACCEPTABLE,
        ErrorClass::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl ApiError {
    /// What the client is told.
    pub fn refusal(&self) -> DomainError {
        match &self.0 {
            ServiceError::Rejected(error) => error.clone(),
            ServiceError::Meta(_) => DomainError::StoreUnavailable,
            ServiceError::Blob(BlobError::StorageFull) => DomainError::StorageFull,
            ServiceError::Blob(_) => DomainError::Internal,
        }
    }

    /// Status, code and message as the client sees them.
    pub fn parts(&self) -> (StatusCode, &'static str, String) {
        let refusal = self.refusal();
        (
            status_of(refusal.class()),
            refusal.code(),
            refusal.to_string(),
        )
    }
}

/// The failure behind a 5xx answer, for [`log_failures`].
#[derive(Clone, Debug)]
pub struct Failure {
    pub code: &'static str,
    pub detail: String,
}

/// The JSON answer for a refusal.
pub fn render(error: &DomainError) -> Response {
    let status = status_of(error.class());
    let body = once_api::ErrorBody {
        error: once_api::ErrorDetail {
            code: error.code().to_owned(),
            message: error.to_string(),
        },
    };
    let mut response = (status, Json(body)).into_response();
    let headers = response.headers_mut();
    match status {
        StatusCode::UNAUTHORIZED => {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"once\""),
            );
        }
        // A rate limit knows when the next request will pass.
        _ if let DomainError::RateLimited { retry_after_secs } = error => {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
        }
        // Worth retrying: say when.
        StatusCode::TOO_MANY_REQUESTS
        | StatusCode::SERVICE_UNAVAILABLE
        | StatusCode::INSUFFICIENT_STORAGE => {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("30"));
        }
        _ => {}
    }
    response
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let refusal = self.refusal();
        let mut response = render(&refusal);
        if response.status().is_server_error() {
            response.extensions_mut().insert(Failure {
                code: refusal.code(),
                detail: self.0.to_string(),
            });
        }
        response
    }
}

/// Middleware: logs the failure behind every 5xx answer, once.
pub async fn log_failures(response: Response) -> Response {
    if let Some(failure) = response.extensions().get::<Failure>() {
        tracing::error!(
            status = response.status().as_u16(),
            code = failure.code,
            error = %failure.detail,
            "request failed"
        );
    }
    response
}

pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_code_is_listed_in_the_api_docs_with_its_status() {
        let docs = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/api.md"));
        for error in DomainError::one_of_each() {
            let status = status_of(error.class()).as_u16();
            let listed = docs.lines().any(|line| {
                line.starts_with(&format!("| `{}` |", error.code()))
                    && line.contains(&format!("| {status} "))
            });
            assert!(
                listed,
                "docs/api.md has no row `{}` with {status}",
                error.code()
            );
        }
    }
}
