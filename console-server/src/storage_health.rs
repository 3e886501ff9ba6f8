//! Whether the console can write what laptops send, for the people who
//! must act on it.
//!
//! Two sources feed it: the ingest writer reports every batch (stored, or
//! failed and why), and a watcher reads the free space of the data
//! directory's volume every [`CHECK_EVERY`]. The web console shows a banner
//! on every page while either is wrong, and `GET /api/v1/health` returns the
//! same facts, so a full disk is noticed before anyone asks why the inbox is
//! quiet. While storing fails, laptops are told `Busy` and keep their
//! captures in their spools: nothing is acked that is not on disk, and
//! everything waiting arrives once space is freed.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use protocol::UnixMillis;
use serde::Serialize;
use tokio::sync::watch;

use crate::store::StoreError;

/// How often the free space is read.
pub const CHECK_EVERY: Duration = Duration::from_secs(30);
/// Free space below which the console warns: the smaller of this and
/// [`WARN_BELOW_FRACTION`] of the volume.
pub const WARN_BELOW_BYTES: u64 = 1 << 30;
/// See [`WARN_BELOW_BYTES`].
pub const WARN_BELOW_FRACTION: f64 = 0.05;

/// The space on the data directory's volume.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Space {
    /// Bytes this process may still write.
    pub free_bytes: u64,
    pub total_bytes: u64,
}

impl Space {
    /// Reads the space of the volume holding `path`.
    ///
    /// # Errors
    /// The path cannot be examined.
    pub fn of(path: &Path) -> std::io::Result<Space> {
        let s = rustix::fs::statvfs(path).map_err(std::io::Error::from)?;
        Ok(Space {
            free_bytes: s.f_bavail.saturating_mul(s.f_frsize),
            total_bytes: s.f_blocks.saturating_mul(s.f_frsize),
        })
    }

    /// True when the free space is below the warning line.
    pub fn low(&self) -> bool {
        // Precision is no concern at these sizes.
        #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation)]
        let fraction = (self.total_bytes as f64 * WARN_BELOW_FRACTION) as u64;
        self.free_bytes < WARN_BELOW_BYTES.min(fraction)
    }
}

/// Storing records has been failing since `since`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failing {
    pub since: UnixMillis,
    /// True when the failures are a full disk (or quota).
    pub disk_full: bool,
    /// The latest failure, as the storage layer put it.
    pub last_error: String,
    /// Batches refused since `since`.
    pub batches_refused: u64,
}

/// What is known now.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    /// The data directory, for the message telling staff where to free space.
    pub data_dir: String,
    pub failing: Option<Failing>,
    pub space: Option<Space>,
}

impl Report {
    /// True when nothing needs attention.
    pub fn ok(&self) -> bool {
        self.failing.is_none() && !self.space.is_some_and(|s| s.low())
    }

    /// One paragraph for staff, if anything needs attention.
    pub fn message(&self) -> Option<String> {
        let free = self.space.map(|s| {
            format!(
                "{} free of {}",
                human_bytes(s.free_bytes),
                human_bytes(s.total_bytes)
            )
        });
        if let Some(f) = &self.failing {
            let what = if f.disk_full {
                "the disk is full".to_owned()
            } else {
                format!("storage is failing ({})", f.last_error)
            };
            return Some(format!(
                "The console cannot store what laptops send: {what}, since {} UTC ({} batch{} refused{}). \
                 Laptops keep their captures and resend them every 30 seconds; nothing is lost while they wait. \
                 Free space on the volume holding {}.",
                utc_minutes(f.since),
                f.batches_refused,
                if f.batches_refused == 1 { "" } else { "es" },
                free.map(|s| format!("; {s}")).unwrap_or_default(),
                self.data_dir,
            ));
        }
        match self.space {
            Some(s) if s.low() => Some(format!(
                "The console's disk is nearly full: {} free of {} on the volume holding {}. \
                 When it fills, captures wait on the laptops until space is freed.",
                human_bytes(s.free_bytes),
                human_bytes(s.total_bytes),
                self.data_dir,
            )),
            _ => None,
        }
    }
}

/// The shared state; cheap to read from every request.
#[derive(Debug)]
pub struct StorageHealth {
    data_dir: PathBuf,
    state: Mutex<Report>,
}

impl StorageHealth {
    /// Starts with a first reading of the free space.
    pub fn new(data_dir: &Path) -> StorageHealth {
        let health = StorageHealth {
            data_dir: data_dir.to_owned(),
            state: Mutex::new(Report {
                data_dir: data_dir.display().to_string(),
                ..Report::default()
            }),
        };
        health.check_space();
        health
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Report> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A copy of what is known now.
    pub fn report(&self) -> Report {
        self.lock().clone()
    }

    /// The ingest writer stored a batch: storage works.
    pub fn stored(&self) {
        let recovered = self.lock().failing.take();
        if let Some(f) = recovered {
            tracing::warn!(
                "storing records works again, after failing since {} UTC ({} batches refused); laptops resend what waited",
                utc_minutes(f.since),
                f.batches_refused
            );
            // Space was freed: the banner must not wait for the next check.
            self.check_space();
        }
    }

    /// The ingest writer could not store a batch.
    pub fn failed(&self, error: &StoreError) {
        let disk_full = error.is_disk_full();
        let last_error = error.to_string();
        let mut s = self.lock();
        match &mut s.failing {
            Some(f) => {
                f.batches_refused += 1;
                f.disk_full = disk_full;
                f.last_error = last_error;
            }
            None => {
                tracing::error!(
                    "storing records failed ({last_error}); laptops are told to wait and resend{}",
                    if disk_full {
                        format!(
                            ". The disk is full: free space on the volume holding {}",
                            self.data_dir.display()
                        )
                    } else {
                        String::new()
                    }
                );
                s.failing = Some(Failing {
                    since: UnixMillis::now(),
                    disk_full,
                    last_error,
                    batches_refused: 1,
                });
            }
        }
        drop(s);
        if disk_full {
            self.check_space();
        }
    }

    /// Reads the free space now.
    pub fn check_space(&self) {
        let space = match Space::of(&self.data_dir) {
            Ok(space) => Some(space),
            Err(e) => {
                tracing::warn!(
                    "cannot read the free space of {}: {e}",
                    self.data_dir.display()
                );
                None
            }
        };
        let mut s = self.lock();
        let was_low = s.space.is_some_and(|s| s.low());
        match space {
            Some(sp) if sp.low() && !was_low => tracing::warn!(
                "the console's disk is nearly full: {} free of {} on the volume holding {}",
                human_bytes(sp.free_bytes),
                human_bytes(sp.total_bytes),
                self.data_dir.display()
            ),
            Some(sp) if !sp.low() && was_low => tracing::info!(
                "the console's disk has room again: {} free",
                human_bytes(sp.free_bytes)
            ),
            _ => {}
        }
        s.space = space;
    }
}

/// Reads the free space every [`CHECK_EVERY`] until shutdown.
pub async fn watch_space(
    health: std::sync::Arc<StorageHealth>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = shutdown.wait_for(|s| *s) => return,
            _ = tokio::time::sleep(CHECK_EVERY) => {}
        }
        let h = health.clone();
        let _ = tokio::task::spawn_blocking(move || h.check_space()).await;
    }
}

/// "1.2 GB", "340 MB", "12 kB" (powers of 1000, as disks are sold).
pub fn human_bytes(n: u64) -> String {
    const UNITS: [(u64, &str); 4] = [
        (1_000_000_000_000, "TB"),
        (1_000_000_000, "GB"),
        (1_000_000, "MB"),
        (1_000, "kB"),
    ];
    for (size, unit) in UNITS {
        if n >= size {
            let whole = n / size;
            let tenth = (n % size) * 10 / size;
            return if whole < 10 {
                format!("{whole}.{tenth} {unit}")
            } else {
                format!("{whole} {unit}")
            };
        }
    }
    format!("{n} bytes")
}

fn utc_minutes(t: UnixMillis) -> String {
    jiff::Timestamp::from_millisecond(t.0)
        .map(|ts| ts.strftime("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_else(|_| t.0.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_read_as_people_write_them() {
        assert_eq!(human_bytes(999), "999 bytes");
        assert_eq!(human_bytes(12_345), "12 kB");
        assert_eq!(human_bytes(1_250_000), "1.2 MB");
        assert_eq!(human_bytes(340_000_000), "340 MB");
        assert_eq!(human_bytes(21_000_000_000), "21 GB");
    }

    #[test]
    fn low_is_the_smaller_of_a_gigabyte_and_five_percent() {
        let small = Space {
            free_bytes: 400_000,
            total_bytes: 10_000_000,
        };
        assert!(small.low(), "4% free of a small volume is low");
        let ok = Space {
            free_bytes: 600_000,
            total_bytes: 10_000_000,
        };
        assert!(!ok.low());
        let big = Space {
            free_bytes: 2 << 30,
            total_bytes: 1 << 40,
        };
        assert!(!big.low(), "2 GiB free is enough even on a big volume");
    }

    #[test]
    fn a_failure_is_reported_until_a_batch_is_stored() {
        let dir = tempfile::tempdir().unwrap();
        let health = StorageHealth::new(dir.path());
        assert!(health.report().space.is_some());
        assert!(health.report().failing.is_none());
        let full = StoreError::Image {
            during: "writing screenshots",
            source: std::io::Error::from_raw_os_error(28),
        };
        health.failed(&full);
        health.failed(&full);
        let report = health.report();
        let failing = report.failing.clone().unwrap();
        assert!(failing.disk_full);
        assert_eq!(failing.batches_refused, 2);
        let message = report.message().unwrap();
        assert!(message.contains("the disk is full"), "{message}");
        assert!(message.contains("2 batches refused"), "{message}");
        assert!(message.contains(&dir.path().display().to_string()));
        health.stored();
        assert!(health.report().failing.is_none());
    }
}
