//! The local conversation between the service and the session helpers (and
//! `agent feed`), over the service's Unix socket, in the same frames as the
//! console protocol.
//!
//! The service never trusts what a peer says about who it is: the user of
//! every record is the account the kernel reports for the socket's peer
//! (`SO_PEERCRED`), written over whatever the record said.

use protocol::{AgentMessage, Policy, RecordId, WireMessage};
use serde::{Deserialize, Serialize};

/// Text handed to the agent by `agent feed`: on-screen text of an app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedText {
    pub app: String,
    pub title: String,
    pub text: String,
}

/// Text the browser extension read from a page, handed over by
/// `agent native-host`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageText {
    /// The address of the tab's page.
    pub page_url: String,
    pub page_title: String,
    /// The address of the frame the text is in (the page's, or an iframe's).
    pub frame_url: String,
    /// The text, block by block (a paragraph, a message, a table cell).
    pub blocks: Vec<String>,
    /// Microseconds the extension spent reading it in the page.
    pub reader_us: u32,
}

/// From a session helper or `agent feed` to the service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ToService {
    /// A session helper starts, on this X display (if any).
    SessionHello { display: Option<String> },
    /// A record to spool and deliver (a capture, …).
    Record(AgentMessage),
    /// The helper is stopping. `logout`: because its desktop closed (the
    /// user logged out); otherwise it was told to stop (a signal), which
    /// the service checks against the user still being logged in.
    Goodbye { reason: String, logout: bool },
    /// A session helper is alive (every [`ALIVE_EVERY`]): the service
    /// restarts one it has not heard from for [`ALIVE_DEADLINE`].
    Alive,
    /// `agent feed`: text for a session helper of the same user.
    Feed(FeedText),
    /// `agent report-concern` (the launcher entry): open the concern window
    /// of the same user's session helper.
    OpenConcern,
    /// `agent native-host` starts: a browser's page reader (the extension)
    /// is connected; the connection stays open while it is. `browser` is
    /// what the host says of the browser that started it (for logs only:
    /// the service finds the browser's process itself).
    PageReader { browser: String },
    /// Text from a page, on a page reader's connection.
    PageText(PageText),
    /// `agent status`: the sessions and their monitoring.
    Status,
}

/// How often a session helper tells the service it is alive.
pub const ALIVE_EVERY: std::time::Duration = std::time::Duration::from_secs(5);
/// Silence from a helper the service started after which the service
/// takes it for hung (or stopped) and restarts it.
pub const ALIVE_DEADLINE: std::time::Duration = std::time::Duration::from_secs(20);

/// From the service to a session helper or `agent feed`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ToSession {
    /// The account the service sees on the other end of the socket.
    Welcome { user: String },
    /// The policy to run, and the year group's own AUP this user is shown
    /// in place of the policy's (if the year has one); sent at the start
    /// and whenever either changes.
    Policy(Policy, Option<protocol::layers::GroupAup>),
    /// The record is in the spool; the helper may forget it.
    Stored(RecordId),
    /// Text from `agent feed`, to be matched as on-screen text.
    Feed(FeedText),
    /// `agent feed` / `agent report-concern`: handed to a session helper.
    Handed,
    /// Open the concern window.
    OpenConcern,
    /// The service will not do what was asked, and why.
    Refused(String),
    /// The service could not spool this record now (its disk is full); the
    /// helper keeps it and offers it again.
    NotSpooled { id: RecordId, why: String },
    /// A page reader of this user connected or went away. `browser_pid` is
    /// the process that started `agent native-host` (the browser), as the
    /// kernel says.
    PageReader {
        reader: u64,
        browser_pid: Option<u32>,
        browser: String,
        connected: bool,
    },
    /// Text a page reader read.
    PageText { reader: u64, text: PageText },
    /// To a page reader: what the policy says of reading pages.
    PageConfig {
        reading: bool,
        excluded_sites: Vec<String>,
    },
    /// To a session helper the user started (the autostart entry): the
    /// service monitors this session with a helper of its own, out of the
    /// user's reach; this one has nothing to do and stops.
    Supervised(String),
    /// To `agent status`: what monitors each session now.
    Status(protocol::DeviceHealth),
}

impl WireMessage for ToService {
    const NAME: &'static str = "message to the agent service";
    const KINDS: Option<u32> = Some(9);
}

impl WireMessage for ToSession {
    const NAME: &'static str = "message to a session helper";
    const KINDS: Option<u32> = Some(13);
}

/// `agent feed`: hands text to the running agent through its socket.
///
/// # Errors
/// The agent is not running, or it refused (the reason is in the error).
pub async fn feed(socket: &std::path::Path, text: FeedText) -> anyhow::Result<()> {
    ask(socket, ToService::Feed(text)).await
}

/// `agent report-concern`: asks this user's session helper to open the
/// concern window.
///
/// # Errors
/// The agent is not running, or no session helper runs for this user.
pub async fn report_concern(socket: &std::path::Path) -> anyhow::Result<()> {
    ask(socket, ToService::OpenConcern).await
}

/// `agent status`: the running service's sessions and their monitoring.
///
/// # Errors
/// The service is not running or answered something else.
pub async fn service_status(socket: &std::path::Path) -> anyhow::Result<protocol::DeviceHealth> {
    let stream = tokio::net::UnixStream::connect(socket).await?;
    let mut conn = protocol::Connection::new(stream);
    conn.send(&ToService::Status).await?;
    match conn
        .recv::<ToSession>("waiting for the service's status")
        .await?
    {
        ToSession::Status(s) => Ok(s),
        other => anyhow::bail!("the service answered {other:?}"),
    }
}

async fn ask(socket: &std::path::Path, message: ToService) -> anyhow::Result<()> {
    use anyhow::Context;
    let stream = tokio::net::UnixStream::connect(socket)
        .await
        .with_context(|| {
            format!(
                "cannot reach the running agent at {} (is it running?)",
                socket.display()
            )
        })?;
    let mut conn = protocol::Connection::new(stream);
    conn.send(&message).await?;
    match conn
        .recv::<ToSession>("waiting for the agent's answer")
        .await?
    {
        ToSession::Handed => Ok(()),
        ToSession::Refused(why) => anyhow::bail!("{why}"),
        other => anyhow::bail!("the agent answered {other:?}"),
    }
}

/// The account name of a user id: `/etc/passwd`, then `getent` (for
/// directory accounts), else `uid N`.
pub fn user_name(uid: u32) -> String {
    if let Ok(passwd) = std::fs::read_to_string("/etc/passwd")
        && let Some(name) = passwd_name(&passwd, uid)
    {
        return name;
    }
    if let Ok(out) = std::process::Command::new("getent")
        .args(["passwd", &uid.to_string()])
        .output()
        && out.status.success()
        && let Some(name) = passwd_name(&String::from_utf8_lossy(&out.stdout), uid)
    {
        return name;
    }
    format!("uid {uid}")
}

fn passwd_name(passwd: &str, uid: u32) -> Option<String> {
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let id = fields.nth(1)?;
        (id.parse::<u32>().ok()? == uid).then(|| name.to_owned())
    })
}

/// The parent of a process, from `/proc/PID/stat`.
pub fn parent_pid(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "PID (COMM) STATE PPID ...": COMM may hold spaces and parentheses,
    // so read after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// Whether the user still has processes running (other than `except`):
/// a session helper that vanished while its user is still logged in was
/// killed, not logged out.
pub fn user_has_processes(uid: u32, except: Option<i32>) -> bool {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return false;
    };
    dir.flatten().any(|entry| {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.parse::<i32>().ok()) else {
            return false;
        };
        if Some(pid) == except || pid == std::process::id() as i32 {
            return false;
        }
        std::fs::read_to_string(entry.path().join("status"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("Uid:"))
                    .and_then(|l| l.split_whitespace().next()?.parse::<u32>().ok())
            })
            == Some(uid)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwd_lines_give_names() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\n# comment\nbroken\npupil:x:1001:1001::/home/pupil:/bin/bash\n";
        assert_eq!(passwd_name(passwd, 0).as_deref(), Some("root"));
        assert_eq!(passwd_name(passwd, 1001).as_deref(), Some("pupil"));
        assert_eq!(passwd_name(passwd, 5), None);
        assert_eq!(user_name(0), "root");
        assert_eq!(user_name(4_000_000_000), "uid 4000000000");
    }

    #[test]
    fn a_process_has_a_parent() {
        let me = std::process::id();
        let parent = parent_pid(me).unwrap();
        assert_eq!(parent, std::os::unix::process::parent_id());
        assert_eq!(parent_pid(4_000_000_000), None);
    }

    #[test]
    fn this_user_has_processes() {
        // The test runner's own user has at least the shell that started it.
        let uid = std::fs::read_to_string("/proc/self/status")
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|l| l.split_whitespace().next()?.parse::<u32>().ok())
            .unwrap();
        assert!(user_has_processes(uid, None));
        assert!(!user_has_processes(3_999_999_999, None));
    }
}
