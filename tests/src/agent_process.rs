//! The real `agent` binary as a child process: enroll, run (or service and
//! session separately), feed, status, and kill.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};

use crate::desktop::wait_for;
use crate::{Api, ConsoleProcess, api_token, enroll_token, workspace_binary};

/// Runs `agent ARGS` to completion and returns (success, stdout, stderr).
///
/// # Errors
/// The binary is missing or cannot run.
pub fn agent_cli(args: &[&str], env: &[(&str, &str)]) -> anyhow::Result<(bool, String, String)> {
    let out = Command::new(workspace_binary("agent")?)
        .args(args)
        .envs(env.iter().copied())
        .env("AGENT_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .context("cannot run agent")?;
    Ok((
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// Enrolls a state directory with a token, given in a file (as the
/// installation guide says: a token on the command line shows in the
/// process list).
///
/// # Errors
/// Enrollment fails.
pub fn enroll_agent(state: &Path, token: &str) -> anyhow::Result<()> {
    let file = state.with_extension("token");
    std::fs::write(&file, token)?;
    let result = agent_cli(
        &[
            "enroll",
            "--token-file",
            file.to_str().context("a UTF-8 path")?,
            "--state-dir",
            state.to_str().context("a UTF-8 path")?,
        ],
        &[],
    );
    let _ = std::fs::remove_file(&file);
    let (ok, out, err) = result?;
    if !ok {
        bail!("agent enroll failed: {out}{err}");
    }
    Ok(())
}

/// `agent enroll --state-dir STATE` with the token on standard input;
/// returns (success, stdout, stderr).
///
/// # Errors
/// The binary is missing or cannot run.
pub fn enroll_agent_from_stdin(
    state: &Path,
    token: &str,
) -> anyhow::Result<(bool, String, String)> {
    use std::io::Write;
    let mut child = Command::new(workspace_binary("agent")?)
        .args(["enroll", "--state-dir"])
        .arg(state)
        .env("AGENT_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot run agent")?;
    child
        .stdin
        .take()
        .context("stdin is piped")?
        .write_all(format!("{token}\n").as_bytes())?;
    let out = child.wait_with_output()?;
    Ok((
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// `agent browser-integration install --user` for `home`, talking to the
/// service of `state`; checks the Chromium and Firefox host manifests are
/// there.
///
/// # Errors
/// The command fails or a manifest is missing.
pub fn install_page_reader_host(state: &Path, home: &Path) -> anyhow::Result<()> {
    let state = state.to_str().context("a UTF-8 path")?;
    let home_str = home.to_str().context("a UTF-8 path")?;
    let (ok, out, err) = agent_cli(
        &[
            "browser-integration",
            "install",
            "--user",
            "--state-dir",
            state,
        ],
        &[("HOME", home_str)],
    )?;
    if !ok {
        bail!("browser-integration install --user failed: {out}{err}");
    }
    for manifest in [
        ".config/chromium/NativeMessagingHosts/org.safeguard.agent.json",
        ".mozilla/native-messaging-hosts/org.safeguard.agent.json",
    ] {
        if !home.join(manifest).exists() {
            bail!("no {manifest} after browser-integration install: {out}");
        }
    }
    Ok(())
}

/// `agent feed`: hands text to the running agent as an app's on-screen text.
///
/// # Errors
/// The agent refuses or is not running.
pub fn feed(state: &Path, app: &str, title: &str, text: &str) -> anyhow::Result<()> {
    let state = state.to_str().context("a UTF-8 path")?;
    let (ok, out, err) = agent_cli(
        &[
            "feed",
            "--state-dir",
            state,
            "--app",
            app,
            "--title",
            title,
            "--",
            text,
        ],
        &[],
    )?;
    if !ok {
        bail!("agent feed failed: {out}{err}");
    }
    Ok(())
}

/// The semantic layer's model in the source tree, for `--semantic-model`;
/// an error naming the script that fetches it when it is missing.
///
/// # Errors
/// The model is not there.
pub fn semantic_model() -> anyhow::Result<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../wordlists/semantic/model");
    anyhow::ensure!(
        dir.join("model.safetensors").exists(),
        "{} has no model: run wordlists/semantic/fetch-model.sh (tests/run does)",
        dir.display()
    );
    Ok(dir.to_string_lossy().into_owned())
}

/// `agent status`'s output.
///
/// # Errors
/// The binary cannot run.
pub fn status(state: &Path) -> anyhow::Result<String> {
    let state = state.to_str().context("a UTF-8 path")?;
    let (_, out, err) = agent_cli(&["status", "--state-dir", state], &[])?;
    Ok(format!("{out}{err}"))
}

/// The spooled record count `agent status` reports.
///
/// # Errors
/// No spool line in the status.
pub fn spool_depth(state: &Path) -> anyhow::Result<u64> {
    let text = status(state)?;
    text.lines()
        .find_map(|l| l.strip_prefix("spool: "))
        .and_then(|l| l.split(' ').next()?.parse().ok())
        .with_context(|| format!("no spool depth in the status:\n{text}"))
}

/// A running `agent run|service|session` process; killed on drop.
pub struct AgentProcess {
    child: Child,
    pub log: PathBuf,
}

/// What the AUP window logs once it holds the keyboard and pointer.
pub const HELD: &str = "the keyboard and pointer are held by the window";

impl AgentProcess {
    /// Starts `agent ROLE --state-dir STATE EXTRA…` with `DISPLAY` (if any)
    /// and `HOME`, logging to a file beside the state directory, and waits
    /// until its socket answers (for `run` and `service`).
    ///
    /// # Errors
    /// It cannot start, or its socket does not answer within 30 s.
    pub fn start(
        role: &str,
        state: &Path,
        display: Option<&str>,
        home: &Path,
        extra: &[&str],
    ) -> anyhow::Result<AgentProcess> {
        Self::start_with(
            Command::new(workspace_binary("agent")?),
            role,
            state,
            display,
            home,
            extra,
            &[],
        )
    }

    /// As [`AgentProcess::start`], with more environment variables.
    ///
    /// # Errors
    /// As [`AgentProcess::start`].
    pub fn start_with_env(
        role: &str,
        state: &Path,
        display: Option<&str>,
        home: &Path,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> anyhow::Result<AgentProcess> {
        let cmd = Command::new(workspace_binary("agent")?);
        Self::start_with(cmd, role, state, display, home, extra, env)
    }

    /// As [`AgentProcess::start`], as a pupil's account (its home).
    ///
    /// # Errors
    /// As [`AgentProcess::start`].
    pub fn start_as(
        pupil: &crate::pupil::Pupil,
        role: &str,
        state: &Path,
        display: Option<&str>,
        extra: &[&str],
    ) -> anyhow::Result<AgentProcess> {
        let cmd = pupil.command(workspace_binary("agent")?, display);
        Self::start_with(cmd, role, state, display, &pupil.home, extra, &[])
    }

    fn start_with(
        mut cmd: Command,
        role: &str,
        state: &Path,
        display: Option<&str>,
        home: &Path,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> anyhow::Result<AgentProcess> {
        let log = state.with_extension(format!("{role}.{}.log", protocol::UnixMillis::now().0));
        cmd.arg(role)
            .arg("--state-dir")
            .arg(state)
            .args(extra)
            .env("HOME", home)
            .env("AGENT_LOG", "info")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&log)?);
        match display {
            Some(d) => cmd.env("DISPLAY", d),
            None => cmd.env_remove("DISPLAY"),
        };
        let child = cmd.spawn().context("cannot start agent")?;
        let mut agent = AgentProcess { child, log };
        if role != "session" {
            let socket = state.join("agent.sock");
            let up = wait_for(Duration::from_secs(30), || {
                std::os::unix::net::UnixStream::connect(&socket).is_ok()
            });
            if !up {
                agent.kill();
                bail!(
                    "agent {role} did not open its socket; its log:\n{}",
                    agent.log_text()
                );
            }
        }
        Ok(agent)
    }

    /// Waits until the log contains `text` (30 s at most).
    ///
    /// # Errors
    /// It never does; the log is included.
    pub fn wait_log(&self, text: &str, within: Duration) -> anyhow::Result<()> {
        if !wait_for(within, || self.log_text().contains(text)) {
            bail!(
                "the agent never logged {text:?}; its log:\n{}",
                self.log_text()
            );
        }
        Ok(())
    }

    /// Waits until the log contains `text` at least `n` times.
    ///
    /// # Errors
    /// It never does; the log is included.
    pub fn wait_log_count(&self, text: &str, n: usize, within: Duration) -> anyhow::Result<()> {
        if !wait_for(within, || self.log_text().matches(text).count() >= n) {
            bail!(
                "the agent logged {text:?} {} times, not {n}; its log:\n{}",
                self.log_text().matches(text).count(),
                self.log_text()
            );
        }
        Ok(())
    }

    /// Answers the `n`th showing of the AUP window with Alt+A (accept) or
    /// Alt+D (decline), once the window holds the keyboard, and waits
    /// until the agent has taken the answer.
    ///
    /// # Errors
    /// The window never shows, or the answer is not taken.
    pub fn answer_aup(
        &self,
        x: &crate::desktop::XDesktop,
        n: usize,
        accept: bool,
    ) -> anyhow::Result<()> {
        self.wait_log_count(HELD, n, Duration::from_secs(60))?;
        let (key, logged) = if accept {
            ("alt+a", "chose Accept")
        } else {
            ("alt+d", "chose Decline")
        };
        let before = self.log_text().matches(logged).count();
        x.keys(&[key])?;
        self.wait_log_count(logged, before + 1, Duration::from_secs(30))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL: no goodbye, nothing flushed.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A console, an agent state directory enrolled with it, a home directory
/// for the agent's user, and an admin API client; all in a temporary
/// directory removed on drop.
pub struct EnrolledBed {
    pub tmp: tempfile::TempDir,
    pub console: ConsoleProcess,
    pub state: PathBuf,
    pub home: PathBuf,
    pub api: Api,
}

impl EnrolledBed {
    /// Starts the console and enrolls the state directory through a token.
    ///
    /// # Errors
    /// The console does not start or enrollment fails.
    pub fn new() -> anyhow::Result<EnrolledBed> {
        EnrolledBed::with_settings("")
    }

    /// As [`EnrolledBed::new`], the console starting with `settings` as its
    /// `console.toml` (the rest defaults) when it is not empty.
    ///
    /// # Errors
    /// The console does not start or enrollment fails.
    pub fn with_settings(settings: &str) -> anyhow::Result<EnrolledBed> {
        let tmp = tempfile::tempdir()?;
        let data = tmp.path().join("console");
        if !settings.is_empty() {
            std::fs::create_dir_all(&data)?;
            std::fs::write(data.join("console.toml"), settings)?;
        }
        let console = ConsoleProcess::start(&data)?;
        let state = tmp.path().join("agent-state");
        enroll_agent(&state, &enroll_token(&data, &console.agent_addr, "1h")?)?;
        let home = tmp.path().join("home");
        std::fs::create_dir_all(&home)?;
        let api = Api::new(
            &data,
            &console.web_addr,
            &api_token(&data, "lead", "admin")?,
        )?;
        Ok(EnrolledBed {
            tmp,
            console,
            state,
            home,
            api,
        })
    }
}
