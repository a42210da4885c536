//! Reading what people paste: share links, share ids and server URLs. Every command goes
//! through these parsers, so they all accept the same forms: surrounding quotes or `<…>` (as
//! mail and chat clients wrap links) and a trailing slash; a link may also lack its scheme, a
//! server URL may not (see [`parse_server`]).

use std::net::IpAddr;

use anyhow::{Context, Result, anyhow, bail};
use once_domain::ShareId;
use url::Url;

/// `text` without surrounding whitespace, matching quotes (`'…'`, `"…"`, `` `…` ``) or angle
/// brackets, however they are nested (`"<https://…>"`).
pub fn unwrap_pasted(text: &str) -> &str {
    let mut text = text.trim();
    loop {
        let unwrapped = [('\'', '\''), ('"', '"'), ('`', '`'), ('<', '>')]
            .iter()
            .find_map(|(open, close)| text.strip_prefix(*open)?.strip_suffix(*close));
        match unwrapped {
            Some(inner) => text = inner.trim(),
            None => return text,
        }
    }
}

/// An http(s) URL as a person types it. Without a scheme, `localhost` and IP addresses mean
/// `http://` (a server on this machine or the local network, usually without TLS) and any
/// other host means `https://`.
fn parse_http_url(text: &str) -> Result<Url> {
    let text = unwrap_pasted(text);
    let url = if text.contains("://") {
        Url::parse(text)?
    } else {
        let guessed = format!("https://{text}");
        let url = Url::parse(&guessed)?;
        if url.host_str().is_some_and(is_local_host) {
            Url::parse(&format!("http://{text}"))?
        } else {
            url
        }
    };
    if !matches!(url.scheme(), "http" | "https") {
        bail!("expected an http(s) URL");
    }
    if url.host_str().is_none_or(str::is_empty) {
        bail!("the URL has no host");
    }
    Ok(url)
}

fn is_local_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.to_ascii_lowercase().ends_with(".localhost")
        || host.parse::<IpAddr>().is_ok()
}

/// The server's base URL, without a trailing slash so `{server}/api/v1/…` is well formed (a
/// path prefix such as `https://host/once` is kept). Unlike a pasted link, a server URL must
/// name its scheme: it is where the key is sent and it is saved for later, so plain `http://`
/// (the key in clear) or `https://` is the person's choice, not a guess; the refusal suggests
/// the URL a guess would have made.
pub fn parse_server(text: &str) -> Result<String> {
    let pasted = unwrap_pasted(text);
    if !pasted.contains("://") {
        let looks_like_a_scheme = ["http:", "https:"].iter().any(|scheme| {
            pasted
                .get(..scheme.len())
                .is_some_and(|start| start.eq_ignore_ascii_case(scheme))
        });
        let suggestion = parse_http_url(pasted)
            .ok()
            .filter(|_| !looks_like_a_scheme && !pasted.is_empty())
            .map(|url| format!("; did you mean {}?", url.as_str().trim_end_matches('/')))
            .unwrap_or_default();
        bail!("invalid server URL {text:?}: it must start with https:// or http://{suggestion}");
    }
    let url = parse_http_url(pasted).map_err(|error| {
        anyhow!("invalid server URL {text:?}: {error} (expected http(s)://host[:port])")
    })?;
    if url.query().is_some() || url.fragment().is_some() {
        bail!("invalid server URL {text:?}: it must not have a query or fragment");
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

/// What [`id_segment`] looks for, and how its errors name it.
struct IdPath {
    /// The segment before the id: `s` or `r`.
    marker: &'static str,
    /// "a share link", "an upload request URL".
    what: &'static str,
    /// "link", "URL".
    noun: &'static str,
    /// "share", "request".
    kind: &'static str,
}

const SHARE_PATH: IdPath = IdPath {
    marker: "s",
    what: "a share link",
    noun: "link",
    kind: "share",
};

const REQUEST_PATH: IdPath = IdPath {
    marker: "r",
    what: "an upload request URL",
    noun: "URL",
    kind: "request",
};

/// The path of a share link or request URL taken apart at its `/{marker}/ID`: the segments,
/// where the marker stands, and the id after it (not yet validated). A path prefix before the
/// marker (a server under `https://host/once`) is allowed.
fn id_segment<'a>(
    url: &'a Url,
    path: &IdPath,
    text: &str,
) -> Result<(Vec<&'a str>, usize, &'a str)> {
    let IdPath {
        marker,
        what,
        noun,
        kind,
    } = path;
    let segments: Vec<&str> = url
        .path_segments()
        .map(Iterator::collect)
        .unwrap_or_default();
    let position = segments
        .iter()
        .position(|segment| segment == marker)
        .with_context(|| format!("not {what} (expected …/{marker}/ID): {text}"))?;
    let id = segments
        .get(position + 1)
        .copied()
        .filter(|id| !id.is_empty())
        .with_context(|| format!("the {noun} has no {kind} id after /{marker}/: {text}"))?;
    Ok((segments, position, id))
}

/// A share link taken apart: the link without any trailing file name (so the same share
/// always compares equal) and the share id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareLink {
    /// `scheme://host[:port][/prefix]/s/ID`, without query, fragment or file name.
    pub canonical: Url,
    /// The file name segment after the id, if the link had one.
    pub filename: Option<String>,
    pub id: ShareId,
    /// The fragment (after `#`): an end-to-end encrypted share's secret. Never sent to a
    /// server, never written to a download record.
    pub secret: Option<String>,
}

impl ShareLink {
    /// Accepts `http(s)://host[/prefix]/s/ID`, `…/s/ID/filename` and either with a trailing
    /// slash. The id is validated here so a typo fails before any request is sent.
    pub fn parse(text: &str) -> Result<Self> {
        let url = parse_http_url(text).with_context(|| format!("not a link: {text}"))?;
        let (segments, position, id_text) = id_segment(&url, &SHARE_PATH, text)?;
        let id = ShareId::parse(id_text)
            .map_err(|_| anyhow!("malformed share id {id_text:?} in {text}"))?;
        let filename = segments
            .get(position + 2)
            .filter(|name| !name.is_empty())
            .map(|name| percent_encoding::percent_decode_str(name).decode_utf8_lossy())
            .map(String::from);
        let secret = url
            .fragment()
            // A pasted trailing slash is no part of the key (b64u has no `/`).
            .map(|fragment| fragment.trim_end_matches('/'))
            .filter(|fragment| !fragment.is_empty())
            .map(str::to_owned);
        let mut canonical = url.clone();
        canonical.set_query(None);
        canonical.set_fragment(None);
        canonical
            .path_segments_mut()
            .map_err(|()| anyhow!("not a share link: {text}"))?
            .clear()
            .extend(&segments[..position + 2]);
        Ok(Self {
            canonical,
            filename,
            id,
            secret,
        })
    }

    /// A bare share id (on the server at `server`), with or without `#SECRET`, or a link.
    pub fn from_ref(text: &str, server: &str) -> Result<Self> {
        let pasted = unwrap_pasted(text);
        let (id, fragment) = match pasted.split_once('#') {
            Some((id, fragment)) => (id, Some(fragment)),
            None => (pasted, None),
        };
        match ShareId::parse(id) {
            Ok(id) => {
                let fragment = fragment.map(|f| format!("#{f}")).unwrap_or_default();
                Self::parse(&format!("{server}/s/{id}{fragment}"))
            }
            Err(_) => Self::parse(text),
        }
    }

    /// `GET` here: what an encrypted share needs to be opened and claimed.
    pub fn seal_url(&self) -> Url {
        let mut url = self.canonical.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.push("seal");
        }
        url
    }

    /// What to request to claim the share: the canonical link, plus the file name when the
    /// link had one (the server answers both forms the same; the name is kept for logs).
    pub fn claim_url(&self) -> Url {
        let mut url = self.canonical.clone();
        if let (Some(name), Ok(mut segments)) = (&self.filename, url.path_segments_mut()) {
            segments.push(name);
        }
        url
    }
}

/// Someone's upload request, as an uploader sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestLink {
    /// `scheme://host[:port][/prefix]/r/ID`: what the request accepts (`GET`, as JSON).
    pub page: Url,
    /// `…/r/ID/uploads`: where an uploader starts its upload.
    pub uploads: Url,
    /// The fragment of an end-to-end encrypted request: the requester's public key.
    pub recipient: Option<String>,
}

/// The request behind an upload URL (`http(s)://host[/prefix]/r/ID`, with or without a
/// trailing file name or slash, and the `#PUBLIC` key of an encrypted request).
pub fn request_link(text: &str) -> Result<RequestLink> {
    let url = parse_http_url(text).with_context(|| format!("not an upload URL: {text}"))?;
    let (segments, position, id_text) = id_segment(&url, &REQUEST_PATH, text)?;
    let id = once_domain::RequestId::parse(id_text)
        .map_err(|_| anyhow!("malformed request id {id_text:?} in {text}"))?;
    let mut page = url.clone();
    page.set_query(None);
    page.set_fragment(None);
    page.path_segments_mut()
        .map_err(|()| anyhow!("not an upload request URL: {text}"))?
        .clear()
        .extend(&segments[..position])
        .extend(["r", id.as_str()]);
    let mut uploads = page.clone();
    uploads
        .path_segments_mut()
        .map_err(|()| anyhow!("not an upload request URL: {text}"))?
        .push("uploads");
    let recipient = url
        .fragment()
        .filter(|fragment| !fragment.is_empty())
        .map(str::to_owned);
    Ok(RequestLink {
        page,
        uploads,
        recipient,
    })
}

/// A request id given either bare or as its upload link (`once audit --request`).
pub fn request_id_from_ref(text: &str) -> Result<once_domain::RequestId> {
    if let Ok(id) = once_domain::RequestId::parse(unwrap_pasted(text)) {
        return Ok(id);
    }
    let link = request_link(text).with_context(|| format!("not a request id or link: {text}"))?;
    let id = link
        .page
        .path_segments()
        .and_then(|mut segments| segments.next_back())
        .unwrap_or_default()
        .to_owned();
    once_domain::RequestId::parse(&id).map_err(|_| anyhow!("not a request id or link: {text}"))
}

/// A share id given either bare or as a link (`once status`, `once revoke`).
pub fn share_id_from_ref(text: &str) -> Result<ShareId> {
    if let Ok(id) = ShareId::parse(unwrap_pasted(text)) {
        return Ok(id);
    }
    ShareLink::parse(text)
        .map(|link| link.id)
        .with_context(|| format!("not a share id or link: {text}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_named_by_its_id_or_any_form_of_its_link() {
        let id = "AAAAAAAAAAAAAAAAAAAAAA";
        for text in [
            id.to_owned(),
            format!("https://h/r/{id}"),
            format!("https://h/p/r/{id}/report.csv"),
            format!("https://h/r/{id}#c29tZSBwdWJsaWMga2V5"),
        ] {
            assert_eq!(request_id_from_ref(&text).unwrap().as_str(), id, "{text}");
        }
        assert!(request_id_from_ref("https://h/s/AAAAAAAAAAAAAAAAAAAAAA").is_err());
        assert!(request_id_from_ref("nonsense").is_err());
    }

    #[test]
    fn request_urls_lead_to_their_uploads_endpoint() {
        let id = "AAAAAAAAAAAAAAAAAAAAAA";
        for pasted in [
            format!("https://h/r/{id}"),
            format!("<https://h/r/{id}/>"),
            format!("https://h/r/{id}/report.pdf?x=1"),
        ] {
            let link = request_link(&pasted).unwrap();
            assert_eq!(link.page.as_str(), format!("https://h/r/{id}"));
            assert_eq!(link.uploads.as_str(), format!("https://h/r/{id}/uploads"));
            assert_eq!(link.recipient, None);
        }
        let prefixed = request_link(&format!("http://h/once/r/{id}#")).unwrap();
        assert_eq!(
            prefixed.uploads.as_str(),
            format!("http://h/once/r/{id}/uploads")
        );
        assert_eq!(prefixed.recipient, None);
        let encrypted =
            request_link(&format!("https://h/r/{id}/x.pdf#{}", "k".repeat(43))).unwrap();
        assert_eq!(encrypted.recipient, Some("k".repeat(43)));
        assert!(!encrypted.uploads.as_str().contains('#'));
        assert!(request_link("https://h/s/AAAAAAAAAAAAAAAAAAAAAA").is_err());
        assert!(request_link("https://h/r/short").is_err());
    }

    const ID: &str = "AAAAAAAAAAAAAAAAAAAAAA";

    #[test]
    fn share_links_parse_with_and_without_file_name() {
        let plain = ShareLink::parse(&format!("https://once.example/s/{ID}")).unwrap();
        assert_eq!(plain.id.as_str(), ID);
        assert_eq!(plain.filename, None);
        assert_eq!(
            plain.canonical.as_str(),
            format!("https://once.example/s/{ID}")
        );

        let named =
            ShareLink::parse(&format!("http://h:8080/prefix/s/{ID}/my%20file.txt?x=1#y")).unwrap();
        assert_eq!(named.id.as_str(), ID);
        assert_eq!(named.secret.as_deref(), Some("y"));
        assert_eq!(plain.secret, None);
        assert_eq!(named.filename.as_deref(), Some("my file.txt"));
        assert_eq!(
            named.canonical.as_str(),
            format!("http://h:8080/prefix/s/{ID}")
        );
        assert_eq!(
            named.claim_url().as_str(),
            format!("http://h:8080/prefix/s/{ID}/my%20file.txt")
        );
    }

    #[test]
    fn pasted_links_with_quotes_brackets_or_a_trailing_slash_are_the_same_link() {
        let expected = format!("https://once.example/s/{ID}");
        for pasted in [
            format!("{expected}/"),
            format!("'{expected}'"),
            format!("\"{expected}\""),
            format!("<{expected}>"),
            format!("  \"<{expected}/>\"\n"),
            format!("`{expected}`"),
            format!("once.example/s/{ID}"),
        ] {
            let link = ShareLink::parse(&pasted).unwrap_or_else(|e| panic!("{pasted}: {e:#}"));
            assert_eq!(link.canonical.as_str(), expected, "{pasted}");
            assert_eq!(link.filename, None, "{pasted}");
            assert_eq!(link.claim_url().as_str(), expected, "{pasted}");
        }
        let named = ShareLink::parse(&format!("<{expected}/f.txt/>")).unwrap();
        assert_eq!(named.filename.as_deref(), Some("f.txt"));
    }

    #[test]
    fn bad_links_are_refused() {
        for bad in [
            "ftp://h/s/AAAAAAAAAAAAAAAAAAAAAA",
            "https://h/x/AAAAAAAAAAAAAAAAAAAAAA",
            "https://h/s/",
            "https://h/s//",
            "https://h/s/short",
            "https://h/s/../etc/passwd",
            "not a url",
            "'https://h/s/AAAAAAAAAAAAAAAAAAAAAA\"",
        ] {
            assert!(ShareLink::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn share_refs_accept_ids_and_links() {
        assert_eq!(share_id_from_ref(ID).unwrap().as_str(), ID);
        assert_eq!(share_id_from_ref(&format!("'{ID}'")).unwrap().as_str(), ID);
        assert_eq!(
            share_id_from_ref(&format!("https://h/s/{ID}/f.bin"))
                .unwrap()
                .as_str(),
            ID
        );
        assert_eq!(
            share_id_from_ref(&format!("<https://h/s/{ID}/>"))
                .unwrap()
                .as_str(),
            ID
        );
        assert!(share_id_from_ref("nope").is_err());
    }

    #[test]
    fn a_bare_id_is_a_link_on_the_configured_server() {
        let link = ShareLink::from_ref(ID, "http://127.0.0.1:8080/once").unwrap();
        assert_eq!(
            link.canonical.as_str(),
            format!("http://127.0.0.1:8080/once/s/{ID}")
        );
        let elsewhere = ShareLink::from_ref(&format!("https://h/s/{ID}"), "http://x").unwrap();
        assert_eq!(elsewhere.canonical.as_str(), format!("https://h/s/{ID}"));
        let keyed = ShareLink::from_ref(&format!("{ID}#KEY"), "http://h").unwrap();
        assert_eq!(keyed.canonical.as_str(), format!("http://h/s/{ID}"));
        assert_eq!(keyed.secret.as_deref(), Some("KEY"));
        assert_eq!(keyed.seal_url().as_str(), format!("http://h/s/{ID}/seal"));
    }

    #[test]
    fn server_urls_keep_their_scheme_and_lose_trailing_slashes() {
        for (given, expected) in [
            ("http://127.0.0.1:8080/", "http://127.0.0.1:8080"),
            ("https://example.com/once/", "https://example.com/once"),
            ("'http://h:1/'", "http://h:1"),
            ("<https://h>", "https://h"),
            ("HTTPS://Example.COM", "https://example.com"),
        ] {
            assert_eq!(parse_server(given).unwrap(), expected, "{given}");
        }
        for bad in ["ftp://x", "http://h/?q=1", "not a url", "", "http://"] {
            assert!(parse_server(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_server_without_a_scheme_is_refused_with_the_url_it_probably_meant() {
        for (given, meant) in [
            ("files.example.org", "https://files.example.org"),
            ("files.example.org/once/", "https://files.example.org/once"),
            ("'files.example.org:8443'", "https://files.example.org:8443"),
            ("localhost:8080", "http://localhost:8080"),
            ("127.0.0.1:8080", "http://127.0.0.1:8080"),
            ("[::1]:8080", "http://[::1]:8080"),
        ] {
            let error = parse_server(given).unwrap_err().to_string();
            assert!(
                error.ends_with(&format!(
                    "it must start with https:// or http://; did you mean {meant}?"
                )),
                "{given}: {error}"
            );
        }
        // No guess where a guess would be nonsense.
        for given in ["https:/h", "http:h", "not a url", ""] {
            let error = parse_server(given).unwrap_err().to_string();
            assert!(
                error.ends_with("it must start with https:// or http://"),
                "{given}: {error}"
            );
        }
    }
}
