//! The few HTML pages `once` serves: home, the landing page of a share, the metadata-only page
//! for link previewers, the upload page of an upload request, and error pages. Every dynamic
//! value is HTML-escaped; every page forbids framing and sends no referrer (the URL is a secret).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use html_escape::encode_text as text;
use once_domain::{Share, UploadRequest};

use super::error::ApiError;
use super::rfc3339;

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;color:#222}\
h1{font-size:1.4rem;word-break:break-word}.meta{color:#555}button{font-size:1.1rem;padding:.6rem 1.4rem;cursor:pointer}\
.note{color:#666;font-size:.9rem}progress{width:100%}";

fn page(status: StatusCode, title: &str, head_extra: &str, body: &str) -> Response {
    let document = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <meta name=\"robots\" content=\"noindex,nofollow\">\
         <title>{}</title>{head_extra}<style>{STYLE}</style></head><body>{body}</body></html>\n",
        text(title)
    );
    let mut response = (status, Html(document)).into_response();
    let headers = response.headers_mut();
    // Referrer-Policy, nosniff and Cache-Control come from the router's security_headers.
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; connect-src 'self'; frame-ancestors 'none'",
        ),
    );
    response
}

/// Sizes for people: 1.5 MiB rather than 1572864.
pub fn human_size(bytes: u64) -> String {
    bytesize::ByteSize::b(bytes).display().iec().to_string()
}

pub async fn home() -> Response {
    page(
        StatusCode::OK,
        "once",
        "",
        "<h1>once</h1><p>Self-hosted one-time file sharing. Links made here work for one download \
         (or a few), then the file is gone.</p><p class=\"note\">Use the <code>once</code> command \
         line or the HTTP API to share a file; see the project documentation.</p>",
    )
}

pub fn landing(share: &Share) -> Response {
    let size = share
        .size
        .map(human_size)
        .unwrap_or_else(|| "unknown size".into());
    let remaining = if share.downloads_left == 1 {
        "This link works for <strong>one</strong> download.".to_owned()
    } else {
        format!(
            "This link works for {} more downloads.",
            share.downloads_left
        )
    };
    let contents = archive_listing(share);
    let body = format!(
        "<h1>{name}</h1><p class=\"meta\">{size} · expires {expires}</p>{contents}<p>{remaining} \
         Downloading uses it up; nothing has been used yet.</p>\
         <form method=\"post\"><button type=\"submit\" id=\"download\">Download</button></form>\
         <p class=\"note\">If the download breaks, the same link can resume it for a few minutes.</p>",
        name = text(share.filename.as_str()),
        expires = text(&rfc3339(share.expires_at)),
    );
    page(StatusCode::OK, share.filename.as_str(), "", &body)
}

/// Entries shown on the landing page of an archive; the owner's view has the stored listing.
const LANDING_ENTRIES: usize = 20;

/// "An archive of N files (size)" and its first entries, for an archive share.
fn archive_listing(share: &Share) -> String {
    let Some(contents) = super::views::contents(share) else {
        return String::new();
    };
    let items: String = contents
        .listing
        .iter()
        .take(LANDING_ENTRIES)
        .map(|entry| {
            if entry.path.ends_with('/') {
                format!("<li>{}</li>", text(&entry.path))
            } else {
                format!(
                    "<li>{} <span class=\"meta\">{}</span></li>",
                    text(&entry.path),
                    human_size(entry.size)
                )
            }
        })
        .collect();
    let more = contents
        .entries
        .saturating_sub(LANDING_ENTRIES.min(contents.listing.len()) as u64);
    let more = if more > 0 {
        format!("<p class=\"note\">… and {more} more</p>")
    } else {
        String::new()
    };
    format!(
        "<p>A ZIP archive of {} entries ({} of files):</p><ul id=\"contents\">{items}</ul>{more}",
        contents.entries,
        human_size(contents.total_size)
    )
}

/// What chat apps and mail scanners get: a generic card. The file name stays out of it so a
/// preview does not leak what was sent to the chat provider.
pub fn preview(_share: &Share) -> Response {
    let head = "<meta property=\"og:type\" content=\"website\">\
        <meta property=\"og:site_name\" content=\"once\">\
        <meta property=\"og:title\" content=\"A file was shared with you\">\
        <meta property=\"og:description\" content=\"One-time download link. Open it in a browser to see the file; previews do not use it up.\">\
        <meta name=\"twitter:card\" content=\"summary\">";
    page(
        StatusCode::OK,
        "A file was shared with you",
        head,
        "<h1>A file was shared with you</h1><p>Open this link in a browser to download it.</p>",
    )
}

pub fn problem(error: &ApiError) -> Response {
    let (status, code, message) = error.parts();
    let title = match status {
        StatusCode::GONE => "This link has been used up",
        StatusCode::NOT_FOUND => "Nothing here",
        StatusCode::CONFLICT => "Already uploaded",
        StatusCode::FORBIDDEN => "This link is no longer valid",
        _ => "Something went wrong",
    };
    let body = format!(
        "<h1>{}</h1><p>{}</p><p class=\"note\">code: <code>{}</code></p>",
        text(title),
        text(&message),
        text(code)
    );
    page(status, title, "", &body)
}

/// The script of the upload page (sessions, parts, completion); kept as a file of its own.
const UPLOAD_SCRIPT: &str = include_str!("assets/upload.js");

/// The upload page of a request. `uploads_url` starts an upload; `direct_origin` is the
/// bucket's origin where parts go straight to it, which the page's policy must allow.
pub fn upload_page(
    request: &UploadRequest,
    uploads_url: &str,
    direct_origin: Option<&str>,
) -> Response {
    let fixed_name = request
        .filename
        .as_ref()
        .map(|name| name.as_str().to_owned())
        .unwrap_or_default();
    let body = format!(
        "<h1>Send a file</h1><p class=\"meta\">Up to {max} · open until {expires}</p>\
         <p>This page accepts exactly one file. Once it has arrived, the link stops working.</p>\
         <div id=\"upload\" data-max-size=\"{max_bytes}\" data-fixed-name=\"{fixed}\" data-uploads-url=\"{uploads}\">\
         <input type=\"file\" id=\"file\"> <button id=\"send\" type=\"button\">Upload</button></div>\
         <p><progress id=\"progress\" max=\"1\" value=\"0\" hidden></progress></p><p id=\"status\" role=\"status\"></p>\
         <script>{UPLOAD_SCRIPT}</script>",
        max = text(&human_size(request.max_size)),
        expires = text(&rfc3339(request.expires_at)),
        max_bytes = request.max_size,
        fixed = html_escape::encode_double_quoted_attribute(&fixed_name),
        uploads = html_escape::encode_double_quoted_attribute(uploads_url),
    );
    let mut response = page(StatusCode::OK, "Send a file", "", &body);
    if let Some(origin) = direct_origin
        && let Ok(policy) = HeaderValue::from_str(&format!(
            "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; connect-src 'self' {origin}; frame-ancestors 'none'"
        ))
    {
        response
            .headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, policy);
    }
    response
}
