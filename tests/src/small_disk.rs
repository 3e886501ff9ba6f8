//! A small real disk for full-disk tests: a size-limited tmpfs mounted on a
//! directory, and ballast files that fill it to the last byte and are
//! removed to give the space back, as an operator would.
//!
//! Mounting needs root (or `CAP_SYS_ADMIN`); without it [`SmallDisk::mount`]
//! fails and says so, and the test fails: a full disk cannot be faked.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

/// A mounted tmpfs, unmounted on drop.
pub struct SmallDisk {
    path: PathBuf,
    ballast: Vec<PathBuf>,
}

impl SmallDisk {
    /// Mounts a tmpfs of `bytes` on `path` (created if missing).
    ///
    /// # Errors
    /// `mount` is missing or refuses (not root, no `CAP_SYS_ADMIN`).
    pub fn mount(path: &Path, bytes: u64) -> anyhow::Result<SmallDisk> {
        std::fs::create_dir_all(path)?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o"])
            .arg(format!("size={bytes},mode=0700"))
            .arg("tmpfs")
            .arg(path)
            .output()
            .context("cannot run mount (util-linux); the full-disk tests need it")?;
        if !out.status.success() {
            bail!(
                "cannot mount a {bytes}-byte tmpfs on {}: {}; the full-disk tests need root or CAP_SYS_ADMIN to make a real small disk",
                path.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(SmallDisk {
            path: path.to_owned(),
            ballast: Vec::new(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes still free.
    ///
    /// # Errors
    /// The mount cannot be examined.
    pub fn free_bytes(&self) -> anyhow::Result<u64> {
        let s = rustix::fs::statvfs(&self.path)?;
        Ok(s.f_bavail * s.f_frsize)
    }

    /// Writes ballast until the disk refuses another byte; returns how many
    /// bytes it took.
    ///
    /// # Errors
    /// A write fails for another reason than a full disk.
    pub fn fill(&mut self) -> anyhow::Result<u64> {
        let path = self.path.join(format!("ballast-{}", self.ballast.len()));
        let mut file = File::create(&path)
            .with_context(|| format!("cannot create the ballast {}", path.display()))?;
        self.ballast.push(path);
        let mut written = 0u64;
        // Big writes first, then ever smaller ones for the last pages.
        for chunk in [1 << 20, 64 << 10, 4 << 10, 512, 1] {
            let block = vec![0xA5u8; chunk];
            loop {
                match file.write(&block) {
                    Ok(0) => break,
                    Ok(n) => written += n as u64,
                    Err(e) if e.raw_os_error() == Some(28) => break,
                    Err(e) => return Err(e).context("writing ballast"),
                }
            }
        }
        match file.sync_all() {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(28) => {}
            Err(e) => return Err(e).context("syncing ballast"),
        }
        Ok(written)
    }

    /// Removes all ballast: the space is back.
    ///
    /// # Errors
    /// A ballast file cannot be removed.
    pub fn free(&mut self) -> anyhow::Result<()> {
        for path in self.ballast.drain(..) {
            std::fs::remove_file(&path)
                .with_context(|| format!("cannot remove the ballast {}", path.display()))?;
        }
        Ok(())
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        // Lazy: a process of the test may still hold a file open.
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}
