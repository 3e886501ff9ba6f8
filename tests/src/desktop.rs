//! A real X desktop for end-to-end tests: Xvfb, the openbox window
//! manager, xterm windows, xdotool typing. A missing tool fails the test
//! and names the Debian package (`./tests/run` installs them all).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// Fails, naming the package, if `tool` is not on the PATH.
///
/// # Errors
/// The tool is missing.
pub fn require(tool: &str, package: &str) -> anyhow::Result<()> {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false);
    if !found {
        bail!("{tool} is not installed (Debian package {package}); `./tests/run` installs it");
    }
    Ok(())
}

/// An Xvfb display with openbox running on it. Everything is killed on drop.
pub struct XDesktop {
    pub display: String,
    children: Vec<Child>,
    pub width: u32,
    pub height: u32,
}

impl XDesktop {
    /// Starts Xvfb (1280x800, 24-bit) on a free display and openbox on it.
    ///
    /// # Errors
    /// A tool is missing or the server does not come up within 20 s.
    pub fn start() -> anyhow::Result<XDesktop> {
        require("Xvfb", "xvfb")?;
        require("openbox", "openbox")?;
        require("xdotool", "xdotool")?;
        require("xterm", "xterm")?;
        let (width, height) = (1280, 800);
        // A display number no other test (or process) holds.
        let base = 300 + (std::process::id() % 500) * 7;
        for n in base..base + 50 {
            let socket = PathBuf::from(format!("/tmp/.X11-unix/X{n}"));
            let lock = PathBuf::from(format!("/tmp/.X{n}-lock"));
            if socket.exists() || lock.exists() {
                continue;
            }
            let display = format!(":{n}");
            let xvfb = Command::new("Xvfb")
                .args([
                    &display,
                    "-screen",
                    "0",
                    &format!("{width}x{height}x24"),
                    "-nolisten",
                    "tcp",
                ])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .context("cannot start Xvfb")?;
            let mut desktop = XDesktop {
                display: display.clone(),
                children: vec![xvfb],
                width,
                height,
            };
            if !wait_for(Duration::from_secs(20), || socket.exists()) {
                // Another test took the number first: try the next one.
                continue;
            }
            // Ready when a client can talk to it.
            if !wait_for(Duration::from_secs(20), || {
                desktop.xdotool_quiet(&["getdisplaygeometry"]).is_ok()
            }) {
                bail!("Xvfb on {display} does not answer");
            }
            let openbox = Command::new("openbox")
                .env("DISPLAY", &display)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .context("cannot start openbox")?;
            desktop.children.push(openbox);
            // openbox is managing once it has set _NET_SUPPORTING_WM_CHECK.
            if !wait_for(Duration::from_secs(20), || {
                Command::new("xprop")
                    .args(["-root", "_NET_SUPPORTING_WM_CHECK"])
                    .env("DISPLAY", &display)
                    .output()
                    .map(|o| String::from_utf8_lossy(&o.stdout).contains("window id"))
                    .unwrap_or(false)
            }) {
                bail!("openbox did not start on {display}");
            }
            return Ok(desktop);
        }
        bail!("no free X display number from {base}")
    }

    /// Opens an xterm titled `title` at the top left, 80x24, black on
    /// white, focused, running `cat` (typed lines are echoed, never run),
    /// and returns its window id once it is mapped.
    ///
    /// # Errors
    /// It does not appear within 20 s.
    pub fn xterm(&mut self, title: &str) -> anyhow::Result<String> {
        let child = Command::new("xterm")
            .args([
                "-T",
                title,
                "-geometry",
                "80x24+0+0",
                "-bg",
                "white",
                "-fg",
                "black",
                "-e",
                "cat",
            ])
            .env("DISPLAY", &self.display)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start xterm")?;
        self.children.push(child);
        let id = self
            .xdotool(&[
                "search",
                "--sync",
                "--onlyvisible",
                "--name",
                &format!("^{title}$"),
            ])?
            .lines()
            .next()
            .context("xdotool found no xterm")?
            .to_owned();
        self.xdotool(&["windowactivate", "--sync", &id])?;
        Ok(id)
    }

    /// Runs xdotool on this display; returns its output.
    ///
    /// # Errors
    /// xdotool fails (within 60 s).
    pub fn xdotool(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = self.xdotool_quiet(args)?;
        Ok(out)
    }

    fn xdotool_quiet(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = Command::new("timeout")
            .arg("60")
            .arg("xdotool")
            .args(args)
            .env("DISPLAY", &self.display)
            .output()
            .context("cannot run xdotool")?;
        if !out.status.success() {
            bail!(
                "xdotool {args:?} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Types text into the focused window, as a person would, key by key.
    ///
    /// # Errors
    /// xdotool fails.
    pub fn type_text(&self, text: &str) -> anyhow::Result<()> {
        self.xdotool(&["type", "--delay", "15", text]).map(drop)
    }

    /// Presses keys by name ("BackSpace", "Return", …).
    ///
    /// # Errors
    /// xdotool fails.
    pub fn keys(&self, keys: &[&str]) -> anyhow::Result<()> {
        let mut args = vec!["key", "--delay", "15"];
        args.extend_from_slice(keys);
        self.xdotool(&args).map(drop)
    }

    /// Starts a program on this display (killed with the desktop).
    ///
    /// # Errors
    /// It cannot start.
    pub fn spawn(&mut self, program: &str, args: &[&str], home: &Path) -> anyhow::Result<()> {
        let child = Command::new(program)
            .args(args)
            .env("DISPLAY", &self.display)
            .env("HOME", home)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("cannot start {program}"))?;
        self.children.push(child);
        Ok(())
    }
}

impl Drop for XDesktop {
    fn drop(&mut self) {
        for child in self.children.iter_mut().rev() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Polls `ok` every 50 ms until it holds or `within` passes.
pub fn wait_for(within: Duration, mut ok: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if ok() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
