//! The harness for end-to-end tests: the real `console-server` binary run
//! as a child process on loopback ports it picks itself, its command line,
//! an HTTPS client for its API that trusts only its CA, and device
//! identities. Every wait has a timeout; every child is killed on drop.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub mod agent_process;
pub mod balancer;
pub mod browser;
pub mod desktop;
pub mod fault_proxy;
pub mod firefox;
pub mod headful_chromium;
pub mod laptop;
pub mod load;
pub mod postgres;
pub mod pupil;
pub mod session_bus;
pub mod sinks;
pub mod small_disk;
pub mod web_client;

use anyhow::{Context, bail};
use protocol::device_link::DeviceIdentity;
use protocol::pki::Authority;
use protocol::{Capture, Screenshot, Source, UnixMillis};

/// Under `cargo test -p tests` (or nextest), cargo does not rebuild other
/// packages' binaries: build the one asked for once per process, so a test
/// never runs a stale console.
fn build_once(name: &str, release: bool) -> anyhow::Result<()> {
    static BUILT: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let Some(cargo) = std::env::var_os("CARGO") else {
        return Ok(());
    };
    let mut built = BUILT.lock().unwrap_or_else(|p| p.into_inner());
    if built.iter().any(|b| b == name) {
        return Ok(());
    }
    // The product's binaries are named after their packages; the tools
    // (simulate, storm, …) are binaries of this `tests` package.
    let package = if ["agent", "console-server", "wordlists"].contains(&name) {
        name
    } else {
        "tests"
    };
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--quiet", "-p", package, "--bin", name]);
    if release {
        cmd.arg("--release");
    }
    let status = cmd
        .status()
        .context("cannot run cargo to build the console")?;
    if !status.success() {
        bail!("`cargo build -p {package} --bin {name}` failed");
    }
    built.push(name.to_owned());
    Ok(())
}

/// A binary of this workspace, built next to the running test or tool.
///
/// # Errors
/// If it has not been built, naming the command that builds it.
pub fn workspace_binary(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let mut dir = exe.parent().context("the test binary has no directory")?;
    if dir.ends_with("deps") {
        dir = dir.parent().context("no profile directory")?;
    }
    let path = dir.join(name);
    build_once(name, dir.ends_with("release"))?;
    if !path.exists() {
        bail!(
            "{} is missing; build it first with `cargo build -p {name}` (nextest and `cargo test --workspace` build it)",
            path.display()
        );
    }
    Ok(path)
}

/// A `console-server serve` child process.
pub struct ConsoleProcess {
    child: Child,
    pub data: PathBuf,
    pub agent_addr: String,
    pub web_addr: String,
    pub log: PathBuf,
}

impl ConsoleProcess {
    /// Starts the console on `data` with both listeners on `127.0.0.1:0`
    /// and waits (30 s at most) until it says where it listens.
    ///
    /// # Errors
    /// If the binary is missing, fails to start, or says nothing in time.
    pub fn start(data: &Path) -> anyhow::Result<ConsoleProcess> {
        Self::start_on(data, "127.0.0.1:0", "127.0.0.1:0")
    }

    /// As [`ConsoleProcess::start`], on given addresses.
    ///
    /// # Errors
    /// As [`ConsoleProcess::start`].
    pub fn start_on(data: &Path, agent: &str, web: &str) -> anyhow::Result<ConsoleProcess> {
        Self::start_with(data, agent, web, &[])
    }

    /// As [`ConsoleProcess::start_on`], with more arguments to `serve`
    /// (`--database URL`).
    ///
    /// # Errors
    /// As [`ConsoleProcess::start`].
    pub fn start_with(
        data: &Path,
        agent: &str,
        web: &str,
        extra: &[&str],
    ) -> anyhow::Result<ConsoleProcess> {
        let log = data.with_extension(format!("{}.log", UnixMillis::now().0));
        let mut child = Command::new(workspace_binary("console-server")?)
            .args(["serve", "--data"])
            .arg(data)
            .args(["--agent-listen", agent, "--web-listen", web])
            .args(extra)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(File::create(&log)?)
            .spawn()
            .context("cannot start console-server")?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match rx.recv_timeout(left) {
                Ok(line) => line,
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    bail!(
                        "console-server did not report its listeners within 30 s; its log:\n{}",
                        std::fs::read_to_string(&log).unwrap_or_default()
                    );
                }
            };
            if let Some(rest) = line.strip_prefix("listening: agents on ") {
                let (agent, web) = rest
                    .split_once(", web console and API on https://")
                    .context("unexpected listening line")?;
                return Ok(ConsoleProcess {
                    child,
                    data: data.to_owned(),
                    agent_addr: agent.to_owned(),
                    web_addr: web.to_owned(),
                    log,
                });
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL: no chance to flush or say goodbye.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits (up to `within`) for the process to exit.
    ///
    /// # Errors
    /// If it is still running after `within` (it is then killed).
    pub fn terminate(&mut self, within: Duration) -> anyhow::Result<ExitStatus> {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .context("cannot run kill")?;
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill();
        bail!("console-server did not exit within {within:?} of SIGTERM")
    }

    /// The console's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for ConsoleProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs `console-server ARGS` to completion (60 s at most) and returns its
/// standard output.
///
/// # Errors
/// If it fails, with its standard error.
pub fn console_cli(args: &[&str], stdin: Option<&str>) -> anyhow::Result<String> {
    use std::io::Write;
    let mut child = Command::new(workspace_binary("console-server")?)
        .args(args)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .expect("stdin is piped")
            .write_all(text.as_bytes())?;
    }
    drop(child.stdin.take());
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "console-server {args:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8(out.stdout)?)
}

fn last_line(text: &str) -> String {
    text.lines().last().unwrap_or_default().trim().to_owned()
}

/// A one-time enrollment token for the console at `address`.
///
/// # Errors
/// If the CLI fails.
pub fn enroll_token(data: &Path, address: &str, ttl: &str) -> anyhow::Result<String> {
    let data = data.to_str().context("a UTF-8 path")?;
    Ok(last_line(&console_cli(
        &[
            "enroll-token",
            "--data",
            data,
            "--ttl",
            ttl,
            "--address",
            address,
        ],
        None,
    )?))
}

/// A bearer token for the API.
///
/// # Errors
/// If the CLI fails.
pub fn api_token(data: &Path, name: &str, role: &str) -> anyhow::Result<String> {
    let data = data.to_str().context("a UTF-8 path")?;
    Ok(last_line(&console_cli(
        &["api-token", "--data", data, "--name", name, "--role", role],
        None,
    )?))
}

/// A device certificate minted straight from the CA in `data` (as the load
/// simulator does), for a fresh device id.
///
/// # Errors
/// If the CA files cannot be read.
pub fn identity_from_ca(data: &Path) -> anyhow::Result<DeviceIdentity> {
    let ca_pem = std::fs::read_to_string(data.join("ca.pem"))?;
    let key_pem = std::fs::read_to_string(data.join("ca-key.pem"))?;
    let authority = Authority::from_pem(&ca_pem, &key_pem)?;
    identity_from(&authority)
}

/// A device certificate from an authority already loaded.
///
/// # Errors
/// If signing fails.
pub fn identity_from(authority: &Authority) -> anyhow::Result<DeviceIdentity> {
    let device_id = uuid::Uuid::now_v7();
    let issued = authority.issue_client(&device_id.to_string())?;
    Ok(DeviceIdentity {
        device_id,
        certificate_pem: issued.cert_pem,
        key_pem: issued.key_pem,
        ca_pem: authority.cert_pem().to_owned(),
    })
}

/// A PNG-signed image of about `kb` kilobytes (the console checks the
/// signature, not the pixels), different for each `seed`.
pub fn fake_png(kb: usize, seed: u64) -> Vec<u8> {
    let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    while bytes.len() < kb * 1024 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        bytes.extend_from_slice(&x.to_le_bytes());
    }
    bytes
}

/// A capture as an agent would send it.
pub fn capture(context: &str, term: &str, image: Option<Vec<u8>>) -> Capture {
    let start = context.find(term).unwrap_or(0);
    let end = (start + term.len()).min(context.len());
    Capture {
        id: uuid::Uuid::now_v7(),
        time: UnixMillis::now(),
        user: "pupil.one".into(),
        source: Source::Typed,
        app: "xterm".into(),
        window_title: "Chat".into(),
        url: None,
        term: term.into(),
        category: "self-harm".into(),
        severity: 5,
        context: context.into(),
        context_match: (start as u32, end as u32),
        screenshot: match image {
            Some(png) => Screenshot::Png(png),
            None => Screenshot::Missing("test".into()),
        },
    }
}

/// An HTTPS client for the console's API that trusts only its CA.
pub struct Api {
    agent: ureq::Agent,
    base: String,
    token: String,
}

impl Api {
    /// # Errors
    /// If the CA cannot be read.
    pub fn new(data: &Path, web_addr: &str, token: &str) -> anyhow::Result<Api> {
        use ureq::tls::{Certificate, RootCerts, TlsConfig};
        let pem = std::fs::read(data.join("ca.pem"))?;
        let ca = Certificate::from_pem(&pem)?.to_owned();
        let agent = ureq::Agent::config_builder()
            .tls_config(
                TlsConfig::builder()
                    .root_certs(RootCerts::Specific(Arc::new(vec![ca])))
                    .build(),
            )
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            // Below the console\'s 10 s keep-alive: a connection the console
            // closed while idle is never reused.
            .max_idle_age(Duration::from_secs(5))
            .build()
            .new_agent();
        let port = web_addr.rsplit(':').next().unwrap_or_default();
        Ok(Api {
            agent,
            base: format!("https://localhost:{port}"),
            token: token.to_owned(),
        })
    }

    /// The same client and token, for a console listening at `web_addr`
    /// (another instance, or the same console started again).
    pub fn at(&self, web_addr: &str) -> Api {
        let port = web_addr.rsplit(':').next().unwrap_or_default();
        Api {
            agent: self.agent.clone(),
            base: format!("https://localhost:{port}"),
            token: self.token.clone(),
        }
    }

    /// The same client with another bearer token.
    pub fn with_token(&self, token: &str) -> Api {
        Api {
            agent: self.agent.clone(),
            base: self.base.clone(),
            token: token.to_owned(),
        }
    }

    /// GET; returns the status and the body as JSON (`null` if not JSON).
    ///
    /// # Errors
    /// A network or TLS failure.
    pub fn get(&self, path: &str) -> anyhow::Result<(u16, serde_json::Value)> {
        json_reply(
            self.agent
                .get(format!("{}{path}", self.base))
                .header("Authorization", format!("Bearer {}", self.token))
                .call()?,
        )
    }

    /// GET; returns the status, content type and raw body.
    ///
    /// # Errors
    /// A network or TLS failure.
    pub fn get_bytes(&self, path: &str) -> anyhow::Result<(u16, String, Vec<u8>)> {
        let mut resp = self
            .agent
            .get(format!("{}{path}", self.base))
            .header("Authorization", format!("Bearer {}", self.token))
            .call()?;
        let status = resp.status().as_u16();
        let ctype = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let body = resp
            .body_mut()
            .with_config()
            .limit(64 * 1024 * 1024)
            .read_to_vec()?;
        Ok((status, ctype, body))
    }

    /// POST (or PUT) a JSON body.
    ///
    /// # Errors
    /// A network or TLS failure.
    pub fn send(
        &self,
        method: &str,
        path: &str,
        body: &serde_json::Value,
    ) -> anyhow::Result<(u16, serde_json::Value)> {
        let url = format!("{}{path}", self.base);
        let auth = format!("Bearer {}", self.token);
        let req = match method {
            "PUT" => self.agent.put(url),
            "DELETE" => {
                return json_reply(
                    self.agent
                        .delete(url)
                        .header("Authorization", auth)
                        .call()?,
                );
            }
            _ => self.agent.post(url),
        };
        json_reply(req.header("Authorization", auth).send_json(body)?)
    }
}

/// A response's status and its body as JSON (`null` if not JSON).
fn json_reply(
    mut resp: ureq::http::Response<ureq::Body>,
) -> anyhow::Result<(u16, serde_json::Value)> {
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string()?;
    Ok((status, serde_json::from_str(&text).unwrap_or_default()))
}

/// The console's database, read-only, for checking what was stored.
///
/// # Errors
/// If it cannot be opened.
pub fn open_db(data: &Path) -> anyhow::Result<rusqlite::Connection> {
    let conn = rusqlite::Connection::open_with_flags(
        data.join("console.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )?;
    conn.busy_timeout(Duration::from_secs(10))?;
    Ok(conn)
}

/// How many times each of `ids` is stored as a capture: (missing, doubled).
/// The schema makes the id a primary key, so `doubled` only guards against
/// that changing; a test that must catch doubling also counts all rows.
///
/// # Errors
/// If the database cannot be read.
pub fn count_stored(data: &Path, ids: &[uuid::Uuid]) -> anyhow::Result<(usize, usize)> {
    let conn = open_db(data)?;
    let mut missing = 0;
    let mut doubled = 0;
    let mut stmt = conn.prepare("SELECT COUNT(*) FROM captures WHERE id = ?1")?;
    for id in ids {
        let n: i64 = stmt.query_row([id.hyphenated().to_string()], |r| r.get(0))?;
        match n {
            0 => missing += 1,
            1 => {}
            _ => doubled += 1,
        }
    }
    Ok((missing, doubled))
}

/// The Big List of Naughty Strings (MIT; `tests/assets/blns/`), plus
/// control characters, bidi overrides, zero-width characters, spreadsheet
/// formulas and markup breakouts.
pub fn naughty_strings() -> Vec<String> {
    let mut all: Vec<String> =
        serde_json::from_str(include_str!("../assets/blns/blns.json")).expect("blns.json");
    all.push((1u8..32).map(char::from).collect());
    for s in [
        "\u{202E}fdp.exe\u{202C} \u{2066}isolate\u{2069} \u{200F}rtl",
        "zero\u{200B}width\u{200D}joiner\u{FEFF}bom",
        "\u{7F}\u{80}\u{9F} c1 controls",
        "=cmd|' /C calc'!A0",
        "+SUM(1,1)",
        "@SUM(1,1)",
        "-1+1",
        "</textarea><script>alert(9)</script>",
        "javascript:alert(10)",
        "(\\) \\) ( ) PDF string delimiters",
    ] {
        all.push(s.to_owned());
    }
    all
}
