//! A real X desktop for end-to-end tests: Xvfb, the openbox window
//! manager, xterm windows, xdotool typing. A missing tool fails the test
//! and names the Debian package (`./tests/run` installs them all).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// zenity's arguments for a 900×600 text window titled "Messages" that
/// shows a file (its path comes next): a message received, as other
/// applications show text the accessibility bus reads.
pub const ZENITY_MESSAGES: [&str; 8] = [
    "--text-info",
    "--title",
    "Messages",
    "--width",
    "900",
    "--height",
    "600",
    "--filename",
];

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
        // Xvfb picks a free display number itself and writes it to the
        // descriptor given (its standard output): tests running at once
        // never race for a number.
        let mut xvfb = Command::new("Xvfb")
            .args([
                "-displayfd",
                "1",
                "-screen",
                "0",
                &format!("{width}x{height}x24"),
                "-nolisten",
                "tcp",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start Xvfb")?;
        let stdout = xvfb.stdout.take().context("Xvfb's standard output")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = std::io::BufReader::new(stdout);
            let mut line = String::new();
            let _ = std::io::BufRead::read_line(&mut reader, &mut line);
            let _ = tx.send(line);
            // Anything more it writes is read and dropped: a closed pipe
            // would kill it.
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
        });
        let mut desktop = XDesktop {
            display: String::new(),
            children: vec![xvfb],
            width,
            height,
        };
        let number = rx
            .recv_timeout(Duration::from_secs(20))
            .context("Xvfb did not say which display it took within 20 s")?;
        let number: u32 = number
            .trim()
            .parse()
            .with_context(|| format!("Xvfb named its display {number:?}"))?;
        let display = format!(":{number}");
        desktop.display.clone_from(&display);
        // Ready when a client can talk to it.
        if !wait_for(Duration::from_secs(20), || {
            desktop.xdotool_quiet(&["getdisplaygeometry"]).is_ok()
        }) {
            bail!("Xvfb on {display} does not answer");
        }
        // openbox now and then exits at once, silently, with status 1 when
        // several desktops start together. Each desktop's openbox gets a
        // cache directory of its own (they shared ~/.cache/openbox) and no
        // session manager; it is started again (five tries, a little later
        // each time), and must then be managing.
        let openbox_log =
            std::env::temp_dir().join(format!("openbox-{number}-{}.log", std::process::id()));
        let openbox_cache =
            std::env::temp_dir().join(format!("openbox-cache-{number}-{}", std::process::id()));
        std::fs::create_dir_all(&openbox_cache)?;
        let managing = || {
            Command::new("xprop")
                .args(["-root", "_NET_SUPPORTING_WM_CHECK"])
                .env("DISPLAY", &display)
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).contains("window id"))
                .unwrap_or(false)
        };
        let mut exits = Vec::new();
        for attempt in 0..5u32 {
            if attempt > 0 {
                std::thread::sleep(Duration::from_millis(250 * u64::from(attempt)));
            }
            let mut openbox = Command::new("openbox")
                .arg("--sm-disable")
                .env("DISPLAY", &display)
                .env("XDG_CACHE_HOME", &openbox_cache)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&openbox_log)?)
                .spawn()
                .context("cannot start openbox")?;
            // openbox is managing once it has set _NET_SUPPORTING_WM_CHECK.
            wait_for(Duration::from_secs(20), || {
                managing() || matches!(openbox.try_wait(), Ok(Some(_)))
            });
            match openbox.try_wait() {
                Ok(Some(status)) => exits.push(status),
                _ if managing() => {
                    let _ = std::fs::remove_file(&openbox_log);
                    desktop.children.push(openbox);
                    return Ok(desktop);
                }
                _ => {
                    let _ = openbox.kill();
                    let _ = openbox.wait();
                    break;
                }
            }
        }
        let output = std::fs::read_to_string(&openbox_log).unwrap_or_default();
        let _ = std::fs::remove_file(&openbox_log);
        bail!("openbox did not start on {display} (exits: {exits:?}); its output:\n{output}")
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

    /// The id of the visible window titled exactly `title`, waiting for it
    /// to show (xdotool's own `--sync`, up to 60 s).
    ///
    /// # Errors
    /// It never shows.
    pub fn window(&self, title: &str) -> anyhow::Result<String> {
        Ok(self
            .xdotool(&[
                "search",
                "--sync",
                "--onlyvisible",
                "--name",
                &format!("^{title}$"),
            ])?
            .lines()
            .next()
            .with_context(|| format!("no window titled {title:?}"))?
            .to_owned())
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
