//! A real unprivileged account for tests of what a pupil can do on the
//! laptop: made with `useradd` (a home of its own under the test's
//! temporary directory), removed with `userdel` on drop. Programs run as
//! it through `Command::uid`/`gid`, so the kernel, not the test, says who
//! they are. Needs root; without it the test fails and says why.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

/// An account made for one test.
pub struct Pupil {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: PathBuf,
}

impl Pupil {
    /// Makes an account with its home in `dir` (which, and whose parents,
    /// the account must be able to pass through: `dir`'s own mode is set
    /// to 0755).
    ///
    /// # Errors
    /// Not root, or `useradd` fails.
    pub fn create(dir: &Path) -> anyhow::Result<Pupil> {
        let root = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("Uid:"))
                    .map(|l| l.split_whitespace().nth(1) == Some("0"))
            })
            .unwrap_or(false);
        if !root {
            bail!(
                "this test makes a real pupil account with useradd and runs the agent service as root; run it as root (CI does)"
            );
        }
        crate::desktop::require("useradd", "passwd")?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
        let name = format!("sgp{}x{}", std::process::id(), nanos());
        let home = dir.join(&name);
        let out = Command::new("useradd")
            .args(["--home-dir"])
            .arg(&home)
            .args(["--create-home", "--shell", "/bin/sh", "--user-group", &name])
            .output()
            .context("cannot run useradd")?;
        if !out.status.success() {
            bail!(
                "useradd {name} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let id = |flag: &str| -> anyhow::Result<u32> {
            let out = Command::new("id").args([flag, &name]).output()?;
            Ok(String::from_utf8_lossy(&out.stdout).trim().parse()?)
        };
        let pupil = Pupil {
            uid: id("-u")?,
            gid: id("-g")?,
            name,
            home,
        };
        Ok(pupil)
    }

    /// A command that runs as this account, with its home and `DISPLAY`.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>, display: Option<&str>) -> Command {
        let mut cmd = Command::new(program);
        cmd.uid(self.uid)
            .gid(self.gid)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("HOME", &self.home)
            .env("USER", &self.name)
            .env("LOGNAME", &self.name)
            .current_dir(&self.home);
        if let Some(d) = display {
            cmd.env("DISPLAY", d);
        }
        cmd
    }
}

impl Pupil {
    /// The pupil's desktop session as far as a test needs one: a terminal
    /// of theirs (running `cat`) on `display`, titled `title`, with `env`.
    /// The agent's service finds the session by it. Killed on drop.
    ///
    /// # Errors
    /// xterm cannot start.
    pub fn terminal(
        &self,
        display: &str,
        title: &str,
        env: &[(&str, &str)],
    ) -> anyhow::Result<Terminal> {
        let child = self
            .command("xterm", Some(display))
            .envs(env.iter().copied())
            .args(["-T", title, "-geometry", "80x24+0+0", "-e", "cat"])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .context("cannot start the pupil's xterm")?;
        Ok(Terminal(child))
    }
}

/// A pupil's terminal; killed on drop (the pupil "logs out").
pub struct Terminal(pub std::process::Child);

impl Terminal {
    pub fn id(&self) -> u32 {
        self.0.id()
    }

    /// Ends it now, as a logout would.
    pub fn close(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        self.close();
    }
}

fn nanos() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() % 1_000_000)
        .unwrap_or(0)
}

impl Drop for Pupil {
    fn drop(&mut self) {
        // Anything still running as the pupil goes first.
        let _ = Command::new("pkill")
            .args(["-KILL", "-u", &self.name])
            .status();
        std::thread::sleep(std::time::Duration::from_millis(200));
        let _ = Command::new("userdel").arg(&self.name).status();
    }
}
