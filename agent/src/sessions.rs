//! The graphical sessions on this laptop, found in `/proc`: each ordinary
//! account (uid [`FIRST_USER_UID`] or above) with a process whose
//! environment names a local X display whose socket exists.
//!
//! Why `/proc` and not logind: it says what a session helper needs to
//! join a session (the display, its X authority file, the session bus),
//! which logind does not; it works where logind does not run (containers,
//! these tests, some thin clients); and a pupil cannot hide from it
//! without also leaving the desktop, because every program of an X
//! session carries `DISPLAY`. It is read by the service, as root, every
//! few seconds (a few hundred small files).

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The first uid of an ordinary account (Debian's and Ubuntu's `UID_MIN`).
/// System accounts (the display manager's greeter among them) are below.
pub const FIRST_USER_UID: u32 = 1000;

/// One graphical session: an account on a display.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphicalSession {
    pub uid: u32,
    /// `:N`, without a screen number.
    pub display: String,
    /// The X authority file the session's programs use, if they name one.
    pub xauthority: Option<PathBuf>,
    /// The session's D-Bus address, if its programs name one.
    pub dbus_address: Option<String>,
    /// The oldest process seen in it (the lowest pid).
    pub leader: u32,
}

/// The graphical sessions now: one per display, that of the account
/// that logged in there last (see [`latest_per_display`]). Processes
/// whose parent is in `helpers` (what the agent's own helpers started as
/// the user, such as the screen-text reader) do not make a session.
pub fn find(helpers: &[u32]) -> Vec<GraphicalSession> {
    latest_per_display(find_in(
        Path::new("/proc"),
        Path::new("/tmp/.X11-unix"),
        FIRST_USER_UID,
        helpers,
    ))
}

/// One session per display: where several accounts have programs naming
/// one display (a program left running after a logout, a daemon that kept
/// `DISPLAY`), the one whose first program there started last is the one
/// at the keyboard. Typing must never be put down to the previous user.
pub fn latest_per_display(sessions: Vec<(GraphicalSession, u64)>) -> Vec<GraphicalSession> {
    let mut by_display: BTreeMap<String, (GraphicalSession, u64)> = BTreeMap::new();
    for (session, since) in sessions {
        match by_display.get(&session.display) {
            Some((_, other)) if *other >= since => {}
            _ => {
                by_display.insert(session.display.clone(), (session, since));
            }
        }
    }
    by_display.into_values().map(|(s, _)| s).collect()
}

/// A process's parent and start time (clock ticks after boot), from its
/// `stat`.
fn parent_and_start(stat: &str) -> Option<(u32, u64)> {
    // "PID (COMM) STATE PPID … STARTTIME(22nd field) …": COMM may hold
    // spaces and parentheses, so count after the last ')'.
    let rest: Vec<&str> = stat[stat.rfind(')')? + 1..].split_whitespace().collect();
    Some((rest.get(1)?.parse().ok()?, rest.get(19)?.parse().ok()?))
}

/// Every (session, when its first program started) by (uid, display).
fn find_in(
    proc: &Path,
    x11: &Path,
    first_uid: u32,
    helpers: &[u32],
) -> Vec<(GraphicalSession, u64)> {
    let mut found: BTreeMap<(u32, String), (GraphicalSession, u64)> = BTreeMap::new();
    let Ok(dir) = std::fs::read_dir(proc) else {
        return Vec::new();
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(meta) = entry.metadata() else { continue };
        let uid = meta.uid();
        if uid < first_uid {
            continue;
        }
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        let var = |name: &str| -> Option<String> {
            environ
                .split(|&b| b == 0)
                .find_map(|kv| kv.strip_prefix(name.as_bytes())?.strip_prefix(b"="))
                .map(|v| String::from_utf8_lossy(v).into_owned())
        };
        let Some(display) = var("DISPLAY").and_then(|d| local_display(&d)) else {
            continue;
        };
        let number = &display[1..];
        if !x11.join(format!("X{number}")).exists() {
            continue;
        }
        let (parent, started) = std::fs::read_to_string(entry.path().join("stat"))
            .ok()
            .and_then(|s| parent_and_start(&s))
            .unwrap_or((0, 0));
        if helpers.contains(&parent) {
            continue;
        }
        let (session, since) = found.entry((uid, display.clone())).or_insert_with(|| {
            (
                GraphicalSession {
                    uid,
                    display,
                    xauthority: None,
                    dbus_address: None,
                    leader: pid,
                },
                started,
            )
        });
        *since = (*since).min(started);
        session.leader = session.leader.min(pid);
        if session.xauthority.is_none() {
            session.xauthority = var("XAUTHORITY").map(PathBuf::from);
        }
        if session.dbus_address.is_none() {
            session.dbus_address = var("DBUS_SESSION_BUS_ADDRESS");
        }
    }
    found.into_values().collect()
}

/// `:0`, `:0.0` and `unix:0` are the local display `:0`; a display on
/// another host (X forwarded over ssh) is not a session on this laptop.
pub fn local_display(display: &str) -> Option<String> {
    let rest = display
        .strip_prefix("unix:")
        .or_else(|| display.strip_prefix(':'))?;
    let number = rest.split('.').next()?;
    (!number.is_empty() && number.bytes().all(|b| b.is_ascii_digit())).then(|| format!(":{number}"))
}

/// An account's line in the password database: `/etc/passwd`, then
/// `getent` (directory accounts), split at the colons.
fn passwd_entry(uid: u32) -> Option<Vec<String>> {
    let find = |passwd: &str| {
        passwd.lines().find_map(|line| {
            let f: Vec<String> = line.split(':').map(str::to_owned).collect();
            (f.len() >= 6 && f[2].parse::<u32>().ok()? == uid).then_some(f)
        })
    };
    if let Ok(passwd) = std::fs::read_to_string("/etc/passwd")
        && let Some(entry) = find(&passwd)
    {
        return Some(entry);
    }
    let out = std::process::Command::new("getent")
        .args(["passwd", &uid.to_string()])
        .output()
        .ok()?;
    find(&String::from_utf8_lossy(&out.stdout))
}

/// An account's home directory.
pub fn home_of(uid: u32) -> Option<PathBuf> {
    passwd_entry(uid).map(|f| PathBuf::from(&f[5]))
}

/// An account's uid and primary gid.
pub fn ids_of(uid: u32) -> Option<(u32, u32)> {
    passwd_entry(uid).and_then(|f| Some((uid, f[3].parse().ok()?)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_displays_only() {
        assert_eq!(local_display(":0").as_deref(), Some(":0"));
        assert_eq!(local_display(":12.0").as_deref(), Some(":12"));
        assert_eq!(local_display("unix:3").as_deref(), Some(":3"));
        assert_eq!(local_display("localhost:10.0"), None);
        assert_eq!(local_display("host.example:0"), None);
        assert_eq!(local_display(":"), None);
        assert_eq!(local_display(":x"), None);
        assert_eq!(local_display(""), None);
    }

    #[test]
    fn a_process_on_a_live_local_display_is_a_session() {
        // A /proc of our own: the owner of each entry is this test's user,
        // so the lowest ordinary uid is set to it.
        let dir = tempfile::tempdir().unwrap();
        let me = std::fs::metadata(dir.path()).unwrap().uid();
        let proc = dir.path().join("proc");
        let x11 = dir.path().join("x11");
        let stat = |pid: &str, comm: &str, ppid: u32, start: u64| {
            format!("{pid} ({comm}) S {ppid} {}{start} 0", "0 ".repeat(17))
        };
        for (pid, env, stat) in [
            (
                "4242",
                &b"HOME=/h\0DISPLAY=:7.0\0XAUTHORITY=/h/.Xauthority\0"[..],
                stat("4242", "xterm", 1, 5000),
            ),
            (
                "4243",
                &b"DISPLAY=:7\0DBUS_SESSION_BUS_ADDRESS=unix:path=/b\0"[..],
                stat("4243", "a (b) c", 4242, 4000),
            ),
            (
                "4244",
                &b"DISPLAY=:7\0"[..],
                stat("4244", "agent", 999, 100),
            ),
            ("4300", &b"DISPLAY=otherhost:7\0"[..], String::new()),
            ("4301", &b"HOME=/h\0"[..], String::new()),
            ("self", &b"DISPLAY=:7\0"[..], String::new()),
        ] {
            std::fs::create_dir_all(proc.join(pid)).unwrap();
            std::fs::write(proc.join(pid).join("environ"), env).unwrap();
            std::fs::write(proc.join(pid).join("stat"), stat).unwrap();
        }
        std::fs::create_dir_all(&x11).unwrap();
        // No X socket for :7 yet: not a session.
        assert!(find_in(&proc, &x11, me, &[999]).is_empty());
        std::fs::write(x11.join("X7"), b"").unwrap();
        let found = find_in(&proc, &x11, me, &[999]);
        assert_eq!(found.len(), 1, "{found:?}");
        let (session, since) = &found[0];
        assert_eq!(session.display, ":7");
        assert_eq!(session.leader, 4242);
        // The earliest start of its programs, not counting the helper's child.
        assert_eq!(*since, 4000);
        assert_eq!(
            session.xauthority.as_deref(),
            Some(Path::new("/h/.Xauthority"))
        );
        assert_eq!(session.dbus_address.as_deref(), Some("unix:path=/b"));
        // A process a helper started (parent 999) counts when 999 is not
        // a helper.
        assert_eq!(find_in(&proc, &x11, me, &[])[0].1, 100);
        // Accounts below the first ordinary uid are never sessions.
        assert!(find_in(&proc, &x11, me + 1, &[]).is_empty());
    }

    #[test]
    fn the_account_that_logged_in_last_owns_the_display() {
        let s = |uid, display: &str| GraphicalSession {
            uid,
            display: display.into(),
            xauthority: None,
            dbus_address: None,
            leader: 1,
        };
        let got = latest_per_display(vec![
            (s(1001, ":0"), 500),
            (s(1002, ":0"), 9000),
            (s(1003, ":0"), 700),
            (s(1004, ":1"), 10),
        ]);
        assert_eq!(
            got.iter()
                .map(|g| (g.uid, g.display.as_str()))
                .collect::<Vec<_>>(),
            vec![(1002, ":0"), (1004, ":1")]
        );
    }

    #[test]
    fn stat_lines_give_parent_and_start() {
        let line =
            "77 (we (ird) name) S 12 77 77 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 123456 1000 200";
        assert_eq!(parent_and_start(line), Some((12, 123456)));
        assert_eq!(parent_and_start("garbage"), None);
    }
}
