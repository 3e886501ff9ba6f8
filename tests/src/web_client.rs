//! A plain HTTPS client for the web console's pages, for tests that check
//! headers, cookies and status codes without a browser.

use std::path::Path;
use std::time::Duration;

/// A plain HTTPS client for the pages (no browser): cookies by hand, no
/// redirects followed, so every header can be checked.
pub struct Web {
    pub agent: ureq::Agent,
    base: String,
    /// Sent as `X-Forwarded-For`, as a reverse proxy would.
    forwarded_for: Option<String>,
}

/// A reply: status, `Location`, `Set-Cookie` headers and the body.
pub struct Reply {
    pub status: u16,
    pub location: String,
    pub cookies: Vec<String>,
    pub body: String,
}

impl Web {
    /// A client trusting the CA of the console in `data`, for pages under
    /// `base` (`https://localhost:PORT`).
    ///
    /// # Panics
    /// The console's CA cannot be read.
    pub fn new(data: &Path, base: &str) -> Web {
        Self::trusting(&std::fs::read(data.join("ca.pem")).unwrap(), base)
    }

    /// A client trusting only the CA certificate `pem`.
    ///
    /// # Panics
    /// `pem` is not a certificate.
    pub fn trusting(pem: &[u8], base: &str) -> Web {
        use ureq::tls::{Certificate, RootCerts, TlsConfig};
        let ca = Certificate::from_pem(pem).unwrap().to_owned();
        let agent = ureq::Agent::config_builder()
            .tls_config(
                TlsConfig::builder()
                    .root_certs(RootCerts::Specific(std::sync::Arc::new(vec![ca])))
                    .build(),
            )
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_global(Some(Duration::from_secs(20)))
            // Below the console\'s 10 s keep-alive: a connection the console
            // closed while idle is never reused.
            .max_idle_age(Duration::from_secs(5))
            .build()
            .new_agent();
        Web {
            agent,
            base: base.to_owned(),
            forwarded_for: None,
        }
    }

    /// The same client, its requests saying (as a reverse proxy would)
    /// that they come from `address`.
    pub fn forwarded_for(&self, address: &str) -> Web {
        Web {
            agent: self.agent.clone(),
            base: self.base.clone(),
            forwarded_for: Some(address.to_owned()),
        }
    }

    pub fn reply(mut r: ureq::http::Response<ureq::Body>) -> Reply {
        let header = |name: &str| {
            r.headers()
                .get_all(name)
                .iter()
                .map(|v| v.to_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        };
        let location = header("location").join("");
        let cookies = header("set-cookie");
        Reply {
            status: r.status().as_u16(),
            location,
            cookies,
            body: r.body_mut().read_to_string().unwrap_or_default(),
        }
    }

    /// # Panics
    /// The request cannot be made at all.
    pub fn get(&self, path: &str, cookie: &str) -> Reply {
        Self::reply(
            self.agent
                .get(format!("{}{path}", self.base))
                .header("Cookie", cookie)
                .header(
                    "X-Forwarded-For",
                    self.forwarded_for.as_deref().unwrap_or(""),
                )
                .call()
                .unwrap(),
        )
    }

    /// # Panics
    /// The request cannot be made at all.
    pub fn post(&self, path: &str, cookie: &str, fields: &[(&str, &str)]) -> Reply {
        Self::reply(
            self.agent
                .post(format!("{}{path}", self.base))
                .header("Cookie", cookie)
                .header(
                    "X-Forwarded-For",
                    self.forwarded_for.as_deref().unwrap_or(""),
                )
                .send_form(fields.iter().copied())
                .unwrap(),
        )
    }

    /// Signs in; returns the session cookie (`name=value`) and the reply.
    ///
    /// # Panics
    /// The login page sets no login cookie.
    pub fn sign_in(&self, name: &str, password: &str, old: &str) -> (String, Reply) {
        self.sign_in_to(name, password, old, "/inbox")
    }

    /// As [`Web::sign_in`], asking to go to `next` afterwards.
    pub fn sign_in_to(&self, name: &str, password: &str, old: &str, next: &str) -> (String, Reply) {
        let page = self.get("/login", "");
        let login = cookie_pair(&page.cookies, "__Host-sg_login").expect("a login cookie");
        let token = login.split_once('=').unwrap().1.to_owned();
        let cookie = if old.is_empty() {
            login.clone()
        } else {
            format!("{login}; {old}")
        };
        let r = self.post(
            "/login",
            &cookie,
            &[
                ("csrf", &token),
                ("name", name),
                ("password", password),
                ("next", next),
            ],
        );
        (
            cookie_pair(&r.cookies, "__Host-sg_session").unwrap_or_default(),
            r,
        )
    }
}

/// The `name=value` pair of the cookie `name` among `Set-Cookie` values.
pub fn cookie_pair(set_cookies: &[String], name: &str) -> Option<String> {
    set_cookies
        .iter()
        .find(|c| c.starts_with(&format!("{name}=")))
        .map(|c| c.split(';').next().unwrap().to_owned())
}
