//! The OpenAPI document of the HTTP API, served at `GET /api/v1/openapi.json` and committed as
//! `docs/openapi.json`. Paths come from the handlers' `#[utoipa::path]` (collected by the
//! routers' `routes!`), bodies from the wire types in `once-api`; here is what no handler can
//! say for itself: the refusals a group's middleware adds, how keys are presented, and the
//! stable error codes.

use std::sync::{Arc, OnceLock};

use axum::Extension;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use once_domain::DomainError;
use sha2::{Digest, Sha256};
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::{Components, Schema};
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::tag::TagBuilder;
use utoipa::openapi::{ContentBuilder, InfoBuilder, License, OpenApi, OpenApiBuilder, Ref, RefOr};
use utoipa_axum::router::OpenApiRouter;

/// The tags operations are grouped by, with what each is for.
const TAGS: &[(&str, &str)] = &[
    (
        "shares",
        "A key holder's shares: create, upload, complete, inspect, revoke",
    ),
    (
        "requests",
        "A key holder's upload requests (one-time upload URLs)",
    ),
    (
        "links",
        "Share links, claimed by whoever holds them (no key)",
    ),
    (
        "uploads",
        "Uploads to a request URL by whoever holds it (no key)",
    ),
    (
        "storage",
        "The embedded store's signed upload and download URLs",
    ),
    ("session", "Signing a browser in and out of the web pages"),
    ("service", "Health, readiness, metrics and this document"),
];

/// The document's frame: what the API is, how a key is presented, the tags.
pub fn base() -> OpenApi {
    let mut components = Components::new();
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("KEYID.SECRET")
                .description(Some(
                    "An API key, made on the server with `once keys create`.",
                ))
                .build(),
        ),
    );
    components.add_security_scheme(
        "signed",
        SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
            once_api::headers::KEY,
            "The key id, with `X-Once-Timestamp` and `X-Once-Signature` (HMAC-SHA256 of the \
             canonical request, see docs/api.md): the secret never travels.",
        ))),
    );
    components.add_security_scheme(
        "session",
        SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
            super::web::session::COOKIE,
            "A browser session from `POST /session`; anything but GET and HEAD also needs \
             the session's CSRF token in `X-Once-CSRF`.",
        ))),
    );
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("once")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "One-time file sharing on signed, expiring URLs. The HTTP API v1, \
                     described in full (authentication, uploads in parts, end-to-end \
                     encryption, every error code) in docs/api.md.",
                ))
                .license(Some(License::new("MIT")))
                .build(),
        )
        .components(Some(components))
        .tags(Some(
            TAGS.iter()
                .map(|(name, description)| {
                    TagBuilder::new()
                        .name(*name)
                        .description(Some(*description))
                        .build()
                })
                .collect::<Vec<_>>(),
        ))
        .build()
}

/// The last touches once every route is in: a `HEAD` that shares its handler with the `GET`
/// gets an operation id of its own (ids are unique in a document), and the error body's `code`
/// is one of the stable codes (from the domain's own list, so a new one is documented as it is
/// added).
pub fn finish(mut document: OpenApi) -> OpenApi {
    for item in document.paths.paths.values_mut() {
        let get = item.get.as_ref().and_then(|get| get.operation_id.clone());
        if let Some(head) = item.head.as_mut()
            && head.operation_id.is_some()
            && head.operation_id == get
        {
            head.operation_id = get.map(|id| format!("{id}_head"));
        }
    }
    let mut codes: Vec<&'static str> = DomainError::one_of_each()
        .iter()
        .map(DomainError::code)
        .collect();
    codes.sort_unstable();
    codes.dedup();
    let code = document
        .components
        .as_mut()
        .and_then(|components| components.schemas.get_mut("ErrorDetail"))
        .and_then(|detail| match detail {
            RefOr::T(Schema::Object(detail)) => detail.properties.get_mut("code"),
            _ => None,
        });
    if let Some(RefOr::T(Schema::Object(code))) = code {
        code.enum_values = Some(codes.into_iter().map(Into::into).collect());
        code.description =
            Some("A stable code; the table in docs/api.md says when each is given.".into());
    }
    document
}

/// A refusal that middleware adds to every route of a group.
struct Refusal {
    status: u16,
    description: &'static str,
    /// A person at a browser gets a page instead of the JSON body.
    page_too: bool,
}

/// The operations of a path, one slot per method, always in the same order.
fn slots(item: &mut PathItem) -> [&mut Option<Operation>; 8] {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.head,
        &mut item.patch,
        &mut item.options,
        &mut item.trace,
    ]
}

/// Every operation of a path, whatever its method.
fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    slots(item).into_iter().flatten()
}

/// A path that is another with a name after it (`/s/{id}/{filename}`, `/r/{id}/{filename}`)
/// answers as that one does: each of its operations gets the other's body and responses, so
/// the two are written once and cannot drift apart.
pub fn answers_like<S>(mut router: OpenApiRouter<S>, path: &str, like: &str) -> OpenApiRouter<S>
where
    S: Send + Sync + Clone + 'static,
{
    let paths = &mut router.get_openapi_mut().paths.paths;
    let Some(mut model) = paths.get(like).cloned() else {
        panic!("{like} is not in the document");
    };
    let Some(item) = paths.get_mut(path) else {
        panic!("{path} is not in the document");
    };
    for (slot, model) in slots(item).into_iter().zip(slots(&mut model)) {
        if let (Some(operation), Some(model)) = (slot, model) {
            operation.request_body = model.request_body.clone();
            operation.responses = model.responses.clone();
        }
    }
    router
}

fn error_body() -> RefOr<Schema> {
    Ref::from_schema_name("ErrorBody").into()
}

/// Adds `refusals` to every operation of `router` that does not describe that status itself.
fn also_refuses<S>(mut router: OpenApiRouter<S>, refusals: &[Refusal]) -> OpenApiRouter<S>
where
    S: Send + Sync + Clone + 'static,
{
    for item in router.get_openapi_mut().paths.paths.values_mut() {
        for operation in operations(item) {
            for refusal in refusals {
                let mut response = ResponseBuilder::new()
                    .description(refusal.description)
                    .content(
                        "application/json",
                        ContentBuilder::new().schema(Some(error_body())).build(),
                    );
                if refusal.page_too {
                    response = response.content("text/html", ContentBuilder::new().build());
                }
                operation
                    .responses
                    .responses
                    .entry(refusal.status.to_string())
                    .or_insert_with(|| response.build().into());
            }
        }
    }
    router
}

/// The `/api/v1/…` group behind `auth::require_key`: a key (or a browser session) on every
/// operation, and the refusals of the key check, its rate and its body limit.
pub fn requires_key<S>(mut router: OpenApiRouter<S>) -> OpenApiRouter<S>
where
    S: Send + Sync + Clone + 'static,
{
    let schemes = ["bearer", "signed", "session"]
        .map(|scheme| SecurityRequirement::new(scheme, Vec::<String>::new()));
    for item in router.get_openapi_mut().paths.paths.values_mut() {
        for operation in operations(item) {
            operation.security = Some(schemes.to_vec());
        }
    }
    also_refuses(
        router,
        &[
            Refusal {
                status: 401,
                description: "No key, a wrong or revoked key, a bad or replayed signature, \
                              or a session that is no longer valid",
                page_too: false,
            },
            Refusal {
                status: 403,
                description: "A browser session without its CSRF token (`csrf_rejected`)",
                page_too: false,
            },
            Refusal {
                status: 413,
                description: "A body over `api_body_limit` (`too_large`)",
                page_too: false,
            },
            Refusal {
                status: 429,
                description: "Over the key's request rate (`rate_limited`); see Retry-After",
                page_too: false,
            },
            Refusal {
                status: 503,
                description: "The database is unavailable (`store_unavailable`); retry",
                page_too: false,
            },
        ],
    )
}

/// The group behind `limits::per_address`: share links, request URLs and the sign-in form.
pub fn rate_limited_per_address<S>(router: OpenApiRouter<S>) -> OpenApiRouter<S>
where
    S: Send + Sync + Clone + 'static,
{
    also_refuses(
        router,
        &[
            Refusal {
                status: 429,
                description: "Over the client address's request rate (`rate_limited`); see \
                              Retry-After",
                page_too: true,
            },
            Refusal {
                status: 503,
                description: "The database is unavailable (`store_unavailable`); retry",
                page_too: true,
            },
        ],
    )
}

/// The query of a URL this server signed (`/b/…`), for the handlers' `params(…)`.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[expect(
    dead_code,
    reason = "it only describes the parameters; the handlers read the query"
)]
pub struct SignedQuery {
    /// Unix seconds the URL is valid until.
    expires: i64,
    /// Random, so no two signed URLs are alike.
    nonce: String,
    /// The server's signature of the URL.
    sig: String,
}

/// The checksum an upload may announce, for the handlers' `params(…)`.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
#[expect(
    dead_code,
    reason = "it only describes the header; `incoming` reads it"
)]
pub struct AnnouncedSha256 {
    /// The body's SHA-256 (hex): the upload is refused if the bytes do not match.
    #[param(rename = "x-once-content-sha256")]
    content_sha256: Option<String>,
}

/// The document as served: its JSON and its tag, made once when the router is built.
struct Document {
    json: String,
    etag: HeaderValue,
}

/// The document handed to [`serve`], published once the routers collected every path.
#[derive(Clone, Default)]
pub struct Served(Arc<OnceLock<Document>>);

impl Served {
    pub fn publish(&self, document: OpenApi) {
        let mut json = document
            .to_pretty_json()
            .expect("the document is plain JSON");
        json.push('\n');
        let digest = hex::encode(Sha256::digest(json.as_bytes()));
        let etag = HeaderValue::from_str(&format!("\"{}\"", &digest[..32]))
            .expect("hex is a valid header value");
        // Built once per router; a second router (tests) brings the same document.
        let _ = self.0.set(Document { json, etag });
    }
}

/// Whether `If-None-Match` names `etag` (or is `*`); weak tags compare like strong ones.
fn matches(if_none_match: &str, etag: &HeaderValue) -> bool {
    if_none_match.split(',').map(str::trim).any(|tag| {
        tag == "*" || tag.strip_prefix("W/").unwrap_or(tag).as_bytes() == etag.as_bytes()
    })
}

/// `GET /api/v1/openapi.json`: this document, with an `ETag`; `304` when it is unchanged.
#[utoipa::path(
    get,
    path = once_api::routes::OPENAPI,
    tag = "service",
    operation_id = "openapi",
    params(
        ("if-none-match" = Option<String>, Header, description = "The ETag of a copy you hold: \
            answered 304 if it is still current"),
    ),
    responses(
        (status = 200, description = "This document (OpenAPI 3.1)", body = serde_json::Value,
            content_type = "application/json",
            headers(("etag" = String, description = "Changes with the document"))),
        (status = 304, description = "The copy named in If-None-Match is current",
            headers(("etag" = String))),
    ),
)]
pub async fn serve(Extension(served): Extension<Served>, headers: HeaderMap) -> Response {
    let Some(document) = served.0.get() else {
        return super::error::render(&DomainError::Internal);
    };
    let unchanged = super::header_text(&headers, header::IF_NONE_MATCH)
        .is_some_and(|tags| matches(tags, &document.etag));
    let mut response = if unchanged {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(header::CONTENT_TYPE, "application/json")],
            document.json.clone(),
        )
            .into_response()
    };
    let headers = response.headers_mut();
    headers.insert(header::ETAG, document.etag.clone());
    // Unlike every other answer, this one may be kept, as long as it is checked first.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The source files of `src/http`, with their paths relative to it.
    fn http_sources() -> Vec<(String, String)> {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/http");
        let mut files = Vec::new();
        let mut folders = vec![root.clone()];
        while let Some(folder) = folders.pop() {
            for entry in std::fs::read_dir(&folder).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    folders.push(path);
                } else if path.extension().is_some_and(|extension| extension == "rs") {
                    let name = path.strip_prefix(&root).unwrap().display().to_string();
                    files.push((name, std::fs::read_to_string(&path).unwrap()));
                }
            }
        }
        files.sort();
        files
    }

    #[test]
    fn every_route_but_the_web_pages_and_the_plain_listener_is_in_the_document() {
        // The web pages and their assets (HTML and scripts, no API) and the plain-HTTP
        // listener beside HTTPS (ACME challenges and redirects) are the only routes allowed
        // past `routes!`; anything else would be served without being documented.
        let allowed = ["web/mod.rs", "plain.rs"];
        let sources = http_sources();
        assert!(sources.iter().any(|(name, _)| name == "mod.rs"));
        for (name, source) in &sources {
            if allowed.contains(&name.as_str()) {
                continue;
            }
            // What serves requests: neither comments nor the tests' own routers.
            let code: String = source
                .split("#[cfg(test)]")
                .next()
                .unwrap_or_default()
                .lines()
                .filter(|line| !line.trim_start().starts_with("//"))
                .collect();
            for needle in [".route(", "Router::new(", ".route_service(", ".nest("] {
                assert!(
                    !code.contains(needle),
                    "src/http/{name} adds a route with `{needle}`, which the OpenAPI document \
                     never sees: use `.routes(routes!(handler))` with a `#[utoipa::path]`"
                );
            }
        }
    }

    #[test]
    fn if_none_match_is_answered_for_the_current_tag_only() {
        let etag = HeaderValue::from_static("\"abc\"");
        assert!(matches("\"abc\"", &etag));
        assert!(matches("W/\"abc\"", &etag));
        assert!(matches("\"old\", \"abc\"", &etag));
        assert!(matches("*", &etag));
        assert!(!matches("\"old\"", &etag));
        assert!(!matches("abc", &etag));
    }
}
