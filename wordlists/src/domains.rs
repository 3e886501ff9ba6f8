//! Website categories: lists of domains, one file per category, and the
//! host of a page address.
//!
//! The curated lists live in `wordlists/domains/<category>.txt`. The format
//! is the common one-domain-per-line list, with two additions written as
//! comments so other tools read the files unchanged:
//!
//! ```text
//! #! severity: 3
//! #! definition: Betting, casinos, lotteries and odds comparison.
//! # Anything else after a # is a comment.
//! bet365.com
//! ```
//!
//! A domain covers its subdomains: `m.bet365.com` is in the category of
//! `bet365.com`. The lookup walks from the full host to its parents.
//!
//! [`import`] reads the lists schools find elsewhere (plain domains, hosts
//! files, Adblock `||domain^` rules, URLs, `*.domain` wildcards) and
//! reports every line it could not use, with its number and why.

use std::collections::HashMap;

/// The domain lists built into the binary: (category, text).
pub const BUILTIN: &[(&str, &str)] = &[
    ("adult", include_str!("../domains/adult.txt")),
    ("dating", include_str!("../domains/dating.txt")),
    ("extremism", include_str!("../domains/extremism.txt")),
    ("gambling", include_str!("../domains/gambling.txt")),
    ("games", include_str!("../domains/games.txt")),
    ("proxies-vpns", include_str!("../domains/proxies-vpns.txt")),
    ("self-harm", include_str!("../domains/self-harm.txt")),
    (
        "social-networking",
        include_str!("../domains/social-networking.txt"),
    ),
];

/// The host of an `http` or `https` address: lower case, without port,
/// user, trailing dot or a leading `www.`. Other schemes (`file:`,
/// `chrome:`, `data:`, …) are not websites and give `None`.
pub fn host_of(url: &str) -> Option<String> {
    let url = url.trim();
    let rest = strip_prefix_ci(url, "https://").or_else(|| strip_prefix_ci(url, "http://"))?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit('@').next().unwrap_or("");
    let host = if let Some(v6) = host_port.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        host_port.split(':').next().unwrap_or("")
    };
    normalise(host)
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// A domain as the lists and the report hold it, or `None` if it is not a
/// host name (or IP address) at all.
pub fn normalise(domain: &str) -> Option<String> {
    let mut d = domain.trim().trim_end_matches('.').to_ascii_lowercase();
    if let Some(rest) = d.strip_prefix("*.") {
        d = rest.to_owned();
    }
    if let Some(rest) = d.strip_prefix("www.")
        && rest.contains('.')
    {
        d = rest.to_owned();
    }
    if d.is_empty() || d.len() > 253 {
        return None;
    }
    if d.contains(':') {
        // IPv6: hex digits and colons only.
        return d
            .chars()
            .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
            .then_some(d);
    }
    let labels_ok = d.split('.').all(|l| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    });
    labels_ok.then_some(d)
}

/// The host itself, then each parent domain: `a.b.c` → `a.b.c`, `b.c`, `c`.
pub fn parents(host: &str) -> impl Iterator<Item = &str> {
    std::iter::successors(Some(host), |h| h.split_once('.').map(|(_, rest)| rest))
}

/// One category of websites.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainCategory {
    pub name: String,
    /// 1 (lowest) to 5 (gravest).
    pub severity: u8,
    pub definition: String,
}

/// A category list that cannot be used, with the line at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("domain list {category}, line {line}: {reason}")]
pub struct DomainListError {
    pub category: String,
    pub line: usize,
    pub reason: String,
}

/// A parsed category file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainList {
    pub category: DomainCategory,
    pub domains: Vec<String>,
}

/// Whether a category name is usable: lower-case letters, digits and `-`.
pub fn valid_category(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Reads a curated list strictly: every line must be a domain, a comment
/// or a `#!` directive.
///
/// # Errors
/// The first line that is none of those, or a bad directive.
pub fn parse(category: &str, text: &str) -> Result<DomainList, DomainListError> {
    let err = |line: usize, reason: String| DomainListError {
        category: category.to_owned(),
        line,
        reason,
    };
    if !valid_category(category) {
        return Err(err(
            0,
            "a category name is lower-case letters, digits and '-'".into(),
        ));
    }
    let mut list = DomainList {
        category: DomainCategory {
            name: category.to_owned(),
            severity: 3,
            definition: String::new(),
        },
        domains: Vec::new(),
    };
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let line = raw.trim();
        if let Some(directive) = line.strip_prefix("#!") {
            let (key, value) = directive
                .split_once(':')
                .ok_or_else(|| err(n, "a directive is `#! key: value`".into()))?;
            let value = value.trim();
            match key.trim() {
                "severity" => {
                    list.category.severity = value
                        .parse()
                        .ok()
                        .filter(|s| (1..=5).contains(s))
                        .ok_or_else(|| err(n, format!("severity {value:?} is not 1 to 5")))?;
                }
                "definition" => list.category.definition = value.to_owned(),
                other => return Err(err(n, format!("unknown directive {other:?}"))),
            }
            continue;
        }
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let domain =
            normalise(line).ok_or_else(|| err(n, format!("{line:?} is not a domain name")))?;
        list.domains.push(domain);
    }
    list.domains.sort();
    list.domains.dedup();
    Ok(list)
}

/// What [`import`] made of a list found elsewhere.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Imported {
    /// Sorted, without duplicates.
    pub domains: Vec<String>,
    /// Lines that held something but no usable domain: (line number, why).
    pub skipped: Vec<(usize, String)>,
}

/// Reads the usual published formats, one entry a line: plain domains,
/// hosts files (`0.0.0.0 example.com`), Adblock rules (`||example.com^`),
/// addresses (`https://example.com/page`) and wildcards (`*.example.com`).
/// Comments start with `#` or `!`. `localhost` entries of hosts files are
/// left out quietly.
pub fn import(text: &str) -> Imported {
    let mut out = Imported::default();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() || line.starts_with('!') || line.starts_with('[') {
            continue;
        }
        let mut fields = line.split_whitespace();
        let first = fields.next().unwrap_or("");
        let candidate = if is_ip(first) {
            match fields.next() {
                Some(host) => host,
                None => {
                    out.skipped
                        .push((i + 1, "an address with no host name after it".into()));
                    continue;
                }
            }
        } else {
            first
        };
        if matches!(
            candidate,
            "localhost" | "localhost.localdomain" | "local" | "broadcasthost" | "ip6-localhost"
        ) {
            continue;
        }
        let candidate = candidate
            .strip_prefix("||")
            .map(|c| c.split(['^', '/', '$']).next().unwrap_or(""))
            .unwrap_or(candidate);
        let domain = if candidate.contains("://") {
            host_of(candidate)
        } else {
            normalise(candidate)
        };
        match domain {
            Some(d) if d.contains('.') || d.contains(':') => out.domains.push(d),
            Some(d) => out.skipped.push((i + 1, format!("{d:?} has no dot"))),
            None => out
                .skipped
                .push((i + 1, format!("{candidate:?} is not a domain name"))),
        }
    }
    out.domains.sort();
    out.domains.dedup();
    out
}

fn is_ip(s: &str) -> bool {
    s.parse::<std::net::IpAddr>().is_ok()
}

/// The built-in categories and their domains, for lookups in memory. A
/// school's large imported lists are kept by the console (in its
/// database), not here.
#[derive(Debug, Clone, Default)]
pub struct DomainCategories {
    pub categories: Vec<DomainCategory>,
    index: HashMap<String, Vec<usize>>,
}

impl DomainCategories {
    /// The lists built into the binary.
    ///
    /// # Errors
    /// Only if a built-in file is broken, which the tests rule out.
    pub fn builtin() -> Result<DomainCategories, DomainListError> {
        let mut all = DomainCategories::default();
        for (name, text) in BUILTIN {
            all.add(parse(name, text)?);
        }
        Ok(all)
    }

    /// Adds a list; a category already present gains its domains.
    pub fn add(&mut self, list: DomainList) {
        let idx = match self
            .categories
            .iter()
            .position(|c| c.name == list.category.name)
        {
            Some(i) => i,
            None => {
                self.categories.push(list.category);
                self.categories.len() - 1
            }
        };
        for d in list.domains {
            let cats = self.index.entry(d).or_default();
            if !cats.contains(&idx) {
                cats.push(idx);
            }
        }
    }

    /// The categories of a host, its own and its parents'.
    pub fn lookup(&self, host: &str) -> Vec<&DomainCategory> {
        let mut found: Vec<usize> = Vec::new();
        for p in parents(host) {
            if let Some(cats) = self.index.get(p) {
                for &c in cats {
                    if !found.contains(&c) {
                        found.push(c);
                    }
                }
            }
        }
        found.iter().map(|&i| &self.categories[i]).collect()
    }

    /// The category named `name`.
    pub fn category(&self, name: &str) -> Option<&DomainCategory> {
        self.categories.iter().find(|c| c.name == name)
    }

    /// How many domains are listed, over all categories.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// True when no domain is listed.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_of_addresses() {
        assert_eq!(
            host_of("https://WWW.Example.co.uk:8443/a?b#c").as_deref(),
            Some("example.co.uk")
        );
        assert_eq!(
            host_of("http://user:pw@m.bet365.com/x").as_deref(),
            Some("m.bet365.com")
        );
        assert_eq!(host_of("http://[::1]:80/").as_deref(), Some("::1"));
        assert_eq!(host_of("http://www./").as_deref(), Some("www"));
        assert_eq!(host_of("file:///etc/passwd"), None);
        assert_eq!(host_of("chrome://settings"), None);
        assert_eq!(host_of("https://exa mple.com/"), None);
        assert_eq!(host_of("https://"), None);
    }

    #[test]
    fn subdomains_inherit_their_parents_category() {
        let mut cats = DomainCategories::default();
        cats.add(parse("gambling", "#! severity: 4\nbet365.com\n").unwrap());
        cats.add(parse("games", "miniclip.com\n").unwrap());
        let names = |h: &str| {
            cats.lookup(h)
                .iter()
                .map(|c| c.name.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(names("m.sports.bet365.com"), ["gambling"]);
        assert_eq!(names("bet365.com"), ["gambling"]);
        assert!(
            names("notbet365.com").is_empty(),
            "a suffix is not a parent"
        );
        assert!(names("com").is_empty());
        assert_eq!(cats.category("gambling").unwrap().severity, 4);
    }

    #[test]
    fn curated_lists_are_strict() {
        let e = parse("games", "ok.com\nthis is not a domain\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.to_string().contains("not a domain"), "{e}");
        let e = parse("games", "#! severity: 9\n").unwrap_err();
        assert!(e.reason.contains("1 to 5"), "{e}");
        let e = parse("Games!", "").unwrap_err();
        assert!(e.reason.contains("category name"), "{e}");
        let e = parse("games", "#! colour: red\n").unwrap_err();
        assert!(e.reason.contains("unknown directive"), "{e}");
    }

    #[test]
    fn builtin_lists_parse_and_cover_the_named_categories() {
        let cats = DomainCategories::builtin().unwrap();
        for name in [
            "adult",
            "gambling",
            "social-networking",
            "games",
            "proxies-vpns",
            "extremism",
            "self-harm",
            "dating",
        ] {
            let c = cats.category(name).unwrap_or_else(|| panic!("{name}"));
            assert!(!c.definition.is_empty(), "{name} has a definition");
        }
        assert!(cats.len() > 100, "{} domains", cats.len());
        assert_eq!(cats.lookup("vm.tiktok.com")[0].name, "social-networking");
    }

    #[test]
    fn import_reads_the_common_formats_and_says_what_it_skipped() {
        let text = "# a hosts file\n127.0.0.1 localhost\n0.0.0.0 ads.example.com\n\
                    ||tracker.example.net^\n! adblock comment\nhttps://www.Site.org/page\n\
                    *.wild.example\nplain.example # trailing\n\nnot a domain at all\n\
                    0.0.0.0\nsingle\nplain.example\n";
        let got = import(text);
        assert_eq!(
            got.domains,
            [
                "ads.example.com",
                "plain.example",
                "site.org",
                "tracker.example.net",
                "wild.example"
            ]
        );
        let lines: Vec<usize> = got.skipped.iter().map(|s| s.0).collect();
        assert_eq!(lines, [10, 11, 12], "{:?}", got.skipped);
    }
}
