//! Signing in and out of the web pages. The sign-in form posts an API key once; the browser
//! gets a session cookie (`HttpOnly`, `SameSite=Strict`, `Secure` when the public URL is
//! HTTPS) and the key itself is kept nowhere a page script could read it.

use std::sync::Arc;

use axum::Form;
use axum::extract::State;
use axum::extract::rejection::FormRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::super::AppState;
use super::super::error::ApiError;
use super::super::forwarded::Origin;
use super::{Chrome, pages};

pub const COOKIE: &str = "once_session";
/// Scripts of our pages send the session's CSRF token in this header.
pub const CSRF_HEADER: &str = "x-once-csrf";

/// The session token in a `Cookie` header, if any.
pub fn cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .find_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name == COOKIE && !value.is_empty()).then_some(value)
        })
}

/// A request that states where it came from must come from one of our pages: a login form on
/// another site must not be able to sign a browser into the attacker's key.
fn same_origin(headers: &HeaderMap, base: &str) -> bool {
    if let Some(site) = headers.get("sec-fetch-site") {
        return matches!(site.as_bytes(), b"same-origin" | b"none");
    }
    match headers
        .get(header::ORIGIN)
        .and_then(|value| value.to_str().ok())
    {
        Some(origin) => origin == base,
        None => true,
    }
}

fn session_cookie(app: &AppState, origin: &Origin, value: &str, max_age: u64) -> HeaderValue {
    let secure = if app.secure_cookies(origin) {
        "; Secure"
    } else {
        ""
    };
    HeaderValue::from_str(&format!(
        "{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("once_session=; Path=/; Max-Age=0"))
}

fn see_home(cookie: HeaderValue) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    response
        .headers_mut()
        .insert(header::LOCATION, HeaderValue::from_static("/"));
    response.headers_mut().insert(header::SET_COOKIE, cookie);
    response
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
pub struct SignIn {
    /// An API key, `KEYID.SECRET`.
    #[serde(default)]
    key: String,
}

/// A form that is not one (another content type, a body that does not parse) is read as an
/// empty one, so it gets the answer an empty form gets instead of axum's plain-text refusal.
fn read_form<T: Default>(form: Result<Form<T>, FormRejection>) -> T {
    form.map(|Form(form)| form).unwrap_or_default()
}

/// The sign-in form: a key in, a session cookie out.
#[utoipa::path(
    post,
    path = once_api::routes::SESSION,
    tag = "session",
    request_body(content = SignIn, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "Signed in: the session cookie, and on to the send page",
            headers(
                ("set-cookie" = String, description = "`once_session=…; HttpOnly; SameSite=Strict`"),
                ("location" = String),
            )),
        (status = 401, description = "The sign-in page again: the key was refused",
            content(("text/html"))),
        (status = 403, description = "The sign-in page again: the form was posted from another \
            site", content(("text/html"))),
        (status = 413, description = "A form over 4 KiB (`too_large`)", body = once_api::ErrorBody),
        (status = 503, description = "The sign-in page again: the database is unavailable",
            content(("text/html"))),
    ),
)]
pub async fn sign_in(
    State(app): State<Arc<AppState>>,
    origin: Origin,
    headers: HeaderMap,
    form: Result<Form<SignIn>, FormRejection>,
) -> Response {
    let form = read_form(form);
    let chrome = Chrome::for_request(&app, &headers, None);
    if !same_origin(&headers, &app.base_url(&origin)) {
        return pages::sign_in_page(
            &chrome,
            StatusCode::FORBIDDEN,
            Some(chrome.t.signin_elsewhere),
        );
    }
    let now = once_domain::now();
    match app.service.open_session(&form.key, now).await {
        Ok((session, caller, expires_at)) => {
            tracing::info!(key = %caller.key_id.as_str(), "browser signed in");
            let max_age = (expires_at - now).whole_seconds().max(0) as u64;
            see_home(session_cookie(&app, &origin, &session, max_age))
        }
        Err(error) => {
            let error = ApiError::from(error);
            let status = error.parts().0;
            // Only a refused key is the visitor's to fix; anything else is the server's.
            let message = if status == StatusCode::UNAUTHORIZED || status == StatusCode::BAD_REQUEST
            {
                chrome.t.signin_failed
            } else {
                chrome.t.trouble_text
            };
            let status = if status == StatusCode::BAD_REQUEST {
                StatusCode::UNAUTHORIZED
            } else {
                status
            };
            pages::sign_in_page(&chrome, status, Some(message))
        }
    }
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
pub struct SignOut {
    /// The session's CSRF token (the page's settings block has it).
    #[serde(default)]
    csrf: String,
}

/// Ends the browser's session: the cookie is dropped. (The token itself stays valid until it
/// expires; it never left the browser's cookie jar, and revoking the key ends it at once.)
#[utoipa::path(
    post,
    path = once_api::routes::SESSION_END,
    tag = "session",
    request_body(content = SignOut, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "Signed out: the cookie is dropped",
            headers(("set-cookie" = String), ("location" = String))),
        (status = 403, description = "A page: the CSRF token is not the session's \
            (`csrf_rejected`)", content(("text/html"))),
        (status = 413, description = "A form over 4 KiB (`too_large`)", body = once_api::ErrorBody),
    ),
)]
pub async fn sign_out(
    State(app): State<Arc<AppState>>,
    origin: Origin,
    headers: HeaderMap,
    form: Result<Form<SignOut>, FormRejection>,
) -> Response {
    let form = read_form(form);
    if let Some(session) = cookie(&headers)
        && app.service.check_csrf(session, &form.csrf).is_err()
    {
        return pages::problem_for(
            &Chrome::for_request(&app, &headers, None),
            &ApiError::from(once_domain::DomainError::CsrfRejected),
        );
    }
    see_home(session_cookie(&app, &origin, "", 0))
}
