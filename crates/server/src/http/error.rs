//! The one place where errors become HTTP: status from the error class, a JSON body
//! `{"error": {"code", "message"}}` with the stable code. Infrastructure failures are logged
//! and answered with a generic 500/503 so no internals leak.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
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
    }
}

impl ApiError {
    /// Status, code and message as the client sees them.
    pub fn parts(&self) -> (StatusCode, &'static str, String) {
        match &self.0 {
            ServiceError::Rejected(error) => {
                (status_of(error.class()), error.code(), error.to_string())
            }
            ServiceError::Meta(error) => {
                tracing::error!(%error, "metadata store failure");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store_unavailable",
                    "the metadata store is unavailable, try again".into(),
                )
            }
            ServiceError::Blob(error) => {
                tracing::error!(%error, "blob store failure");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error".into(),
                )
            }
        }
    }

    pub fn domain(&self) -> Option<&DomainError> {
        match &self.0 {
            ServiceError::Rejected(error) => Some(error),
            _ => None,
        }
    }
}

pub fn json_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = once_api::ErrorBody {
        error: once_api::ErrorDetail {
            code: code.to_owned(),
            message: message.to_owned(),
        },
    };
    let mut response = (status, Json(body)).into_response();
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            axum::http::header::WWW_AUTHENTICATE,
            axum::http::HeaderValue::from_static("Bearer realm=\"once\""),
        );
    }
    response
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, message) = self.parts();
        json_error(status, code, &message)
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
