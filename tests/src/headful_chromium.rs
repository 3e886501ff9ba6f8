//! A real, headful Chromium on the test X desktop, and local web sites for
//! it to visit (`http://NAME.test:PORT/`, each page titled `Page NAME`).

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::desktop::XDesktop;

/// Starts a web server for `*.test`: each host gets a page titled `Page <name>`; returns its port.
///
/// # Errors
/// No port can be bound.
pub fn sites() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut reader = BufReader::new(&stream);
                let mut host = String::new();
                let mut line = String::new();
                while reader.read_line(&mut line).unwrap_or(0) > 0 {
                    if line == "\r\n" {
                        break;
                    }
                    if let Some(h) = line.to_ascii_lowercase().strip_prefix("host:") {
                        host = h.trim().split(':').next().unwrap_or("").to_owned();
                    }
                    line.clear();
                }
                let name = host.split('.').next().unwrap_or("unknown");
                let body = format!(
                    "<html><head><title>Page {name}</title></head><body><h1>{name}</h1>{}</body></html>",
                    "text ".repeat(200)
                );
                let mut stream = &stream;
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            });
        }
    });
    Ok(port)
}

/// Starts a web server for `*.test` serving `pages` (path → HTML, the
/// same whatever the host); any other path is a 404. Returns its port.
///
/// # Errors
/// No port can be bound.
pub fn pages(pages: Vec<(&'static str, String)>) -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let pages = std::sync::Arc::new(pages);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let pages = pages.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(&stream);
                let mut request = String::new();
                let _ = reader.read_line(&mut request);
                let mut line = String::new();
                while reader.read_line(&mut line).unwrap_or(0) > 0 && line != "\r\n" {
                    line.clear();
                }
                let path = request.split(' ').nth(1).unwrap_or("/");
                let path = path.split('?').next().unwrap_or(path);
                let (status, body) = match pages.iter().find(|(p, _)| *p == path) {
                    Some((_, html)) => ("200 OK", html.clone()),
                    None => ("404 Not Found", "<title>Not found</title>".to_owned()),
                };
                let mut stream = &stream;
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            });
        }
    });
    Ok(port)
}

/// A headful Chromium on an [`XDesktop`], resolving `*.test` to [`sites`].
pub struct Chromium<'a> {
    pub x: &'a XDesktop,
    pub profile: std::path::PathBuf,
    pub home: std::path::PathBuf,
    pub port: u16,
    pub children: Vec<std::process::Child>,
    /// More command-line switches (`--load-extension=…`).
    pub args: Vec<String>,
    /// Run as this account (a pupil), not the test's own.
    pub user: Option<(u32, u32)>,
}

/// The page-reader extension's folder (`agent/browser-extension`).
pub fn extension_dir() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../agent/browser-extension")
        .canonicalize()
        .expect("agent/browser-extension exists")
}

impl<'a> Chromium<'a> {
    /// A Chromium with `home` and its default profile
    /// (`home/.config/chromium`), where `browser-integration install
    /// --user` puts the host manifest; started by [`Chromium::open`].
    pub fn new(x: &'a XDesktop, home: &std::path::Path, port: u16) -> Chromium<'a> {
        Chromium {
            x,
            profile: home.join(".config/chromium"),
            home: home.to_owned(),
            port,
            children: Vec::new(),
            args: Vec::new(),
            user: None,
        }
    }

    /// Another profile folder (`--user-data-dir`).
    #[must_use]
    pub fn profile(mut self, profile: std::path::PathBuf) -> Chromium<'a> {
        self.profile = profile;
        self
    }

    /// With the page-reader extension loaded unpacked.
    #[must_use]
    pub fn with_extension(mut self) -> Chromium<'a> {
        self.args
            .push(format!("--load-extension={}", extension_dir().display()));
        self
    }

    /// Run as a pupil's account.
    #[must_use]
    pub fn as_user(mut self, pupil: &crate::pupil::Pupil) -> Chromium<'a> {
        self.user = Some((pupil.uid, pupil.gid));
        self
    }
}

impl Chromium<'_> {
    /// Opens `url` (the first call starts the browser; later ones hand the
    /// address to it, as a new tab).
    pub fn open(&mut self, url: &str) -> anyhow::Result<()> {
        let mut cmd = std::process::Command::new("chromium");
        if let Some((uid, gid)) = self.user {
            use std::os::unix::process::CommandExt;
            cmd.uid(uid).gid(gid);
        }
        let child = cmd
            .args([
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--no-default-browser-check",
                "--password-store=basic",
                "--disable-features=Translate,MediaRouter,DisableLoadExtensionCommandLineSwitch",
                "--window-position=0,0",
                "--window-size=1200,760",
            ])
            .args(&self.args)
            .arg(format!("--user-data-dir={}", self.profile.display()))
            .arg(format!(
                "--host-resolver-rules=MAP *.test 127.0.0.1:{}",
                self.port
            ))
            .arg(url)
            .env("DISPLAY", &self.x.display)
            .env("HOME", &self.home)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .context("cannot start chromium")?;
        self.children.push(child);
        Ok(())
    }

    /// Waits until the front window is this page, activating the
    /// browser's window; returns when it was first seen in front.
    pub fn front(&self, title: &str) -> anyhow::Result<Instant> {
        let want = format!("{title} - Chromium");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(name) = self.x.xdotool(&["getactivewindow", "getwindowname"])
                && name.trim() == want
            {
                return Ok(Instant::now());
            }
            if let Ok(ids) =
                self.x
                    .xdotool(&["search", "--onlyvisible", "--name", &format!("^{want}$")])
                && let Some(id) = ids.lines().next()
            {
                let _ = self.x.xdotool(&["windowactivate", "--sync", id]);
            }
            if Instant::now() > deadline {
                bail!("{want:?} never came to the front");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Chromium<'_> {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::process::Command::new("pkill")
            .args(["-f", &format!("user-data-dir={}", self.profile.display())])
            .status();
    }
}
