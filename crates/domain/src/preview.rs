//! Who opened a share link, judged from the method and a few headers. Chat apps and mail
//! gateways fetch links before a human clicks them; if such a fetch claimed the share, the real
//! recipient would find it gone. So only a plain `GET` from a client that is neither a known
//! previewer nor browser-like (curl, wget, the `once` CLI, HTTP libraries) claims.

/// How a request for a share link is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opener {
    /// `HEAD` (or any method other than `GET`): status and headers only, nothing consumed.
    Head,
    /// A known link previewer, crawler or scanner: an Open Graph card, nothing consumed.
    Preview,
    /// A browser-like client: the landing page, whose Download button claims by `POST`.
    Browser,
    /// Everything else (curl, wget, the CLI, libraries): a plain `GET` claims the share.
    Downloader,
}

/// The parts of a request the classification looks at, kept free of HTTP types so the rule
/// stays pure. Missing headers are empty strings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpenRequest<'a> {
    pub method: &'a str,
    pub user_agent: &'a str,
    pub accept: &'a str,
    /// Whether any `Sec-Fetch-*` header was sent: only browsers send them (Fetch Metadata).
    pub has_sec_fetch_headers: bool,
}

impl OpenRequest<'_> {
    /// The one classification every share-link route uses. Preview markers are checked before
    /// the browser rule because most previewers dress up as browsers (`Mozilla/5.0 …`) and
    /// should get the card, not a page with a button a scanner might press.
    pub fn opener(&self) -> Opener {
        if self.method != "GET" {
            Opener::Head
        } else if is_preview_agent(self.user_agent) {
            Opener::Preview
        } else if self.has_sec_fetch_headers
            || is_browser_agent(self.user_agent)
            || wants_html(self.accept)
        {
            Opener::Browser
        } else {
            Opener::Downloader
        }
    }
}

/// Lower-case substrings of user agents that fetch links to build previews or scan them.
/// A marker names the fetcher, not the app, wherever the app also has an in-app browser
/// (Snapchat, Pinterest, KakaoTalk, WeChat): a person reading in that browser must get the
/// landing page, not a card telling them to open a browser.
const PREVIEW_AGENT_MARKERS: &[&str] = &[
    // Google, from "Overview of Google crawlers and fetchers" (developers.google.com/crawling):
    // common and special-case crawlers, user-triggered fetchers (FeedFetcher, Read Aloud, Site
    // Verifier, Chrome Web Store, Gemini), plus the Google+ snippet fetcher, whose agent is a
    // plain Firefox string followed by its documentation URL, and Gmail's image proxy.
    // Google-Extended is a robots.txt token; it is listed in case a fetcher ever sends it.
    "googlebot",
    "storebot-google",
    "google-inspectiontool",
    "googleother",
    "google-extended",
    "google-cloudvertexbot",
    "google-safety",
    "apis-google",
    "adsbot-google",
    "mediapartners-google",
    "duplexweb-google",
    "feedfetcher-google",
    "googleproducer",
    "google-read-aloud",
    "google-site-verification",
    "google-cws",
    "google-gemininotebook",
    "google-pagerenderer",
    "google favicon",
    "googleimageproxy",
    "developers.google.com/+/web/snippet",
    // Yahoo ("Yahoo! Slurp", help.yahoo.com/help/us/ysearch/slurp), Apple (Applebot,
    // support.apple.com/119829) and the other search engines' documented crawlers.
    "slurp",
    "applebot",
    "duckduckbot",
    "yandex",
    "baiduspider",
    // Microsoft, from Bing Webmaster "Which crawlers does Bing use" and the Teams/Skype and
    // Office link-unfurling agents: Bing and its previewers, Teams and Skype unfurling
    // (SkypeUriPreview), Office and Outlook apps probing links, Defender Safe Links.
    "bingbot",
    "bingpreview",
    "adidxbot",
    "msnbot",
    "microsoftpreview",
    "microsoft preview",
    "skypeuripreview",
    "teams",
    "microsoft office",
    "ms-office",
    "msoffice",
    "outlook",
    "safelinks",
    // Meta, from developers.facebook.com/docs/sharing/webmasters/web-crawlers; WhatsApp's
    // preview agent is `WhatsApp/<version>`, which Signal's clients also announce for theirs.
    // iMessage sends `facebookexternalhit/1.1 Facebot Twitterbot/1.0`, caught here too.
    "facebookexternalhit",
    "facebot",
    "meta-externalagent",
    "meta-externalfetcher",
    "whatsapp",
    "signal",
    // Chat apps, each from its own docs or source: Slack (api.slack.com/robots), Discord,
    // Telegram, Mattermost, Rocket.Chat, Zulip (ZulipURLPreview), Nextcloud Talk (the
    // server's "Nextcloud Server Crawler"), Matrix homeservers (Synapse's
    // `url_preview_user_agent`, matrix-media-repo), Viber, LINE (line-poker), KakaoTalk
    // (kakaotalk-scrap), Zoom. WeChat and Snapchat's in-app browsers carry the app name, so
    // only Snapchat's fetcher ("Snap URL Preview Service") is named; WeChat's fetcher sends a
    // browser agent, which the browser rule already keeps from claiming.
    "slackbot",
    "slack-imgproxy",
    "discordbot",
    "telegrambot",
    "mattermost",
    "rocket.chat",
    "zulip",
    "nextcloud server crawler",
    "synapse",
    "matrix-media-repo",
    "viber",
    "line-poker",
    "kakaotalk-scrap",
    "zoom",
    "snap url preview",
    // Social networks and embed services: X/Twitter, LinkedIn, Pinterest (Pinterestbot and
    // `Pinterest/0.x`, pinterest.com/bot.html), Reddit, Mastodon and other fediverse servers
    // (`Mastodon/<version> (http.rb/…)`), Bluesky's card fetcher Cardyb, Tumblr, VK (vkShare),
    // Bitly, Embedly, Iframely.
    "twitterbot",
    "linkedinbot",
    "pinterestbot",
    "pinterest/0.",
    "redditbot",
    "mastodon",
    "pleroma",
    "akkoma",
    "misskey",
    "cardyb",
    "tumblr",
    "vkshare",
    "bitlybot",
    "embedly",
    "iframely",
    // Mail link scanners and security gateways, by the vendor names their fetchers announce.
    "mimecast",
    "proofpoint",
    "barracuda",
    "symantec",
    "broadcom",
    "trendmicro",
    "trend micro",
    "forcepoint",
    "fortiguard",
    "sophos",
    "fireeye",
    "ironport",
    "cisco",
    "zscaler",
    "checkpoint",
    "paloalto",
    "virustotal",
    "urlscan",
    // PhantomJS is only ever a scripted fetcher. Headless Chrome is deliberately absent: it is
    // a browser (automated tests, people's own scripts) and gets the landing page, which
    // consumes nothing until its button is pressed.
    "phantomjs",
    // Generic words catch the long tail.
    "bot",
    "crawler",
    "spider",
    "fetcher",
    "preview",
    "scanner",
    "unfurl",
];

/// True when the user agent looks like a link previewer, crawler or mail scanner.
/// Deliberately errs on the side of "preview": a false positive costs a human one more step,
/// a false negative burns the link.
pub fn is_preview_agent(user_agent: &str) -> bool {
    let agent = user_agent.to_ascii_lowercase();
    PREVIEW_AGENT_MARKERS
        .iter()
        .any(|marker| agent.contains(marker))
}

/// True for a browser-like user agent: every mainstream browser (and most things imitating
/// one, IE11 and Edge included) starts with `Mozilla/`. Matched anywhere, case-insensitively,
/// because "contains Mozilla" is the safe side to err on.
pub fn is_browser_agent(user_agent: &str) -> bool {
    user_agent.to_ascii_lowercase().contains("mozilla/")
}

/// True when the client prefers an HTML page (a browser), judged by its `Accept` header.
pub fn wants_html(accept: &str) -> bool {
    accept.to_ascii_lowercase().contains("text/html")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A plain `GET` as a client with these headers would send it.
    fn get(user_agent: &'static str, accept: &'static str) -> OpenRequest<'static> {
        OpenRequest {
            method: "GET",
            user_agent,
            accept,
            has_sec_fetch_headers: false,
        }
    }

    const CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 \
        (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36";

    #[test]
    fn chat_previewers_are_recognised() {
        for agent in [
            "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
            "Mozilla/5.0 (compatible; Discordbot/2.0; +https://discordapp.com)",
            "TelegramBot (like TwitterBot)",
            "WhatsApp/2.23.20.0 A",
            "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
            "Twitterbot/1.0",
            "LinkedInBot/1.0 (compatible; Mozilla/5.0; Apache-HttpClient +http://www.linkedin.com)",
            "Mozilla/5.0 (Windows NT 6.1; WOW64) SkypeUriPreview Preview/0.5",
            "Mattermost-Bot/1.1",
            "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
            "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
            "Microsoft Office Existence Discovery",
        ] {
            assert!(is_preview_agent(agent), "{agent}");
        }
    }

    #[test]
    fn documented_fetchers_of_the_big_platforms_get_the_preview_even_with_accept_anything() {
        for agent in [
            // Google
            "FeedFetcher-Google; (+http://www.google.com/feedfetcher.html)",
            "Mozilla/5.0 (Linux; Android 7.0; SM-G930V Build/NRD90M) AppleWebKit/537.36 \
             (KHTML, like Gecko) Chrome/59.0.3071.125 Mobile Safari/537.36 \
             (compatible; Google-Read-Aloud; +https://support.google.com/webmasters/answer/1061943)",
            "Mozilla/5.0 (X11; Linux x86_64; Storebot-Google/1.0) AppleWebKit/537.36 \
             (KHTML, like Gecko) Chrome/79.0.3945.88 Safari/537.36",
            "Mozilla/5.0 (compatible; Google-Extended)",
            "Mozilla/5.0 (compatible; Google-CWS)",
            // Apple: Applebot, and iMessage's combined agent
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_5) AppleWebKit/605.1.15 \
             (KHTML, like Gecko) Version/13.1.1 Safari/605.1.15 \
             (Applebot/0.1; +http://www.apple.com/go/applebot)",
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_11_1) AppleWebKit/601.2.4 \
             (KHTML, like Gecko) Version/9.0.1 Safari/601.2.4 facebookexternalhit/1.1 \
             Facebot Twitterbot/1.0",
            // Microsoft: Bing's previewers (one of them an Edge agent), Teams, Outlook
            "Mozilla/5.0 (Windows NT 6.1; WOW64) AppleWebKit/534+ (KHTML, like Gecko) BingPreview/1.0b",
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) \
             Chrome/112.0.0.0 Safari/537.36 Edg/112.0.1722.58 MicrosoftPreview/2.0 \
             +https://aka.ms/MicrosoftPreview",
            "Mozilla/5.0 (Windows NT 6.1; WOW64) AppleWebKit/537.36 (KHTML, like Gecko) \
             Chrome/51.0.2704.79 Safari/537.36 SkypeUriPreview Preview/0.5 \
             skype-url-preview@microsoft.com",
            "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.4266; Pro)",
            // chat apps
            "WhatsApp/2",
            "Rocket.Chat+https://rocket.chat",
            "Mozilla/5.0 (compatible; ZulipURLPreview/7.0; +https://zulip.com/)",
            "Nextcloud Server Crawler",
            "Synapse (bot; +https://github.com/matrix-org/synapse)",
            "Viber",
            "facebookexternalhit/1.1;line-poker/1.0",
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_10_1) AppleWebKit/537.36 \
             (KHTML, like Gecko) Chrome/41.0.2228.0 Safari/537.36 kakaotalk-scrap/1.0",
            "Mozilla/5.0 (Linux; Android 9) Snap URL Preview Service; bot; snapchat_preview@snap.com",
            // social networks and embed services
            "Pinterest/0.2 (+https://www.pinterest.com/bot.html)",
            "Mozilla/5.0 (compatible; redditbot/1.0; +http://www.reddit.com/feedback)",
            "Mastodon/4.2.1 (http.rb/5.1.1; +https://mastodon.social/)",
            "Mozilla/5.0 (compatible; Bluesky Cardyb/1.1; +mailto:support@bsky.app)",
            "Tumblr/14.0.835.186",
            "Mozilla/5.0 (compatible; vkShare; +http://vk.com/dev/Share)",
            "Mozilla/5.0 (compatible; Embedly/0.2; +http://support.embed.ly/)",
            "Iframely/1.3.1 (+https://iframely.com/docs/about)",
        ] {
            assert_eq!(get(agent, "*/*").opener(), Opener::Preview, "{agent}");
        }
    }

    #[test]
    fn google_snippet_fetcher_with_a_firefox_agent_gets_the_preview() {
        let agent = "Mozilla/5.0 (Windows NT 6.1; rv:6.0) Gecko/20110814 Firefox/6.0 \
                     Google (+https://developers.google.com/+/web/snippet/)";
        assert_eq!(get(agent, "*/*").opener(), Opener::Preview);
    }

    #[test]
    fn yahoo_slurp_gets_the_preview() {
        let agent =
            "Mozilla/5.0 (compatible; Yahoo! Slurp; http://help.yahoo.com/help/us/ysearch/slurp)";
        assert_eq!(get(agent, "*/*").opener(), Opener::Preview);
    }

    #[test]
    fn headless_chrome_gets_the_landing_page_and_claims_nothing() {
        let agent = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) \
                     HeadlessChrome/124.0.6367.60 Safari/537.36";
        assert_eq!(get(agent, "*/*").opener(), Opener::Browser);
    }

    #[test]
    fn internet_explorer_11_sending_accept_anything_gets_the_landing_page() {
        let agent = "Mozilla/5.0 (Windows NT 10.0; WOW64; Trident/7.0; rv:11.0) like Gecko";
        assert_eq!(get(agent, "*/*").opener(), Opener::Browser);
    }

    #[test]
    fn edge_old_and_new_sending_accept_anything_gets_the_landing_page() {
        for agent in [
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) \
             Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.51",
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) \
             Chrome/70.0.3538.102 Safari/537.36 Edge/18.19582",
        ] {
            assert_eq!(get(agent, "*/*").opener(), Opener::Browser, "{agent}");
        }
    }

    #[test]
    fn any_browser_sending_accept_anything_gets_the_landing_page() {
        for agent in [
            CHROME,
            "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 \
             (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
        ] {
            assert_eq!(get(agent, "*/*").opener(), Opener::Browser, "{agent}");
            assert_eq!(get(agent, "").opener(), Opener::Browser, "{agent}");
        }
    }

    #[test]
    fn fetch_metadata_or_an_html_accept_alone_marks_a_browser() {
        let fetch_metadata = OpenRequest {
            has_sec_fetch_headers: true,
            ..get("", "*/*")
        };
        assert_eq!(fetch_metadata.opener(), Opener::Browser);
        assert_eq!(
            get("", "text/html,application/xhtml+xml,*/*;q=0.8").opener(),
            Opener::Browser
        );
    }

    #[test]
    fn head_and_other_methods_never_claim() {
        for method in ["HEAD", "OPTIONS", "get", ""] {
            let request = OpenRequest {
                method,
                ..get("curl/8.5.0", "*/*")
            };
            assert_eq!(request.opener(), Opener::Head, "{method}");
        }
    }

    #[test]
    fn download_tools_are_not_previews() {
        for agent in [
            "curl/8.5.0",
            "Wget/1.21.3",
            "once-cli/0.1.0",
            "python-requests/2.31",
        ] {
            assert!(!is_preview_agent(agent), "{agent}");
        }
    }

    #[test]
    fn download_tools_and_libraries_claim_on_a_plain_get() {
        for agent in [
            "curl/8.5.0",
            "Wget/1.21.3",
            "Wget/1.24.5 (linux-gnu)",
            "once-cli/0.1.0",
            "once/0.1.0",
            "python-requests/2.31.0",
            "Go-http-client/1.1",
            "",
        ] {
            assert_eq!(get(agent, "*/*").opener(), Opener::Downloader, "{agent}");
            assert_eq!(get(agent, "").opener(), Opener::Downloader, "{agent}");
        }
    }

    #[test]
    fn in_app_browsers_are_not_mistaken_for_their_apps_previewers() {
        for agent in [
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 \
             (KHTML, like Gecko) Mobile/15E148 Snapchat/13.10.0.40 (like Safari/8617.2.4.10.8)",
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 \
             (KHTML, like Gecko) Mobile/15E148 [Pinterest/iOS]",
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 \
             (KHTML, like Gecko) Mobile/15E148 KAKAOTALK 10.8.5",
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 \
             (KHTML, like Gecko) Mobile/15E148 MicroMessenger/8.0.49(0x18003129) NetType/WIFI",
        ] {
            assert_eq!(get(agent, "*/*").opener(), Opener::Browser, "{agent}");
        }
    }

    #[test]
    fn browsers_ask_for_html_and_curl_does_not() {
        assert!(wants_html(
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
        ));
        assert!(!wants_html("*/*"));
    }
}
