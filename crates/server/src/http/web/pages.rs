//! The pages themselves: one askama template each (`crates/server/templates/`), filled from
//! domain values by the functions here. Templates escape every value; nothing here builds
//! HTML by hand.

use crate::http::forwarded::Origin;
use std::sync::Arc;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use once_domain::{Availability, DomainError, Share, ShareState, UploadRequest};
use serde::Deserialize;

use super::super::AppState;
use super::super::error::ApiError;
use super::strings::fill;
use super::{Chrome, human_size, respond, session, utc_text};
use crate::service::Caller;

/// What the cookie of a request says.
enum Visitor {
    Anonymous,
    /// It had a session that is no longer good (expired, or its key revoked).
    SessionEnded,
    SignedIn {
        session: String,
        caller: Caller,
    },
}

async fn visitor(app: &AppState, headers: &HeaderMap) -> Visitor {
    let Some(token) = session::cookie(headers) else {
        return Visitor::Anonymous;
    };
    match app
        .service
        .authenticate_session(token, once_domain::now())
        .await
    {
        Ok(caller) => Visitor::SignedIn {
            session: token.to_owned(),
            caller,
        },
        Err(_) => Visitor::SessionEnded,
    }
}

fn rfc3339(instant: once_domain::Instant) -> String {
    super::super::rfc3339(instant)
}

// ---- sign in and send ------------------------------------------------------------------

#[derive(Template)]
#[template(path = "signin.html")]
struct SignInPage<'a> {
    chrome: &'a Chrome,
    message: Option<&'a str>,
}

pub fn sign_in_page(chrome: &Chrome, status: StatusCode, message: Option<&str>) -> Response {
    super::page_response(status, SignInPage { chrome, message }.render(), None)
}

struct ExpiryPreset {
    seconds: u64,
    label: &'static str,
    checked: bool,
}

#[derive(Template)]
#[template(path = "send.html")]
struct SendPage<'a> {
    chrome: &'a Chrome,
    max_size: u64,
    max_downloads: u32,
    presets: Vec<ExpiryPreset>,
    max_hours: u64,
    custom_hours: u64,
}

/// The expiry choices the server allows, the server's default (or the longest choice below
/// it) already chosen.
fn expiry_presets(chrome: &Chrome, policy: &once_domain::SharePolicy) -> Vec<ExpiryPreset> {
    let t = chrome.t;
    let longest = policy.max_expires_in.as_secs();
    let default = policy.default_expires_in.as_secs().min(longest);
    let mut presets: Vec<ExpiryPreset> = [
        (3600, t.expiry_hour),
        (86_400, t.expiry_day),
        (604_800, t.expiry_week),
        (2_592_000, t.expiry_month),
    ]
    .into_iter()
    .filter(|&(seconds, _)| seconds <= longest)
    .map(|(seconds, label)| ExpiryPreset {
        seconds,
        label,
        checked: false,
    })
    .collect();
    if let Some(chosen) = presets
        .iter_mut()
        .rev()
        .find(|preset| preset.seconds <= default.max(3600))
    {
        chosen.checked = true;
    }
    presets
}

/// `/`: the send page for a signed-in browser, the sign-in form for everyone else.
pub async fn home(State(app): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    match visitor(&app, &headers).await {
        Visitor::SignedIn { session, .. } => {
            let chrome = Chrome::for_request(&app, &headers, Some(&session));
            let policy = app.service.share_policy();
            let max_hours = (policy.max_expires_in.as_secs() / 3600).max(1);
            let page = SendPage {
                chrome: &chrome,
                max_size: policy.max_size,
                max_downloads: policy.max_downloads_limit,
                presets: expiry_presets(&chrome, policy),
                max_hours,
                custom_hours: (policy.default_expires_in.as_secs() / 3600).clamp(1, max_hours),
            };
            respond(&app, StatusCode::OK, page.render())
        }
        Visitor::SessionEnded => {
            let chrome = Chrome::for_request(&app, &headers, None);
            let mut response = sign_in_page(&chrome, StatusCode::OK, Some(chrome.t.signin_ended));
            response.headers_mut().insert(
                header::SET_COOKIE,
                HeaderValue::from_static("once_session=; Path=/; Max-Age=0"),
            );
            response
        }
        Visitor::Anonymous => {
            let chrome = Chrome::for_request(&app, &headers, None);
            sign_in_page(&chrome, StatusCode::OK, None)
        }
    }
}

// ---- my shares -------------------------------------------------------------------------

struct ShareRow {
    id: String,
    url: String,
    name: String,
    state: &'static str,
    state_label: &'static str,
    downloads_left: u32,
    expires_at: String,
    expires_text: String,
    previews: u64,
    attempts: u64,
    revocable: bool,
}

struct RequestRow {
    id: String,
    url: String,
    name: String,
    state_label: &'static str,
    expires_at: String,
    expires_text: String,
    share_url: Option<String>,
}

#[derive(Template)]
#[template(path = "shares.html")]
struct SharesPage<'a> {
    chrome: &'a Chrome,
    shares: Vec<ShareRow>,
    requests: Vec<RequestRow>,
    next: Option<String>,
    default_request_mib: u64,
}

#[derive(Deserialize)]
pub struct SharesQuery {
    after: Option<String>,
}

const SHARES_PER_PAGE: u32 = 50;

fn state_of(share: &Share, now: once_domain::Instant) -> &'static str {
    match share.state {
        ShareState::Gone => "gone",
        _ => match share.availability(now) {
            Availability::AwaitingUpload => "uploading",
            Availability::Available => "active",
            Availability::Consumed => "used",
            Availability::Expired => "expired",
            Availability::Revoked => "revoked",
        },
    }
}

fn state_label(chrome: &Chrome, state: &str) -> &'static str {
    let t = chrome.t;
    match state {
        "uploading" => t.state_uploading,
        "active" => t.state_active,
        "used" => t.state_used,
        "expired" => t.state_expired,
        "revoked" => t.state_revoked,
        "open" => t.state_open,
        "fulfilled" => t.state_fulfilled,
        _ => t.state_gone,
    }
}

/// `/shares`: the signed-in key's shares (newest first, paged) and upload requests.
pub async fn shares(
    State(app): State<Arc<AppState>>,
    origin: Origin,
    headers: HeaderMap,
    query: Result<Query<SharesQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Visitor::SignedIn { session, caller } = visitor(&app, &headers).await else {
        return see_other("/");
    };
    let chrome = Chrome::for_request(&app, &headers, Some(&session));
    let after = match query
        .ok()
        .and_then(|Query(query)| query.after)
        .map(|cursor| super::super::api::parse_cursor(&cursor))
        .transpose()
    {
        Ok(after) => after,
        Err(error) => return problem_for(&chrome, &ApiError::from(error)),
    };
    let base = app.base_url(&origin);
    let now = once_domain::now();
    let listed = match app
        .service
        .list_shares(&caller, after, SHARES_PER_PAGE)
        .await
    {
        Ok(listed) => listed,
        Err(error) => return problem_for(&chrome, &ApiError::from(error)),
    };
    let next = (listed.len() == SHARES_PER_PAGE as usize)
        .then(|| listed.last())
        .flatten()
        .map(super::super::views::next_cursor);
    let shares = listed
        .iter()
        .map(|share| {
            let state = state_of(share, now);
            ShareRow {
                id: share.id.as_str().to_owned(),
                url: super::super::views::share_link(&base, share),
                name: share.filename.as_str().to_owned(),
                state,
                state_label: state_label(&chrome, state),
                downloads_left: share.downloads_left,
                expires_at: rfc3339(share.expires_at),
                expires_text: utc_text(share.expires_at),
                previews: u64::from(share.preview_hits),
                attempts: u64::from(share.upload_attempts),
                revocable: matches!(state, "active" | "uploading"),
            }
        })
        .collect();
    let requests = match app.service.list_requests(&caller).await {
        Ok(requests) => requests,
        Err(error) => return problem_for(&chrome, &ApiError::from(error)),
    };
    let requests = requests
        .iter()
        .map(|(request, share)| {
            let state = super::super::views::request_state(request, now);
            RequestRow {
                id: request.id.as_str().to_owned(),
                url: super::super::views::request_link(&base, request),
                name: request
                    .filename
                    .as_ref()
                    .map(|name| name.as_str().to_owned())
                    .unwrap_or_else(|| chrome.t.request_any_name.to_owned()),
                state_label: state_label(&chrome, state),
                expires_at: rfc3339(request.expires_at),
                expires_text: utc_text(request.expires_at),
                share_url: share
                    .as_ref()
                    .map(|share| super::super::views::share_link(&base, share)),
            }
        })
        .collect();
    let page = SharesPage {
        chrome: &chrome,
        shares,
        requests,
        next,
        default_request_mib: (app.service.share_policy().max_size / (1024 * 1024)).clamp(1, 1024),
    };
    respond(&app, StatusCode::OK, page.render())
}

fn see_other(location: &'static str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    response
        .headers_mut()
        .insert(header::LOCATION, HeaderValue::from_static(location));
    response
}

// ---- a share's landing page ----------------------------------------------------------

struct ListingEntry {
    path: String,
    size: Option<String>,
}

struct Listing {
    heading: String,
    entries: Vec<ListingEntry>,
    more: Option<String>,
}

#[derive(Template)]
#[template(path = "landing.html")]
struct LandingPage<'a> {
    chrome: &'a Chrome,
    name: String,
    size: String,
    left: String,
    expires_label: &'a str,
    expires_at: String,
    expires_text: String,
    note: Option<String>,
    listing: Option<Listing>,
    explain: &'a str,
    /// For an end-to-end encrypted share: where the page's script fetches the seal (marked
    /// on the claim form as `data-seal-url`, with `data-encrypted="true"`).
    seal_url: Option<String>,
}

/// Entries shown on the landing page of an archive; the owner's view has the stored listing.
const LANDING_ENTRIES: usize = 20;

fn listing(chrome: &Chrome, share: &Share) -> Option<Listing> {
    let contents = super::super::views::contents(share)?;
    let entries = contents
        .listing
        .iter()
        .take(LANDING_ENTRIES)
        .map(|entry| ListingEntry {
            path: entry.path.clone(),
            size: (!entry.path.ends_with('/')).then(|| human_size(entry.size)),
        })
        .collect::<Vec<_>>();
    let more = contents.entries.saturating_sub(entries.len() as u64);
    Some(Listing {
        heading: fill(
            chrome.t.archive_of,
            &[
                ("n", &contents.entries.to_string()),
                ("size", &human_size(contents.total_size)),
            ],
        ),
        entries,
        more: (more > 0).then(|| fill(chrome.t.and_more, &[("n", &more.to_string())])),
    })
}

pub async fn landing(app: &AppState, headers: &HeaderMap, share: &Share) -> Response {
    let chrome = Chrome::for_request(app, headers, None);
    let t = chrome.t;
    let left = if share.downloads_left == 1 {
        t.landing_left_one.to_owned()
    } else {
        fill(
            t.landing_left_many,
            &[("n", &share.downloads_left.to_string())],
        )
    };
    let (expires_label, _) = t.landing_expires.split_once("{time}").unwrap_or(("", ""));
    let page = LandingPage {
        chrome: &chrome,
        name: share.filename.as_str().to_owned(),
        size: share
            .size
            .map(human_size)
            .unwrap_or_else(|| t.unknown_size.to_owned()),
        left,
        expires_label: expires_label.trim_end(),
        expires_at: rfc3339(share.expires_at),
        expires_text: utc_text(share.expires_at),
        note: share.note.as_ref().map(|note| note.as_str().to_owned()),
        listing: listing(&chrome, share),
        explain: if share.downloads_left == 1 {
            t.landing_explain_one
        } else {
            t.landing_explain_many
        },
        seal_url: share
            .encryption
            .is_some()
            .then(|| once_api::routes::share_seal(share.id.as_str())),
    };
    respond(app, StatusCode::OK, page.render())
}

#[derive(Template)]
#[template(path = "preview.html")]
struct PreviewPage<'a> {
    chrome: &'a Chrome,
}

/// What chat apps and mail scanners get: a generic card. The file name stays out of it so a
/// preview does not leak what was sent to the chat provider.
pub fn preview(app: &AppState, headers: &HeaderMap) -> Response {
    let chrome = Chrome::for_request(app, headers, None);
    respond(
        app,
        StatusCode::OK,
        PreviewPage { chrome: &chrome }.render(),
    )
}

// ---- problems --------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "problem.html")]
struct ProblemPage<'a> {
    chrome: &'a Chrome,
    title: &'a str,
    text: &'a str,
    next_step: &'a str,
    reference: String,
}

/// A page that says, in plain words, why a link does not work and what to do next. The
/// error code is there for whoever runs the server, below the text that matters.
pub fn problem_for(chrome: &Chrome, error: &ApiError) -> Response {
    let t = chrome.t;
    let (status, code, _) = error.parts();
    let (title, text, next_step) = match error.refusal() {
        DomainError::ShareConsumed => (t.used_title, t.used_text, t.ask_sender),
        DomainError::ShareExpired => (t.expired_title, t.expired_text, t.ask_sender),
        DomainError::ShareRevoked => (t.revoked_title, t.revoked_text, t.ask_sender),
        DomainError::ShareNotFound | DomainError::InvalidId => {
            (t.unknown_title, t.unknown_text, t.ask_sender)
        }
        DomainError::ShareNotReady => (t.not_ready_title, t.not_ready_text, t.try_again),
        DomainError::SlotUsed => (t.request_used_title, t.request_used_text, t.ask_requester),
        DomainError::RequestExpired => (
            t.request_expired_title,
            t.request_expired_text,
            t.ask_requester,
        ),
        DomainError::RequestNotFound => (t.unknown_title, t.unknown_text, t.ask_requester),
        DomainError::RouteNotFound | DomainError::NotFound | DomainError::MethodNotAllowed => {
            (t.page_missing_title, t.page_missing_text, t.go_home)
        }
        DomainError::UrlExpired | DomainError::BadUrlSignature | DomainError::UploadExpired => {
            (t.link_expired_title, t.link_expired_text, t.try_again)
        }
        _ => (t.trouble_title, t.trouble_text, t.try_again),
    };
    let page = ProblemPage {
        chrome,
        title,
        text,
        next_step,
        reference: fill(t.reference, &[("code", code)]),
    };
    super::page_response(status, page.render(), None)
}

pub fn problem(app: &AppState, headers: &HeaderMap, error: &ApiError) -> Response {
    problem_for(&Chrome::for_request(app, headers, None), error)
}

// ---- a request's upload page -----------------------------------------------------------

#[derive(Template)]
#[template(path = "request.html")]
struct RequestPage<'a> {
    chrome: &'a Chrome,
    heading: String,
    note: Option<String>,
    limit_prefix: String,
    expires_at: String,
    expires_text: String,
    fixed_line: Option<String>,
    fixed_name: String,
    max_size: u64,
    uploads_url: &'a str,
    request_id: &'a str,
}

/// The upload page of a request. `uploads_url` starts an upload.
pub fn upload_page(
    app: &AppState,
    headers: &HeaderMap,
    request: &UploadRequest,
    uploads_url: &str,
) -> Response {
    let chrome = Chrome::for_request(app, headers, None);
    let t = chrome.t;
    let fixed_name = request
        .filename
        .as_ref()
        .map(|name| name.as_str().to_owned())
        .unwrap_or_default();
    let limit = fill(
        t.request_limit,
        &[("size", &human_size(request.max_size)), ("time", "")],
    );
    let page = RequestPage {
        chrome: &chrome,
        heading: match &request.requester {
            Some(name) => fill(t.request_from, &[("from", name.as_str())]),
            None => t.request_someone.to_owned(),
        },
        note: request.note.as_ref().map(|note| note.as_str().to_owned()),
        limit_prefix: limit.trim_end().to_owned(),
        expires_at: rfc3339(request.expires_at),
        expires_text: utc_text(request.expires_at),
        fixed_line: (!fixed_name.is_empty())
            .then(|| fill(t.request_fixed_name, &[("name", &fixed_name)])),
        fixed_name,
        max_size: request.max_size,
        uploads_url,
        request_id: request.id.as_str(),
    };
    respond(app, StatusCode::OK, page.render())
}

/// Unknown paths: a page for people, JSON for programs.
pub async fn not_found(State(app): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let accept = super::super::header_text(&headers, header::ACCEPT).unwrap_or_default();
    if once_domain::preview::wants_html(accept) {
        problem(&app, &headers, &ApiError::from(DomainError::RouteNotFound))
    } else {
        super::super::error::render(&DomainError::RouteNotFound)
    }
}
