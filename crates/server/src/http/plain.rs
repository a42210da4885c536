//! The plain HTTP listener beside HTTPS (`http_bind`, port 80 with ACME): answers ACME HTTP-01
//! challenges and sends everything else to the same path over HTTPS with `308`, which keeps
//! the method and body, so no request is ever served in the clear.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::uri::Authority;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::acme::Challenges;

/// Where a redirect points.
#[derive(Debug, Clone)]
pub enum HttpsTarget {
    /// The origin of an `https://` public URL.
    Origin(String),
    /// The request's host, on this HTTPS port (left out when it is 443).
    RequestHost { port: u16 },
}

struct Plain {
    challenges: Challenges,
    target: HttpsTarget,
}

pub fn router(challenges: Challenges, target: HttpsTarget) -> Router {
    Router::new()
        .route("/.well-known/acme-challenge/{token}", get(challenge))
        .fallback(to_https)
        .with_state(Arc::new(Plain { challenges, target }))
}

async fn challenge(State(plain): State<Arc<Plain>>, Path(token): Path<String>) -> Response {
    match plain.challenges.answer(&token) {
        Some(key_authorization) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            )],
            key_authorization,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such ACME challenge\n").into_response(),
    }
}

async fn to_https(State(plain): State<Arc<Plain>>, headers: HeaderMap, uri: Uri) -> Response {
    let path = uri.path_and_query().map_or("/", |path| path.as_str());
    let origin = match &plain.target {
        HttpsTarget::Origin(origin) => origin.clone(),
        HttpsTarget::RequestHost { port } => {
            // Only a well-formed host goes into Location; the port the client used for plain
            // HTTP says nothing about the HTTPS one.
            let host = headers
                .get(header::HOST)
                .and_then(|value| value.to_str().ok())
                .and_then(|host| host.parse::<Authority>().ok())
                .filter(|authority| {
                    !authority.host().is_empty() && !authority.as_str().contains('@')
                });
            let Some(authority) = host else {
                return (StatusCode::BAD_REQUEST, "a Host header is needed\n").into_response();
            };
            match port {
                443 => format!("https://{}", authority.host()),
                port => format!("https://{}:{port}", authority.host()),
            }
        }
    };
    let Ok(location) = HeaderValue::try_from(format!("{origin}{path}")) else {
        return (StatusCode::BAD_REQUEST, "bad request target\n").into_response();
    };
    (
        StatusCode::PERMANENT_REDIRECT,
        [(header::LOCATION, location)],
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    async fn get(router: &Router, uri: &str, host: Option<&str>) -> Response {
        let mut request = Request::get(uri);
        if let Some(host) = host {
            request = request.header(header::HOST, host);
        }
        router
            .clone()
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn everything_but_a_challenge_is_sent_to_https_on_the_tls_port() {
        let router = router(
            Challenges::default(),
            HttpsTarget::RequestHost { port: 8443 },
        );
        let answer = get(&router, "/s/abc?x=1", Some("once.example.com:80")).await;
        assert_eq!(answer.status(), StatusCode::PERMANENT_REDIRECT);
        assert_eq!(
            answer.headers()[header::LOCATION],
            "https://once.example.com:8443/s/abc?x=1"
        );
        let router = self::router(
            Challenges::default(),
            HttpsTarget::RequestHost { port: 443 },
        );
        let answer = get(&router, "/", Some("[::1]")).await;
        assert_eq!(answer.headers()[header::LOCATION], "https://[::1]/");
    }

    #[tokio::test]
    async fn a_public_url_decides_the_redirect_and_a_missing_or_odd_host_is_refused() {
        let fixed = router(
            Challenges::default(),
            HttpsTarget::Origin("https://once.example.com".into()),
        );
        let answer = get(&fixed, "/r/x", Some("10.0.0.1")).await;
        assert_eq!(
            answer.headers()[header::LOCATION],
            "https://once.example.com/r/x"
        );
        let by_host = router(
            Challenges::default(),
            HttpsTarget::RequestHost { port: 443 },
        );
        assert_eq!(
            get(&by_host, "/", None).await.status(),
            StatusCode::BAD_REQUEST
        );
        let odd = get(&by_host, "/", Some("evil.example@once.example.com")).await;
        assert_eq!(odd.status(), StatusCode::BAD_REQUEST);
    }

    #[tokio::test]
    async fn a_challenge_is_answered_only_while_its_token_is_held() {
        let challenges = Challenges::default();
        challenges.insert("tok3n", "tok3n.thumbprint");
        let router = router(challenges.clone(), HttpsTarget::RequestHost { port: 443 });
        let answer = get(
            &router,
            "/.well-known/acme-challenge/tok3n",
            Some("a.example"),
        )
        .await;
        assert_eq!(answer.status(), StatusCode::OK);
        let body = axum::body::to_bytes(answer.into_body(), 1024)
            .await
            .unwrap();
        assert_eq!(&body[..], b"tok3n.thumbprint");
        challenges.remove(&["tok3n".to_owned()]);
        let answer = get(
            &router,
            "/.well-known/acme-challenge/tok3n",
            Some("a.example"),
        )
        .await;
        assert_eq!(answer.status(), StatusCode::NOT_FOUND);
    }
}
