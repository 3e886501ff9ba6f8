//! The laptop's health, every minute, through `sysinfo`.

use protocol::{Heartbeat, UnixMillis};

use crate::spool::SpoolStats;

/// Reads the facts a heartbeat carries.
#[derive(Debug)]
pub struct HealthProbe {
    system: Option<sysinfo::System>,
    hostname: String,
    os: String,
}

impl Default for HealthProbe {
    fn default() -> Self {
        HealthProbe::new()
    }
}

impl HealthProbe {
    pub fn new() -> HealthProbe {
        HealthProbe {
            system: sysinfo::System::new().ok(),
            hostname: hostname(),
            os: os_name(),
        }
    }

    /// A heartbeat as of now.
    pub fn heartbeat(
        &mut self,
        user: Option<String>,
        spool: SpoolStats,
        policy_version: u64,
    ) -> Heartbeat {
        let (total, used) = match &mut self.system {
            Some(s) => {
                s.refresh_memory();
                (s.total_memory(), s.used_memory())
            }
            None => (0, 0),
        };
        let load = sysinfo::System::load_average()
            .map(|l| [l.one as f32, l.five as f32, l.fifteen as f32])
            .unwrap_or([0.0; 3]);
        Heartbeat {
            time: UnixMillis::now(),
            hostname: self.hostname.clone(),
            os: self.os.clone(),
            agent_version: crate::AGENT_VERSION.into(),
            user,
            uptime_seconds: sysinfo::System::uptime().unwrap_or(0),
            load,
            memory_total_bytes: total,
            memory_used_bytes: used,
            spool_depth: spool.records,
            spool_dropped: spool.images_dropped + spool.records_dropped,
            policy_version,
        }
    }
}

/// The laptop's host name.
pub fn hostname() -> String {
    sysinfo::System::host_name().unwrap_or_else(|_| "unknown-host".into())
}

/// The operating system, as "Debian GNU/Linux 12 (bookworm)" or the like.
pub fn os_name() -> String {
    sysinfo::System::long_os_version().unwrap_or_else(|_| std::env::consts::OS.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_real_figures() {
        let hb = HealthProbe::new().heartbeat(Some("pupil".into()), SpoolStats::default(), 3);
        assert!(!hb.hostname.is_empty() && hb.hostname != "unknown-host");
        assert!(hb.uptime_seconds > 0);
        assert!(hb.memory_total_bytes > hb.memory_used_bytes && hb.memory_used_bytes > 0);
        assert_eq!(hb.policy_version, 3);
        assert!(
            hb.os.to_lowercase().contains("linux") || hb.os.contains("Debian"),
            "{}",
            hb.os
        );
    }
}
