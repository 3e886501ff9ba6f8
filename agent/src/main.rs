//! `agent`: the safeguarding agent's command line (see docs/interfaces.md).

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use agent::ipc::FeedText;
use agent::service::ServiceOptions;
use agent::session::{self, SessionOptions};
use agent::spool::Spool;
use agent::state_dir::{DEFAULT_STATE_DIR, StateDir};
use anyhow::Context;
use clap::{Parser, Subcommand};
use protocol::enroll::{DeviceFacts, EnrollToken, enroll};
use tokio::sync::watch;

#[derive(Parser)]
#[command(
    name = "agent",
    version,
    about = "The safeguarding agent on a school laptop"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Enrolls this laptop with the console named in the token (from
    /// `console-server enroll-token`), pinning its CA. The token is read
    /// from --token-file, or from standard input when TOKEN is left out or
    /// is `-`: a token on the command line shows in the process list.
    #[command(alias = "enrol")]
    Enroll {
        token: Option<String>,
        /// A file holding the token.
        #[arg(long, conflicts_with = "token")]
        token_file: Option<PathBuf>,
        #[arg(long, default_value = DEFAULT_STATE_DIR)]
        state_dir: PathBuf,
    },
    /// Service and session helper in one process, on the current $DISPLAY
    /// (demos, tests, single-user machines). Without a display it still
    /// runs, without the desktop sources.
    Run {
        #[arg(long, default_value = DEFAULT_STATE_DIR)]
        state_dir: PathBuf,
        #[command(flatten)]
        tuning: Tuning,
    },
    /// The root service: spool, certificate, uplink, policy. Run as root,
    /// it also starts and supervises a session helper for every graphical
    /// session, out of the users' reach.
    Service {
        #[arg(long, default_value = DEFAULT_STATE_DIR)]
        state_dir: PathBuf,
        #[command(flatten)]
        tuning: Tuning,
        /// Do not start session helpers: leave it to each user's autostart
        /// entry (which the user can switch off).
        #[arg(long)]
        no_supervise: bool,
        /// Watch only these X displays (comma-separated, `:0`); default:
        /// every local display.
        #[arg(long, value_delimiter = ',')]
        displays: Vec<String>,
    },
    /// The session helper of one desktop. Started by the service (as root)
    /// for each session; the autostart entry runs it too, as the user,
    /// which only prompts the service to look.
    Session {
        #[arg(long, default_value = DEFAULT_STATE_DIR)]
        state_dir: PathBuf,
        #[command(flatten)]
        tuning: SessionTuning,
        /// The user whose session this is (set by the service, which
        /// starts the helper as root).
        #[arg(long, hide = true)]
        for_uid: Option<u32>,
    },
    /// Hands text to the running agent as on-screen text of an app.
    Feed {
        #[arg(long, default_value = DEFAULT_STATE_DIR)]
        state_dir: PathBuf,
        #[arg(long, default_value = "feed")]
        app: String,
        #[arg(long, default_value = "")]
        title: String,
        /// The text, or `-` (or nothing) to read standard input.
        text: Option<String>,
    },
    /// Enrolled or not, console reachable or not, spool depth, policy
    /// version, the semantic layer's model.
    Status {
        #[arg(long, default_value = DEFAULT_STATE_DIR)]
        state_dir: PathBuf,
        /// Where the helpers find the semantic layer's model.
        #[arg(long, default_value = agent::semantic_layer::DEFAULT_MODEL_DIR)]
        semantic_model: PathBuf,
    },
    /// Opens "Report a concern" in this user's session (the launcher entry
    /// runs this; Ctrl+Alt+R does the same).
    ReportConcern {
        #[arg(long, default_value = DEFAULT_STATE_DIR)]
        state_dir: PathBuf,
    },
    /// The native-messaging host the browsers start for the page-reader
    /// extension (registered by `browser-integration install`); passes page
    /// text to this user's session helper. The browser's own arguments
    /// (the extension's origin) are accepted and logged.
    NativeHost {
        #[arg(long, default_value = DEFAULT_STATE_DIR)]
        state_dir: PathBuf,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
        browser_args: Vec<String>,
    },
    /// Registers the page-reader extension's native host with the browsers
    /// (and, system-wide, writes the managed browser policies).
    #[command(subcommand)]
    BrowserIntegration(BrowserIntegration),
    /// The AUP window (started by the session helper; request on stdin).
    #[command(hide = true)]
    AupWindow,
    /// The concern window (started by the session helper; request on stdin).
    #[command(hide = true)]
    ConcernWindow,
    /// The accessibility reader, as the session's user, for a session
    /// helper the service runs as root (front pid on stdin, text on stdout).
    #[command(hide = true)]
    ScreenReader,
}

#[derive(Subcommand)]
enum BrowserIntegration {
    /// Writes the native-messaging host manifests for Chromium, Chrome,
    /// Edge, Brave and Firefox, and (system-wide) their managed policies:
    /// private windows, guest and new profiles off, and the extension
    /// force-installed from the school's server when its address is given.
    Install {
        /// Into the current user's browser folders only (no policies).
        #[arg(long)]
        user: bool,
        /// The state directory of the agent service the host talks to.
        #[arg(long, default_value = DEFAULT_STATE_DIR)]
        state_dir: PathBuf,
        /// Put the system-wide files under this directory instead of `/`.
        #[arg(long, default_value = "/")]
        root: PathBuf,
        /// Chromium-family browsers: the address of the extension's update
        /// manifest, to force-install it.
        #[arg(long)]
        update_url: Option<String>,
        /// Firefox: the address of the signed extension (.xpi), to
        /// force-install it.
        #[arg(long)]
        firefox_xpi_url: Option<String>,
    },
}

#[derive(clap::Args, Clone)]
struct Tuning {
    /// The spool's cap in megabytes (screenshots are dropped first at the cap).
    #[arg(long, default_value_t = 500)]
    spool_cap_mb: u64,
    #[command(flatten)]
    session: SessionTuning,
}

#[derive(clap::Args, Clone)]
struct SessionTuning {
    /// Seconds between looks at browser history.
    #[arg(long, default_value_t = 5)]
    browser_poll_seconds: u64,
    /// Seconds without keyboard or mouse input after which the user is idle
    /// and time on a website stops counting (from the last input).
    #[arg(long, default_value_t = 120)]
    idle_seconds: u64,
    /// Seconds between reports of time on websites to the console.
    #[arg(long, default_value_t = 300)]
    visit_report_seconds: u64,
    /// Run with `sh -c` when the user declines the Acceptable Use Policy,
    /// to log them out. Empty: no logout.
    #[arg(long, default_value = agent::prompts::DEFAULT_DECLINE_COMMAND)]
    decline_command: String,
    /// The semantic layer's model (from wordlists/semantic/fetch-model.sh),
    /// loaded while the policy has the layer on. Empty: the rules alone.
    #[arg(long, default_value = agent::semantic_layer::DEFAULT_MODEL_DIR)]
    semantic_model: PathBuf,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("AGENT_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let cli = Cli::parse();
    if matches!(
        cli.command,
        Command::Run { .. } | Command::Service { .. } | Command::Session { .. }
    ) {
        few_malloc_arenas();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(8)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("agent: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(command(cli.command)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("agent: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The C library's allocator the agent runs on (glibc) gives threads that
/// allocate at the same moment arenas of their own, up to eight per core,
/// and memory freed in one arena is reused only by allocations in that
/// one. The long-running roles allocate on a few tokio threads, the
/// matcher's builder thread and the screenshot encoder: with an arena each,
/// what one thread freed sat unused beside what another asked for anew,
/// and the agent held about 60 MB where 45 are live (`agent-bench viewed`:
/// 56.7–62.3 MB resident with the default, 45.7 with two arenas, at the
/// same latency and CPU). The limit can only be set before the allocator's
/// first use, so the process replaces itself once (same pid, arguments
/// and descriptors) with `MALLOC_ARENA_MAX=2` set; a value the
/// administrator set is kept, and if the re-exec fails the agent runs on
/// as it is.
fn few_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use std::os::unix::process::CommandExt;
        const VAR: &str = "MALLOC_ARENA_MAX";
        if std::env::var_os(VAR).is_some() {
            return;
        }
        let Ok(exe) = std::env::current_exe() else {
            return;
        };
        let mut args = std::env::args_os();
        let arg0 = args.next().unwrap_or_else(|| exe.clone().into_os_string());
        let err = std::process::Command::new(&exe)
            .arg0(arg0)
            .args(args)
            .env(VAR, "2")
            .exec();
        tracing::warn!(
            "cannot re-execute {} with {VAR}=2 ({err}); running on with the allocator's defaults",
            exe.display()
        );
    }
}

async fn command(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Enroll {
            token,
            token_file,
            state_dir,
        } => {
            let token = read_token(token, token_file)?;
            enroll_here(&token, StateDir::new(state_dir)).await
        }
        Command::Run { state_dir, tuning } => run(StateDir::new(state_dir), tuning, true).await,
        Command::Service {
            state_dir,
            tuning,
            no_supervise,
            displays,
        } => {
            let supervise = (!no_supervise && rustix::process::geteuid().is_root())
                .then(|| supervision(&state_dir, &tuning.session, displays))
                .transpose()?;
            if supervise.is_none() && !no_supervise {
                tracing::warn!(
                    "not running as root: session helpers are left to the users' autostart entries (which a user can switch off)"
                );
            }
            service(StateDir::new(state_dir), tuning, supervise).await
        }
        Command::Session {
            state_dir,
            tuning,
            for_uid,
        } => {
            let (stop, shutdown) = watch::channel(false);
            tokio::spawn(stop_on_signal(stop));
            let mut options = session_options(&StateDir::new(state_dir), &tuning);
            if let Some(uid) = for_uid {
                // Started by the service: it goes when the service goes (a
                // restarted service starts helpers of its own; one left
                // over would be taken for a root helper).
                let parent = rustix::process::getppid();
                if let Err(e) = rustix::process::set_parent_process_death_signal(Some(
                    rustix::process::Signal::TERM,
                )) {
                    tracing::warn!("cannot tie this helper to the service's life: {e}");
                }
                if rustix::process::getppid() != parent {
                    anyhow::bail!("the agent service that started this helper is gone");
                }
                options.for_service = true;
                let ids = agent::sessions::ids_of(uid);
                if let Some(p) = &mut options.prompts {
                    p.decline_as = ids;
                }
                // The session's buses take only its user: other
                // applications' text is read by a process of theirs.
                options.screen_reader_as = ids.and_then(|(uid, gid)| {
                    let program = std::env::current_exe().ok()?;
                    let env = [
                        "DISPLAY",
                        "DBUS_SESSION_BUS_ADDRESS",
                        "XAUTHORITY",
                        "HOME",
                        "USER",
                        "LOGNAME",
                        "PATH",
                        "LANG",
                        "AGENT_LOG",
                    ]
                    .iter()
                    .filter_map(|k| Some(((*k).to_owned(), std::env::var(k).ok()?)))
                    .collect();
                    Some(agent::screen_reader::ReaderAccount {
                        program,
                        uid,
                        gid,
                        env,
                    })
                });
            }
            session::run(options, shutdown).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Feed {
            state_dir,
            app,
            title,
            text,
        } => feed(&StateDir::new(state_dir), app, title, text).await,
        Command::Status {
            state_dir,
            semantic_model,
        } => status(&StateDir::new(state_dir), &semantic_model).await,
        Command::ReportConcern { state_dir } => {
            agent::ipc::report_concern(&StateDir::new(state_dir).socket()).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::NativeHost {
            state_dir,
            browser_args,
        } => {
            agent::native_host::run(&agent::native_host::socket_of(&state_dir), &browser_args)
                .await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::BrowserIntegration(BrowserIntegration::Install {
            user,
            state_dir,
            root,
            update_url,
            firefox_xpi_url,
        }) => {
            let agent = std::env::current_exe().context("cannot find the agent's own program")?;
            let state_dir = std::path::absolute(&state_dir)
                .with_context(|| format!("cannot make {} absolute", state_dir.display()))?;
            let said = agent::browser_integration::install(&agent::browser_integration::Install {
                user,
                home: std::env::var_os("HOME")
                    .map(PathBuf::from)
                    .context("HOME is not set; --user writes under the user's home")?,
                root,
                agent,
                state_dir,
                update_url,
                firefox_xpi_url,
            })?;
            for line in said {
                println!("{line}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::AupWindow => window("aup-window").await,
        Command::ConcernWindow => window("concern-window").await,
        Command::ScreenReader => {
            agent::screen_reader::child_main().await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `agent aup-window` / `agent concern-window`: a window the session helper
/// started, run off the async threads.
async fn window(which: &'static str) -> anyhow::Result<ExitCode> {
    tokio::task::spawn_blocking(move || agent::window::child_main(which))
        .await
        .with_context(|| format!("the {which} stopped unexpectedly"))??;
    Ok(ExitCode::SUCCESS)
}

/// The enrollment token: given, from a file, or from standard input.
fn read_token(given: Option<String>, file: Option<PathBuf>) -> anyhow::Result<String> {
    let text = match (given, file) {
        (Some(t), _) if t != "-" => t,
        (_, Some(path)) => std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read the enrollment token from {}", path.display()))?,
        _ => {
            use std::io::{IsTerminal, Read};
            if std::io::stdin().is_terminal() {
                eprintln!("paste the enrollment token and press Ctrl-D:");
            }
            let mut t = String::new();
            std::io::stdin()
                .read_to_string(&mut t)
                .context("cannot read the enrollment token from standard input")?;
            t
        }
    };
    let token = text.trim();
    if token.is_empty() {
        anyhow::bail!(
            "no enrollment token was given: pass --token-file FILE, or pipe it in (`agent enroll < FILE`)"
        );
    }
    Ok(token.to_owned())
}

async fn enroll_here(token: &str, state: StateDir) -> anyhow::Result<ExitCode> {
    state.ensure_not_enrolled()?;
    let token = EnrollToken::decode(token)?;
    let facts = DeviceFacts {
        hostname: agent::heartbeat::hostname(),
        os: agent::heartbeat::os_name(),
        agent_version: agent::AGENT_VERSION.into(),
    };
    let enrolled = enroll(&token, &facts)
        .await
        .with_context(|| format!("enrollment with the console at {} failed", token.address))?;
    state.save_enrollment(
        &enrolled,
        &token.address,
        jiff::Timestamp::now().to_string(),
    )?;
    println!(
        "enrolled as device {} with the console at {}; state in {}",
        enrolled.device_id,
        token.address,
        state.root().display()
    );
    Ok(ExitCode::SUCCESS)
}

fn session_options(state: &StateDir, tuning: &SessionTuning) -> SessionOptions {
    SessionOptions {
        socket: state.socket(),
        use_display: std::env::var_os("DISPLAY").is_some_and(|d| !d.is_empty()),
        home: std::env::var_os("HOME").map_or_else(|| PathBuf::from("/"), PathBuf::from),
        browser_poll: Duration::from_secs(tuning.browser_poll_seconds.max(1)),
        idle_after: Duration::from_secs(tuning.idle_seconds.max(1)),
        visit_report: Duration::from_secs(tuning.visit_report_seconds.max(1)),
        prompts: std::env::current_exe()
            .map_err(|e| {
                tracing::error!(
                    "cannot find the agent's own program ({e}); no AUP or concern windows"
                )
            })
            .ok()
            .map(|program| agent::prompts::PromptOptions {
                program,
                decline_command: tuning.decline_command.clone(),
                decline_as: None,
            }),
        for_service: false,
        screen_reader_as: None,
        semantic_model: model_dir(tuning),
    }
}

/// The semantic layer's model folder, unless given as empty.
fn model_dir(tuning: &SessionTuning) -> Option<PathBuf> {
    (!tuning.semantic_model.as_os_str().is_empty()).then(|| tuning.semantic_model.clone())
}

async fn stop_on_signal(stop: watch::Sender<bool>) {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("cannot watch for SIGTERM: {e}");
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("stopping");
    let _ = stop.send(true);
}

async fn run(state: StateDir, tuning: Tuning, with_session: bool) -> anyhow::Result<ExitCode> {
    let (stop, shutdown) = watch::channel(false);
    tokio::spawn(stop_on_signal(stop));
    let session = with_session.then(|| session_options(&state, &tuning.session));
    let options = ServiceOptions {
        spool_cap_bytes: tuning.spool_cap_mb.saturating_mul(1000 * 1000),
        supervise: None,
        semantic_model: model_dir(&tuning.session),
    };
    agent::run::run(state, options, session, shutdown).await?;
    Ok(ExitCode::SUCCESS)
}

async fn service(
    state: StateDir,
    tuning: Tuning,
    supervise: Option<agent::supervisor::Supervision>,
) -> anyhow::Result<ExitCode> {
    let (stop, shutdown) = watch::channel(false);
    tokio::spawn(stop_on_signal(stop));
    let options = ServiceOptions {
        spool_cap_bytes: tuning.spool_cap_mb.saturating_mul(1000 * 1000),
        supervise,
        semantic_model: model_dir(&tuning.session),
    };
    agent::run::run(state, options, None, shutdown).await?;
    Ok(ExitCode::SUCCESS)
}

/// How the service starts helpers: this program, with the same state
/// directory and session tuning.
fn supervision(
    state_dir: &std::path::Path,
    tuning: &SessionTuning,
    displays: Vec<String>,
) -> anyhow::Result<agent::supervisor::Supervision> {
    let program = std::env::current_exe().context("cannot find the agent's own program")?;
    let state_dir = std::path::absolute(state_dir)
        .with_context(|| format!("cannot make {} absolute", state_dir.display()))?;
    let displays = displays
        .iter()
        .map(|d| {
            agent::sessions::local_display(d)
                .with_context(|| format!("{d:?} is not a local X display (like :0)"))
        })
        .collect::<anyhow::Result<_>>()?;
    Ok(agent::supervisor::Supervision {
        scratch: StateDir::new(state_dir.clone()).private(),
        program,
        session_args: vec![
            "--state-dir".into(),
            state_dir.into_os_string(),
            "--browser-poll-seconds".into(),
            tuning.browser_poll_seconds.to_string().into(),
            "--idle-seconds".into(),
            tuning.idle_seconds.to_string().into(),
            "--visit-report-seconds".into(),
            tuning.visit_report_seconds.to_string().into(),
            "--decline-command".into(),
            tuning.decline_command.clone().into(),
            "--semantic-model".into(),
            std::path::absolute(&tuning.semantic_model)
                .unwrap_or_else(|_| tuning.semantic_model.clone())
                .into_os_string(),
        ],
        displays,
    })
}

async fn feed(
    state: &StateDir,
    app: String,
    title: String,
    text: Option<String>,
) -> anyhow::Result<ExitCode> {
    let text = match text.as_deref() {
        None | Some("-") => {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .context("cannot read the text from standard input")?;
            s
        }
        Some(t) => t.to_owned(),
    };
    agent::ipc::feed(&state.socket(), FeedText { app, title, text }).await?;
    println!("handed to the agent");
    Ok(ExitCode::SUCCESS)
}

async fn status(state: &StateDir, semantic_model: &std::path::Path) -> anyhow::Result<ExitCode> {
    let enrollment = match state.enrollment() {
        Ok(e) => e,
        Err(e) => {
            println!("enrolled: no ({e:#})");
            return Ok(ExitCode::FAILURE);
        }
    };
    println!(
        "enrolled: yes, device {} with the console at {}",
        enrollment.identity.device_id, enrollment.console_address
    );
    let policy = state.load_policy().map_or(0, |p| p.version);
    let link = tokio::time::timeout(
        Duration::from_secs(5),
        protocol::device_link::DeviceLink::connect(
            &enrollment.console_address,
            &enrollment.identity,
            agent::AGENT_VERSION,
            policy,
        ),
    )
    .await;
    let reachable = match link {
        Ok(Ok(mut l)) => {
            println!(
                "console: reachable (console {}, its policy version {})",
                l.welcome.console_version, l.welcome.policy_version
            );
            let _ = l.writer.shutdown().await;
            true
        }
        Ok(Err(e)) => {
            println!("console: not reachable ({e})");
            false
        }
        Err(_) => {
            println!("console: not reachable (no answer within 5 s)");
            false
        }
    };
    match Spool::stats_read_only(&state.spool()) {
        Ok(s) => println!(
            "spool: {} record(s), {} bytes; dropped at the cap: {} screenshot(s), {} record(s)",
            s.records, s.bytes, s.images_dropped, s.records_dropped
        ),
        Err(e) => println!("spool: cannot read ({e:#})"),
    }
    println!("policy: version {policy}");
    let semantic_on = state.load_policy().is_none_or(|p| p.semantic);
    println!(
        "semantic layer: {}; {}",
        if semantic_on {
            "on in the policy"
        } else {
            "off in the policy"
        },
        agent::semantic_layer::describe(semantic_model)
    );
    match agent::ipc::service_status(&state.socket()).await {
        Ok(s) => {
            println!(
                "service: running; {}; {} message(s) refused on its socket",
                if s.supervising {
                    "it starts and supervises the session helpers"
                } else {
                    "session helpers are started by the users (not supervised)"
                },
                s.refused
            );
            if s.sessions.is_empty() {
                println!("sessions: none");
            }
            for session in &s.sessions {
                let display = if session.display.is_empty() {
                    "no display"
                } else {
                    &session.display
                };
                let how = match (
                    session.monitored,
                    session.helper_pid,
                    session.heard_seconds_ago,
                ) {
                    (true, Some(pid), Some(ago)) => {
                        format!(
                            "monitored (helper {pid}, started by the service, heard {ago} s ago)"
                        )
                    }
                    (true, None, Some(ago)) => format!("monitored (helper heard {ago} s ago)"),
                    (false, _, Some(ago)) => {
                        format!("NOT MONITORED (its helper has been silent for {ago} s)")
                    }
                    _ => "NOT MONITORED (no helper)".to_owned(),
                };
                println!("session: {} on {display}: {how}", session.user);
            }
        }
        Err(e) => println!("service: not running ({e:#})"),
    }
    Ok(if reachable {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shipped unit and autostart files run commands this binary takes.
    #[test]
    fn shipped_service_files_name_real_commands() {
        for (file, text, key) in [
            (
                "safeguard-agent.service",
                include_str!("../dist/safeguard-agent.service"),
                "ExecStart=",
            ),
            (
                "safeguard-agent-session.desktop",
                include_str!("../dist/safeguard-agent-session.desktop"),
                "Exec=",
            ),
            (
                "safeguard-report-concern.desktop",
                include_str!("../dist/safeguard-report-concern.desktop"),
                "Exec=",
            ),
        ] {
            let line = text
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .unwrap_or_else(|| panic!("{file} has no {key}"));
            let words: Vec<&str> = line.split_whitespace().collect();
            assert_eq!(words[0], "/usr/local/bin/agent", "{file}");
            let cli = Cli::try_parse_from(&words).unwrap_or_else(|e| panic!("{file}: {e}"));
            match cli.command {
                Command::Service { state_dir, .. }
                | Command::Session { state_dir, .. }
                | Command::ReportConcern { state_dir } => {
                    assert_eq!(state_dir, PathBuf::from(DEFAULT_STATE_DIR), "{file}");
                }
                _ => panic!(
                    "{file} runs none of the service, the session helper or the concern window"
                ),
            }
        }
    }
}
