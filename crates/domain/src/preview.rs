//! Link-preview and scanner detection. Chat apps and mail gateways fetch links before a human
//! clicks them; if such a fetch claimed the share, the real recipient would find it gone.

/// Lower-case substrings of user agents that fetch links to build previews or scan them.
/// Generic words (`bot`, `crawler`, `preview`, …) catch the long tail.
const PREVIEW_AGENT_MARKERS: &[&str] = &[
    // chat and social apps
    "slackbot",
    "slack-imgproxy",
    "discordbot",
    "telegrambot",
    "whatsapp",
    "facebookexternalhit",
    "facebot",
    "meta-externalagent",
    "twitterbot",
    "linkedinbot",
    "skypeuripreview",
    "teams",
    "microsoft preview",
    "mattermost",
    "signal",
    "viber",
    "snapchat",
    "pinterest",
    "redditbot",
    "embedly",
    "iframely",
    "vkshare",
    "line-poker",
    "zoom",
    "applebot",
    "bitlybot",
    // search engines
    "googlebot",
    "google-inspectiontool",
    "googleother",
    "google-pagerenderer",
    "adsbot-google",
    "bingbot",
    "bingpreview",
    "duckduckbot",
    "yandex",
    "baiduspider",
    // mail link scanners and security gateways
    "microsoft office",
    "ms-office",
    "safelinks",
    "outlook",
    "mimecast",
    "proofpoint",
    "barracuda",
    "symantec",
    "trendmicro",
    "forcepoint",
    "sophos",
    "fireeye",
    "ironport",
    "zscaler",
    "checkpoint",
    "paloalto",
    "virustotal",
    // generic
    "bot",
    "crawler",
    "spider",
    "preview",
    "scanner",
    "urlscan",
];

/// True when the user agent looks like a link previewer, crawler or mail scanner.
/// Deliberately errs on the side of "preview": a false positive costs a human one click on the
/// landing page, a false negative burns the link.
pub fn is_preview_agent(user_agent: &str) -> bool {
    let agent = user_agent.to_ascii_lowercase();
    PREVIEW_AGENT_MARKERS
        .iter()
        .any(|marker| agent.contains(marker))
}

/// True when the client prefers an HTML page (a browser), judged by its `Accept` header.
pub fn wants_html(accept: &str) -> bool {
    accept.to_ascii_lowercase().contains("text/html")
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn browsers_ask_for_html_and_curl_does_not() {
        assert!(wants_html(
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
        ));
        assert!(!wants_html("*/*"));
    }
}
