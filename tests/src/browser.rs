//! A real headless Chromium driven over WebDriver (Debian's
//! `chromium-driver`, through the `fantoccini` client), for tests of the
//! web console. The browser trusts exactly the console's server key (by its
//! SPKI hash), so the `__Host-` cookies are set over real HTTPS. The driver
//! and the browser are killed on drop; a missing tool fails the test and
//! names the package.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use base64::Engine;
use fantoccini::{Client, ClientBuilder, Locator};
use sha2::Digest;

use crate::desktop::require;

/// A headless Chromium and its driver.
pub struct Browser {
    pub client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        // The driver leads its own process group, with the browser in it.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.driver.id())])
            .status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// The base64 SHA-256 of a certificate's SubjectPublicKeyInfo, as
/// Chromium's `--ignore-certificate-errors-spki-list` wants it.
///
/// # Errors
/// If the PEM is not a certificate.
pub fn spki_hash(cert_pem: &str) -> anyhow::Result<String> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes())
        .map_err(|e| anyhow::anyhow!("the server certificate PEM does not parse: {e}"))?;
    let cert = pem
        .parse_x509()
        .map_err(|e| anyhow::anyhow!("the server certificate does not parse: {e}"))?;
    let spki = cert.tbs_certificate.subject_pki.raw;
    Ok(base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(spki)))
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

impl Browser {
    /// Starts chromedriver and a headless Chromium (1400x1000) that trusts
    /// the server certificate at `server_pem`.
    ///
    /// # Errors
    /// A tool is missing, or the driver does not answer within 30 s.
    pub async fn start(server_pem: &Path) -> anyhow::Result<Browser> {
        require("chromedriver", "chromium-driver")?;
        require("chromium", "chromium")?;
        let spki = spki_hash(&std::fs::read_to_string(server_pem)?)?;
        let port = free_port()?;
        let mut cmd = Command::new("chromedriver");
        cmd.arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let driver = cmd.spawn().context("cannot start chromedriver")?;
        let profile = tempfile::tempdir()?;
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--window-size=1400,1000",
                    format!("--ignore-certificate-errors-spki-list={spki}"),
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            }),
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        let client = loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector)
                .capabilities(caps.clone())
                .connect(&format!("http://127.0.0.1:{port}"))
                .await
            {
                Ok(c) => break c,
                Err(e) if Instant::now() > deadline => {
                    bail!("chromedriver did not start a browser within 30 s: {e}")
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        };
        Ok(Browser {
            client,
            driver,
            _profile: profile,
        })
    }

    /// Waits (at most `within`) for an element matching `css`.
    ///
    /// # Errors
    /// None appeared in time.
    pub async fn wait_css(
        &self,
        css: &str,
        within: Duration,
    ) -> anyhow::Result<fantoccini::elements::Element> {
        let deadline = Instant::now() + within;
        loop {
            if let Ok(e) = self.client.find(Locator::Css(css)).await {
                return Ok(e);
            }
            if Instant::now() > deadline {
                let url = self
                    .client
                    .current_url()
                    .await
                    .map(|u| u.to_string())
                    .unwrap_or_default();
                let text = self.body_text().await.unwrap_or_default();
                bail!("no {css:?} within {within:?} on {url}; the page says:\n{text}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The visible text of the page.
    ///
    /// # Errors
    /// The browser is gone.
    pub async fn body_text(&self) -> anyhow::Result<String> {
        Ok(self.client.find(Locator::Css("body")).await?.text().await?)
    }

    /// The path (and query) of the current page.
    ///
    /// # Errors
    /// The browser is gone.
    pub async fn path(&self) -> anyhow::Result<String> {
        let url = self.client.current_url().await?;
        Ok(match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        })
    }

    /// Signs in through the login form at `base`.
    ///
    /// # Errors
    /// The form is missing or the sign-in does not leave the login page.
    pub async fn sign_in(&self, base: &str, name: &str, password: &str) -> anyhow::Result<()> {
        self.client.goto(&format!("{base}/login")).await?;
        self.client
            .find(Locator::Css("input[name=name]"))
            .await?
            .send_keys(name)
            .await?;
        self.client
            .find(Locator::Css("input[name=password]"))
            .await?
            .send_keys(password)
            .await?;
        self.client
            .find(Locator::Css("main.login button[type=submit]"))
            .await?
            .click()
            .await?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.path().await?.starts_with("/login") {
            if Instant::now() > deadline {
                bail!("still on the sign-in page: {}", self.body_text().await?);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }

    /// Saves a PNG of the page to `target/web-artifacts/NAME.png` and
    /// returns its path.
    ///
    /// # Errors
    /// The screenshot or the write fails.
    pub async fn save_screenshot(&self, name: &str) -> anyhow::Result<PathBuf> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/web-artifacts");
        std::fs::create_dir_all(&dir)?;
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, self.client.screenshot().await?)?;
        Ok(path)
    }
}
