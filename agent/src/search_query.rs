//! Search queries inside search-engine and YouTube addresses: what a pupil
//! searched for is matched like typed text, even when the page itself
//! never loads.

/// Hosts and the query parameter that holds the search, most specific first.
const ENGINES: &[(&str, &str, &str)] = &[
    // (host suffix, path prefix, parameter)
    ("youtube.com", "/results", "search_query"),
    ("google.", "/search", "q"),
    ("bing.com", "/search", "q"),
    ("duckduckgo.com", "/", "q"),
    ("search.yahoo.com", "/search", "p"),
    ("ecosia.org", "/search", "q"),
    ("startpage.com", "/", "query"),
    ("search.brave.com", "/search", "q"),
    ("yandex.", "/search", "text"),
    ("baidu.com", "/s", "wd"),
    ("ask.com", "/web", "q"),
    ("tiktok.com", "/search", "q"),
    ("reddit.com", "/search", "q"),
    ("twitter.com", "/search", "q"),
    ("x.com", "/search", "q"),
];

/// The search in `url`, if it is a search page of a known engine.
pub fn search_query(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))?;
    let (host_port, path_query) = rest.split_at(rest.find(['/', '?', '#']).unwrap_or(rest.len()));
    let host = host_port
        .rsplit('@')
        .next()?
        .split(':')
        .next()?
        .to_ascii_lowercase();
    let path_query = path_query.split('#').next().unwrap_or_default();
    let (path, query) = path_query.split_once('?').unwrap_or((path_query, ""));
    let path = if path.is_empty() { "/" } else { path };
    let (_, _, param) = ENGINES
        .iter()
        .find(|(suffix, prefix, _)| host_matches(&host, suffix) && path.starts_with(prefix))?;
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == *param)
            .then(|| percent_decode(v))
            .filter(|q| !q.trim().is_empty())
    })
}

/// `suffix` is a domain ("bing.com") or a name with a trailing dot that
/// stands for any top-level domain ("google." for google.co.uk).
fn host_matches(host: &str, suffix: &str) -> bool {
    let host = host.strip_prefix("www.").unwrap_or(host);
    if let Some(name) = suffix.strip_suffix('.') {
        host.split('.').next() == Some(name) && host.contains('.')
    } else {
        host == suffix || host.ends_with(&format!(".{suffix}"))
    }
}

/// Decodes `%XX` escapes and `+` as space; invalid UTF-8 becomes U+FFFD.
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => match s
                .get(i + 1..i + 3)
                .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                Some(b) => {
                    out.push(b);
                    i += 3;
                    continue;
                }
                None => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The host of a URL, lower case, without `www.` (for site-visit domains).
pub fn domain(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let host = rest
        .split(['/', '?', '#'])
        .next()?
        .rsplit('@')
        .next()?
        .split(':')
        .next()?;
    let host = host.to_ascii_lowercase();
    Some(host.strip_prefix("www.").map(str::to_owned).unwrap_or(host)).filter(|h| !h.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_queries_of_known_engines() {
        let cases = [
            (
                "https://www.google.com/search?q=how+to+kill+myself&oq=x",
                Some("how to kill myself"),
            ),
            (
                "https://www.google.co.uk/search?client=x&q=buy%20a%20knife",
                Some("buy a knife"),
            ),
            ("http://www.google.com/search?q=caf%C3%A9", Some("café")),
            (
                "https://www.youtube.com/results?search_query=self+harm",
                Some("self harm"),
            ),
            ("https://duckduckgo.com/?q=sad&t=h_", Some("sad")),
            ("https://www.bing.com/search?q=a%2Bb", Some("a+b")),
            ("https://search.yahoo.com/search?p=drugs", Some("drugs")),
            ("https://www.google.com/maps?q=london", None),
            ("https://notgoogle.com/search?q=x", None),
            ("https://www.google.com/search?q=", None),
            ("https://www.bing.com/search?q=%zz%4", Some("%zz%4")),
            ("https://www.bing.com/search?q=%+1", Some("% 1")),
            ("ftp://google.com/search?q=x", None),
            ("https://user@www.bing.com:443/search?q=ok#frag", Some("ok")),
        ];
        for (url, want) in cases {
            assert_eq!(search_query(url).as_deref(), want, "{url}");
        }
    }

    #[test]
    fn domains() {
        assert_eq!(
            domain("https://www.BBC.co.uk/news?x").as_deref(),
            Some("bbc.co.uk")
        );
        assert_eq!(
            domain("http://127.0.0.1:8080/").as_deref(),
            Some("127.0.0.1")
        );
        assert_eq!(domain("about:blank"), None);
    }
}
