//! The claim: one GET on the share link, which uses up a download and answers with a redirect
//! to the blob (or, from some servers, the bytes themselves).

use anyhow::{Context, Result, bail};
use once_domain::Sha256Digest;
use reqwest::header::{ACCEPT, CONTENT_DISPOSITION, CONTENT_TYPE, LOCATION};
use reqwest::{Response, StatusCode};
use url::Url;

use super::super::config::{Client, error_from_response};

/// What the claim produced.
pub(super) enum Claimed {
    /// The usual answer: the blob's URL, which may be fetched again (with Range) during the
    /// lease.
    Redirect(Url),
    /// The server sent the bytes itself; they cannot be re-requested without a new claim.
    Direct(Response),
}

/// The SHA-256 the server announces for the file, if any. The claim has already used up a
/// download by then, so a malformed header only costs the check, not the file.
fn announced_sha256(response: &Response) -> Option<Sha256Digest> {
    let value = response.headers().get(once_api::headers::SHA256)?;
    let digest = value
        .to_str()
        .ok()
        .and_then(|text| Sha256Digest::parse_hex(text).ok());
    if digest.is_none() {
        eprintln!("warning: the server announced a malformed SHA-256; the file is not verified");
    }
    digest
}

/// Claims the share with one GET on the link. Redirects are not followed automatically: the
/// blob URL is what makes resuming possible, and a permanent redirect (say http → https by a
/// proxy) is reported rather than followed so nothing is claimed behind the user's back.
/// Returns the claim and the file's SHA-256 when the server announced one.
pub(super) async fn claim(client: &Client, link: &Url) -> Result<(Claimed, Option<Sha256Digest>)> {
    let response = client
        .send(client.http().get(link.clone()).header(ACCEPT, "*/*"))
        .await?;
    let status = response.status();
    let sha256 = announced_sha256(&response);
    let location = || {
        response
            .headers()
            .get(LOCATION)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
    };
    match status {
        StatusCode::FOUND | StatusCode::SEE_OTHER | StatusCode::TEMPORARY_REDIRECT => {
            let location = location().context("the server redirected without a Location")?;
            let blob = link
                .join(&location)
                .with_context(|| format!("the server redirected to an invalid URL {location}"))?;
            Ok((Claimed::Redirect(blob), sha256))
        }
        StatusCode::NOT_ACCEPTABLE => bail!(
            "the link is incomplete: the share is encrypted end to end and its key is the part \
             after '#' (…/s/ID#KEY), which is missing; paste the whole link the sender gave you \
             (nothing was downloaded, the link still works)"
        ),
        StatusCode::MOVED_PERMANENTLY | StatusCode::PERMANENT_REDIRECT => bail!(
            "{link} moved to {}; nothing was downloaded, use that link instead",
            location().unwrap_or_default()
        ),
        status if status.is_success() => {
            if looks_like_a_page(&response) {
                bail!(
                    "the server answered with a web page instead of the file; nothing was \
                     downloaded"
                );
            }
            Ok((Claimed::Direct(response), sha256))
        }
        _ => Err(error_from_response(response)
            .await
            .context("cannot download the share")),
    }
}

/// An HTML answer without `Content-Disposition` is the landing page meant for browsers, not
/// the file.
fn looks_like_a_page(response: &Response) -> bool {
    let html = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.trim_start().starts_with("text/html"));
    html && !response.headers().contains_key(CONTENT_DISPOSITION)
}
