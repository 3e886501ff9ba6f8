//! A D-Bus session bus and the accessibility bus on it, for tests of the
//! agent's accessibility reader: Debian's `dbus-daemon` and
//! `at-spi-bus-launcher` (package at-spi2-core), started by the test and
//! killed on drop. A missing tool fails the test and names its package.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};

const LAUNCHER: &str = "/usr/libexec/at-spi-bus-launcher";

/// A running session bus with the accessibility bus launched on it.
pub struct SessionBus {
    /// `DBUS_SESSION_BUS_ADDRESS` for programs on it.
    pub address: String,
    children: Vec<Child>,
}

impl SessionBus {
    /// Starts `dbus-daemon --session`, then the accessibility bus
    /// launcher on it (for the X display `display`), and waits until the
    /// accessibility bus answers.
    ///
    /// # Errors
    /// A tool is missing or a bus does not come up within 20 s.
    pub fn start(display: &str) -> anyhow::Result<SessionBus> {
        Self::start_with(display, |program| Command::new(program))
    }

    /// As [`SessionBus::start`], every process run as `pupil` (a session
    /// bus takes connections only from its own user).
    ///
    /// # Errors
    /// As [`SessionBus::start`].
    pub fn start_as(display: &str, pupil: &crate::pupil::Pupil) -> anyhow::Result<SessionBus> {
        Self::start_with(display, |program| pupil.command(program, Some(display)))
    }

    fn start_with(display: &str, command: impl Fn(&str) -> Command) -> anyhow::Result<SessionBus> {
        crate::desktop::require("dbus-daemon", "dbus")?;
        crate::desktop::require("dbus-send", "dbus")?;
        if !Path::new(LAUNCHER).exists() {
            bail!(
                "{LAUNCHER} is not installed (Debian package at-spi2-core); `./tests/run` installs it"
            );
        }
        let mut daemon = command("dbus-daemon")
            .args(["--session", "--nofork", "--print-address=1"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start dbus-daemon")?;
        let stdout = daemon.stdout.take().context("dbus-daemon's output")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
            let _ = tx.send(line);
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
        });
        let mut bus = SessionBus {
            address: String::new(),
            children: vec![daemon],
        };
        bus.address = rx
            .recv_timeout(Duration::from_secs(20))
            .context("dbus-daemon did not say its address within 20 s")?
            .trim()
            .to_owned();
        let launcher = command(LAUNCHER)
            .arg("--launch-immediately")
            .env("DBUS_SESSION_BUS_ADDRESS", &bus.address)
            .env("DISPLAY", display)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start at-spi-bus-launcher")?;
        bus.children.push(launcher);
        let up = crate::desktop::wait_for(Duration::from_secs(20), || {
            command("dbus-send")
                .args([
                    "--session",
                    "--print-reply",
                    "--dest=org.a11y.Bus",
                    "/org/a11y/bus",
                    "org.a11y.Bus.GetAddress",
                ])
                .env("DBUS_SESSION_BUS_ADDRESS", &bus.address)
                .output()
                .is_ok_and(|o| o.status.success())
        });
        if !up {
            bail!(
                "the accessibility bus did not answer on {} within 20 s",
                bus.address
            );
        }
        Ok(bus)
    }
}

impl Drop for SessionBus {
    fn drop(&mut self) {
        for child in self.children.iter_mut().rev() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
