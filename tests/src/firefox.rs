//! A real, headful Firefox ESR (Debian's `firefox-esr`) on the test X
//! desktop, with a test profile: the page-reader extension sideloaded into
//! it unpacked (a proxy file naming the extension's folder; ESR honours
//! `xpinstall.signatures.required = false`), `*.test` names resolved to
//! this machine, and first-run pages, updates and telemetry off.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::desktop::XDesktop;

/// A Firefox on an [`XDesktop`].
pub struct Firefox<'a> {
    pub x: &'a XDesktop,
    pub profile: PathBuf,
    child: Option<Child>,
}

impl<'a> Firefox<'a> {
    /// Makes a profile in `profile` resolving `hosts` to 127.0.0.1, with
    /// the unpacked extension in `extension` (if any) installed.
    ///
    /// # Errors
    /// The profile cannot be written.
    pub fn new(
        x: &'a XDesktop,
        profile: &Path,
        hosts: &[&str],
        extension: Option<(&str, &Path)>,
    ) -> anyhow::Result<Firefox<'a>> {
        crate::desktop::require("firefox-esr", "firefox-esr")?;
        std::fs::create_dir_all(profile.join("extensions"))?;
        let prefs = [
            ("xpinstall.signatures.required", "false".to_owned()),
            ("extensions.autoDisableScopes", "0".to_owned()),
            ("extensions.enabledScopes", "15".to_owned()),
            ("extensions.startupScanScopes", "15".to_owned()),
            ("network.dns.localDomains", format!("{:?}", hosts.join(","))),
            ("network.proxy.type", "0".to_owned()),
            ("browser.shell.checkDefaultBrowser", "false".to_owned()),
            (
                "browser.startup.homepage_override.mstone",
                "\"ignore\"".to_owned(),
            ),
            ("browser.aboutwelcome.enabled", "false".to_owned()),
            ("startup.homepage_welcome_url", "\"\"".to_owned()),
            (
                "datareporting.policy.dataSubmissionEnabled",
                "false".to_owned(),
            ),
            (
                "toolkit.telemetry.reportingpolicy.firstRun",
                "false".to_owned(),
            ),
            ("app.update.auto", "false".to_owned()),
            ("browser.tabs.warnOnClose", "false".to_owned()),
            ("browser.sessionstore.resume_from_crash", "false".to_owned()),
        ];
        let user_js: String = prefs
            .iter()
            .map(|(k, v)| format!("user_pref({k:?}, {v});\n"))
            .collect();
        std::fs::write(profile.join("user.js"), user_js)?;
        if let Some((id, dir)) = extension {
            std::fs::write(
                profile.join("extensions").join(id),
                format!("{}\n", dir.display()),
            )?;
        }
        Ok(Firefox {
            x,
            profile: profile.to_owned(),
            child: None,
        })
    }

    /// Starts Firefox on `url`, with `home` as its home.
    ///
    /// # Errors
    /// It cannot start.
    pub fn open(&mut self, url: &str, home: &Path) -> anyhow::Result<()> {
        if self.child.is_some() {
            bail!("this Firefox is already running");
        }
        let child = Command::new("firefox-esr")
            .args(["--no-remote", "--new-instance", "--profile"])
            .arg(&self.profile)
            .arg(url)
            .env("DISPLAY", &self.x.display)
            .env("HOME", home)
            .env("MOZ_CRASHREPORTER_DISABLE", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.profile.with_extension("log"))?)
            .spawn()
            .context("cannot start firefox-esr")?;
        self.child = Some(child);
        Ok(())
    }

    /// Firefox's own output so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.profile.with_extension("log")).unwrap_or_default()
    }

    /// Waits until a window whose title starts with `title` is in front,
    /// activating it; returns when it was first seen in front.
    ///
    /// # Errors
    /// It never comes to the front within 60 s.
    pub fn front(&self, title: &str) -> anyhow::Result<Instant> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(name) = self.x.xdotool(&["getactivewindow", "getwindowname"])
                && name.trim().starts_with(title)
            {
                return Ok(Instant::now());
            }
            if let Ok(ids) =
                self.x
                    .xdotool(&["search", "--onlyvisible", "--name", &format!("^{title}")])
                && let Some(id) = ids.lines().next()
            {
                let _ = self.x.xdotool(&["windowactivate", "--sync", id]);
            }
            if Instant::now() > deadline {
                bail!(
                    "{title:?} never came to the front; Firefox said:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Firefox<'_> {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = Command::new("pkill")
            .args(["-f", &format!("profile {}", self.profile.display())])
            .status();
    }
}
