//! `console-server demo`: a console on this machine and a real agent (the
//! `agent` crate, service and session helper in this process) enrolled in
//! it through the real enrollment path, so a newcomer sees captures arrive
//! and can read them through the API within a minute.
//!
//! With a desktop (`$DISPLAY`), the agent watches it as it would a pupil's
//! laptop: typing anywhere, window titles, the clipboard, browser history,
//! screenshots. Lines typed into the demo's terminal (or, without a
//! terminal, a few sample lines) are handed to it as on-screen text, as
//! `agent feed` does.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use agent::ipc::FeedText;
use agent::service::ServiceOptions;
use agent::session::SessionOptions;
use agent::state_dir::StateDir;
use protocol::enroll::{DeviceFacts, enroll};
use tokio::io::AsyncBufReadExt;
use tokio::sync::watch;

use crate::console::{Console, Listen};
use crate::data_dir::DataDir;
use crate::enrollment::{mint_api_token, mint_enroll_token};
use crate::store::Role;
use crate::store::tokens::TokenStore;

const SAMPLES: &[&str] = &[
    "does anyone know a good pizza place near school",
    "nobody would even notice if i was gone, i want to kms",
    "u r so ugly everyone hates you, just die",
    "what is your address? dont tell your mum we talk",
];

/// Runs the demo until Ctrl-C.
///
/// # Errors
/// If the console cannot start or the agent cannot enroll or start.
pub async fn run(data: &Path, listen: Listen, watch_desktop: bool) -> anyhow::Result<()> {
    claim(data)?;
    let dir = DataDir::open(data)?;
    let password = demo_login(&dir)?;
    // One admin token per run, revoked when the demo stops (and, should it
    // not stop cleanly, at the next start; it expires in a day anyway).
    dir.store
        .revoke_api_tokens(Some(DEMO_TOKEN), None, protocol::UnixMillis::now())?;
    let api_token = mint_api_token(
        dir.store.as_ref(),
        DEMO_TOKEN,
        Role::Admin,
        Some(DEMO_ADMIN),
        None,
        Duration::from_secs(86_400),
    )?;
    let ca_path = dir.path.join("ca.pem");
    let console = Console::start(&dir, listen).await?;
    let agent_addr = format!("127.0.0.1:{}", console.agent_addr.port());
    let web = format!("https://localhost:{}", console.web_addr.port());

    // Enroll through the same door a laptop uses (once; later runs reuse it).
    let state = StateDir::new(dir.path.join("demo-agent"));
    let enrolled_here = state
        .enrollment()
        .is_ok_and(|e| e.console_address == agent_addr);
    if !enrolled_here {
        if state.private().exists() {
            std::fs::remove_dir_all(state.private())?;
        }
        let token = mint_enroll_token(&dir, Duration::from_secs(600), Some(&agent_addr), None)?.1;
        let enrolled = enroll(
            &token,
            &DeviceFacts {
                hostname: agent::heartbeat::hostname(),
                os: agent::heartbeat::os_name(),
                agent_version: agent::AGENT_VERSION.into(),
            },
        )
        .await?;
        state.save_enrollment(&enrolled, &agent_addr, jiff::Timestamp::now().to_string())?;
    }
    let device = state.enrollment()?.identity.device_id;

    let display = std::env::var("DISPLAY").ok().filter(|d| !d.is_empty());
    let use_display = watch_desktop && display.is_some();
    let (stop, shutdown) = watch::channel(false);
    let session = SessionOptions {
        socket: state.socket(),
        use_display,
        home: std::env::var_os("HOME").map_or_else(|| PathBuf::from("/"), PathBuf::from),
        browser_poll: Duration::from_secs(5),
        idle_after: Duration::from_secs(120),
        visit_report: Duration::from_secs(60),
        // The AUP and concern windows, from this program's hidden commands.
        // Declining in the demo logs nobody out.
        prompts: std::env::current_exe()
            .ok()
            .map(|program| agent::prompts::PromptOptions {
                program,
                decline_command: String::new(),
                decline_as: None,
            }),
        for_service: false,
        screen_reader_as: None,
        semantic_model: demo_semantic_model(),
    };
    let service = ServiceOptions {
        semantic_model: session.semantic_model.clone(),
        ..ServiceOptions::default()
    };
    let agent = tokio::spawn(agent::run::run(
        state.clone(),
        service,
        Some(session),
        shutdown,
    ));

    println!();
    println!("Console running. Web console and JSON API: {web}");
    println!("  sign in as `{DEMO_ADMIN}` with password `{password}` (new at every demo start)");
    println!(
        "  the browser will warn that the certificate is not trusted: it is the console's own CA,"
    );
    println!(
        "  {}; import it into the browser, or accept the warning for this demo",
        ca_path.display()
    );
    println!("  admin API token: {api_token}");
    println!(
        "  try: curl --cacert {} -H 'Authorization: Bearer {api_token}' {web}/api/v1/captures",
        ca_path.display()
    );
    println!(
        "A real agent runs in this process as device {device} (enrolled with a one-time token, over mutual TLS)."
    );
    match (&display, use_display) {
        (Some(d), true) => println!(
            "  It watches this desktop ({d}): what you type in any window, window titles, the clipboard and\n  browser history are matched; each hit is sent with a screenshot. (--no-desktop keeps it off.)\n  First it shows the school's Acceptable Use Policy full screen, as at a pupil's login: Alt+A\n  accepts (Alt+D declines; the demo logs nobody out). Ctrl+Alt+R opens \"Report a concern\"."
        ),
        _ => println!(
            "  It is not watching a desktop (no $DISPLAY, or --no-desktop): captures come without a screenshot."
        ),
    }

    let interactive = std::io::stdin().is_terminal();
    if interactive {
        println!(
            "Type a line and press Enter: it is handed to the agent as on-screen text. Ctrl-C stops."
        );
    } else {
        println!(
            "Handing {} sample lines to the agent. Ctrl-C stops.",
            SAMPLES.len()
        );
    }
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let mut samples = SAMPLES.iter().enumerate();
    let mut n = 0;
    loop {
        let line = tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            line = lines.next_line(), if interactive => match line? {
                Some(l) => l,
                None => break,
            },
            _ = std::future::ready(()), if !interactive => match samples.next() {
                Some((_, s)) => (*s).to_owned(),
                None => {
                    tokio::signal::ctrl_c().await?;
                    break;
                }
            },
        };
        n += 1;
        let text = FeedText {
            app: "demo".into(),
            title: format!("Demonstration line {n}"),
            text: line.clone(),
        };
        match feed_when_ready(&state, text).await {
            Ok(()) => println!("  {line:?}: handed to the agent"),
            Err(e) => println!("  {line:?}: {e:#}"),
        }
    }
    println!("stopping");
    let _ = stop.send(true);
    let _ = agent.await;
    console.shutdown().await;
    dir.store
        .revoke_api_tokens(Some(DEMO_TOKEN), None, protocol::UnixMillis::now())?;
    println!("the demo's API token is revoked");
    Ok(())
}

/// The file that marks a data directory as the demo's own.
const MARKER: &str = "DEMO-DATA";

/// Makes `data` the demo's, or refuses it: the demo resets the admin's
/// password, mints an admin token and enrolls a device, so it must never
/// run on a school's real console. A directory that does not exist or is
/// empty becomes the demo's; one holding the demo's marker is reused.
///
/// # Errors
/// The directory holds anything else, or cannot be read or written.
pub fn claim(data: &Path) -> anyhow::Result<()> {
    use anyhow::Context;
    if data.join(MARKER).is_file() {
        return Ok(());
    }
    let empty = match std::fs::read_dir(data) {
        Ok(mut entries) => entries.next().is_none(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
        Err(e) => {
            return Err(e).with_context(|| format!("cannot read {}", data.display()));
        }
    };
    // Demos before the marker left their agent's state here, which only
    // the demo makes.
    let earlier_demo = data.join("demo-agent").is_dir() && data.join("console.db").is_file();
    if !empty && !earlier_demo {
        anyhow::bail!(
            "{} was not made by `console-server demo` (it has no {MARKER} file), so the demo will not \
             touch it: the demo resets the admin's password, mints an admin token and enrolls a device. \
             Give the demo a directory of its own with --data (the default is ./demo-data).",
            data.display()
        );
    }
    std::fs::create_dir_all(data).with_context(|| format!("cannot create {}", data.display()))?;
    std::fs::write(
        data.join(MARKER),
        "Made by `console-server demo`: a demonstration console, not a school's.\n",
    )
    .with_context(|| format!("cannot write {}", data.join(MARKER).display()))?;
    Ok(())
}

/// The demo's web console account.
pub const DEMO_ADMIN: &str = "admin";
/// The name of the demo's API token.
const DEMO_TOKEN: &str = "demo-admin";

/// Makes sure the demo admin account exists, with a fresh random password
/// (the demo keeps no secret between runs), and returns that password.
fn demo_login(dir: &DataDir) -> anyhow::Result<String> {
    use crate::store::{StaffStore, UserStore};
    let password = crate::secret::random_token()[..16].to_owned();
    let hash = crate::secret::hash_password(&password)
        .map_err(|e| anyhow::anyhow!("hashing the demo password: {e}"))?;
    if !dir.store.set_staff_password(DEMO_ADMIN, &hash)? {
        dir.store.add_user(
            DEMO_ADMIN,
            Role::Admin,
            &hash,
            None,
            protocol::UnixMillis::now(),
        )?;
    }
    dir.store
        .set_staff_disabled(DEMO_ADMIN, false, protocol::UnixMillis::now())?;
    Ok(password)
}

/// Feeds text, waiting (10 s at most) for the session helper to be up.
async fn feed_when_ready(state: &StateDir, text: FeedText) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match agent::ipc::feed(&state.socket(), text.clone()).await {
            Ok(()) => return Ok(()),
            Err(_) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// The semantic layer's model for the demo's laptop: the one fetched into
/// the source tree (`wordlists/semantic/fetch-model.sh`), if it is there.
fn demo_semantic_model() -> Option<PathBuf> {
    let dir = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../wordlists/semantic/model"
    ));
    if dir.join("model.safetensors").exists() {
        Some(dir)
    } else {
        tracing::warn!(
            "the demo laptop runs without the semantic layer: fetch its model with wordlists/semantic/fetch-model.sh"
        );
        None
    }
}

#[cfg(test)]
mod tests {
    use super::claim;

    #[test]
    fn the_demo_takes_only_a_new_or_empty_directory_or_its_own() {
        let tmp = tempfile::tempdir().unwrap();
        let fresh = tmp.path().join("demo-data");
        claim(&fresh).unwrap();
        claim(&fresh).unwrap();
        let empty = tmp.path().join("empty");
        std::fs::create_dir(&empty).unwrap();
        claim(&empty).unwrap();
        let real = tmp.path().join("data");
        std::fs::create_dir(&real).unwrap();
        std::fs::write(real.join("console.db"), b"").unwrap();
        let err = claim(&real).unwrap_err().to_string();
        assert!(
            err.contains("was not made by `console-server demo`"),
            "{err}"
        );
        assert_eq!(
            std::fs::read_dir(&real).unwrap().count(),
            1,
            "nothing written"
        );
        let earlier = tmp.path().join("old-demo");
        std::fs::create_dir_all(earlier.join("demo-agent")).unwrap();
        std::fs::write(earlier.join("console.db"), b"").unwrap();
        claim(&earlier).unwrap();
        assert!(earlier.join("DEMO-DATA").is_file());
    }
}
