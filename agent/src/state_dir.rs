//! The agent's state directory.
//!
//! ```text
//! DIR/              0755  root (so the session helpers reach the socket)
//!   agent.sock      0666  the service's Unix socket; peers are identified
//!                         by their kernel credentials, not by anything sent
//!   private/        0700  root only
//!     enrolment.toml      device id and console address
//!     device.pem          the device certificate
//!     device-key.pem 0600 its private key
//!     ca.pem              the console CA, pinned at enrollment
//!     policy.bin          the last policy the console sent (postcard)
//!     spool.db            the durable spool (SQLite, WAL)
//! ```

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use protocol::Policy;
use protocol::device_link::DeviceIdentity;
use protocol::pki::SecretPem;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Where a Debian or Ubuntu installation keeps its state.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/safeguard-agent";

/// The agent's state directory.
#[derive(Debug, Clone)]
pub struct StateDir {
    root: PathBuf,
}

/// What `private/enrolment.toml` holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EnrollmentFacts {
    pub device_id: Uuid,
    pub console_address: String,
    /// When the device enrolled (RFC 3339, for people reading the file).
    pub enrolled_at: String,
}

/// An enrolled device: who it is and where its console is.
#[derive(Debug, Clone)]
pub struct Enrollment {
    pub identity: DeviceIdentity,
    pub console_address: String,
}

impl StateDir {
    /// The directory at `root`; nothing is created until [`StateDir::create`].
    pub fn new(root: impl Into<PathBuf>) -> StateDir {
        StateDir { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn socket(&self) -> PathBuf {
        self.root.join("agent.sock")
    }

    pub fn private(&self) -> PathBuf {
        self.root.join("private")
    }

    pub fn spool(&self) -> PathBuf {
        self.private().join("spool.db")
    }

    fn policy_file(&self) -> PathBuf {
        self.private().join("policy.bin")
    }

    /// The layers as protocol 6 has them.
    fn layers_file(&self) -> PathBuf {
        self.private().join("layers6.bin")
    }

    /// The layers as an agent of protocol 5 saved them (postcard is not
    /// self-describing: each shape has a file of its own).
    fn layers_v5_file(&self) -> PathBuf {
        self.private().join("layers.bin")
    }

    /// Creates the directories with their modes, or tightens them.
    ///
    /// # Errors
    /// If the directories cannot be made (for the real path, run as root).
    pub fn create(&self) -> anyhow::Result<()> {
        for (dir, mode) in [(self.root.clone(), 0o755), (self.private(), 0o700)] {
            fs::create_dir_all(&dir).with_context(|| {
                format!(
                    "cannot create the agent's state directory {} (the service runs as root)",
                    dir.display()
                )
            })?;
            fs::set_permissions(&dir, fs::Permissions::from_mode(mode))
                .with_context(|| format!("cannot set the mode of {}", dir.display()))?;
        }
        Ok(())
    }

    /// Whether `agent enroll` has run here.
    pub fn is_enrolled(&self) -> bool {
        self.private().join("enrolment.toml").exists()
    }

    /// Fails if an enrollment is already here (checked before a token is
    /// spent, and again before anything is written).
    ///
    /// # Errors
    /// The device is enrolled here, saying how to enroll again.
    pub fn ensure_not_enrolled(&self) -> anyhow::Result<()> {
        if self.is_enrolled() {
            bail!(
                "{} already holds an enrollment; to enroll again, stop the agent and remove {}",
                self.root.display(),
                self.private().display()
            );
        }
        Ok(())
    }

    /// Stores what enrollment returned. Refuses to overwrite an enrollment.
    ///
    /// # Errors
    /// If the device is already enrolled here or a file cannot be written.
    pub fn save_enrollment(
        &self,
        enrolled: &protocol::enroll::Enrolled,
        console_address: &str,
        now_rfc3339: String,
    ) -> anyhow::Result<()> {
        self.ensure_not_enrolled()?;
        self.create()?;
        let private = self.private();
        write_private(&private.join("device-key.pem"), enrolled.key_pem.expose())?;
        write_private(&private.join("device.pem"), &enrolled.certificate_pem)?;
        write_private(&private.join("ca.pem"), &enrolled.ca_pem)?;
        let facts = EnrollmentFacts {
            device_id: enrolled.device_id,
            console_address: console_address.to_owned(),
            enrolled_at: now_rfc3339,
        };
        // Written last: its presence means the enrollment is complete.
        write_private(
            &private.join("enrolment.toml"),
            &toml::to_string(&facts).context("cannot write the enrollment facts")?,
        )
    }

    /// Loads the device identity.
    ///
    /// # Errors
    /// If the device is not enrolled (saying how to enroll) or a file is damaged.
    pub fn enrollment(&self) -> anyhow::Result<Enrollment> {
        let private = self.private();
        if !self.is_enrolled() {
            bail!(
                "this laptop is not enrolled ({} has no enrollment); run `agent enroll TOKEN --state-dir {}` with a token from `console-server enroll-token`",
                self.root.display(),
                self.root.display()
            );
        }
        let read = |name: &str| {
            fs::read_to_string(private.join(name))
                .with_context(|| format!("cannot read {}", private.join(name).display()))
        };
        let facts: EnrollmentFacts = toml::from_str(&read("enrolment.toml")?)
            .context("private/enrolment.toml is damaged")?;
        Ok(Enrollment {
            identity: DeviceIdentity {
                device_id: facts.device_id,
                certificate_pem: read("device.pem")?,
                key_pem: SecretPem::new(read("device-key.pem")?),
                ca_pem: read("ca.pem")?,
            },
            console_address: facts.console_address,
        })
    }

    /// The policy last received, or `None` if the console has sent none (or
    /// the file is damaged, which is logged: the console sends it again).
    pub fn load_policy(&self) -> Option<Policy> {
        let bytes = fs::read(self.policy_file()).ok()?;
        // A policy saved before protocol 7 is in the older shape.
        let read = postcard::from_bytes::<Policy>(&bytes).or_else(|e| {
            postcard::from_bytes::<protocol::policy_v6::Policy>(&bytes)
                .map(Into::into)
                .map_err(|_| e)
        });
        match read {
            Ok(p) => Some(p),
            Err(e) => {
                tracing::warn!(
                    "the saved policy is damaged ({e}); using the baseline until the console sends one"
                );
                None
            }
        }
    }

    /// Saves a policy atomically (write, sync, rename).
    ///
    /// # Errors
    /// If it cannot be written.
    pub fn save_policy(&self, policy: &Policy) -> anyhow::Result<()> {
        let bytes = postcard::to_stdvec(policy).context("cannot encode the policy")?;
        let tmp = self.private().join("policy.bin.tmp");
        write_private(&tmp, &bytes)?;
        fs::rename(&tmp, self.policy_file()).context("cannot replace the saved policy")
    }
}

impl StateDir {
    /// The policy's layers for groups as last received, if any (a file
    /// an agent of protocol 5 saved is read in its shape).
    pub fn load_layers(&self) -> Option<protocol::layers::GroupLayers> {
        let read = match fs::read(self.layers_file()) {
            Ok(bytes) => postcard::from_bytes::<protocol::layers::GroupLayers>(&bytes),
            Err(_) => {
                let bytes = fs::read(self.layers_v5_file()).ok()?;
                postcard::from_bytes::<protocol::layers::wire5::GroupLayers>(&bytes).map(Into::into)
            }
        };
        match read {
            Ok(l) => Some(l),
            Err(e) => {
                tracing::warn!(
                    "the saved policy layers are damaged ({e}); the school's policy applies to everyone until the console sends them"
                );
                None
            }
        }
    }

    /// Saves the layers atomically (write, sync, rename).
    ///
    /// # Errors
    /// If they cannot be written.
    pub fn save_layers(&self, layers: &protocol::layers::GroupLayers) -> anyhow::Result<()> {
        let bytes = postcard::to_stdvec(layers).context("cannot encode the policy layers")?;
        let tmp = self.private().join("layers.bin.tmp");
        write_private(&tmp, &bytes)?;
        fs::rename(&tmp, self.layers_file()).context("cannot replace the saved policy layers")
    }
}

/// Writes a file only root can read, synced to disk.
fn write_private(path: &Path, contents: impl AsRef<[u8]>) -> anyhow::Result<()> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    f.write_all(contents.as_ref())
        .and_then(|()| f.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_and_policy_round_trip() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = StateDir::new(tmp.path().join("state"));
        dir.create().unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(dir.root()), 0o755);
        assert_eq!(mode(&dir.private()), 0o700);
        assert!(dir.load_policy().is_none());
        let mut policy = Policy::baseline();
        policy.version = 7;
        dir.save_policy(&policy).unwrap();
        assert_eq!(dir.load_policy().unwrap(), policy);
        assert_eq!(mode(&dir.private().join("policy.bin")), 0o600);
        policy.semantic = false;
        dir.save_policy(&policy).unwrap();
        assert_eq!(dir.load_policy().unwrap(), policy);
        // A file saved by an agent of protocol 6 reads, with the semantic
        // layer on (its console did not know of it).
        let old = postcard::to_stdvec(&protocol::policy_v6::Policy::from(&policy)).unwrap();
        fs::write(dir.private().join("policy.bin"), old).unwrap();
        let read = dir.load_policy().unwrap();
        assert!(read.semantic);
        assert_eq!(read.version, 7);
        fs::write(dir.private().join("policy.bin"), b"\xff\xff").unwrap();
        assert!(dir.load_policy().is_none());
        let err = dir.enrollment().unwrap_err().to_string();
        assert!(
            err.contains("not enrolled") && err.contains("agent enroll"),
            "{err}"
        );
    }

    #[test]
    fn layers_round_trip_and_a_protocol_5_file_still_reads() {
        use protocol::layers::{GroupLayers, Layer, MonitoringHours, Overrides, Term, wire5};
        let tmp = tempfile::tempdir().unwrap();
        let dir = StateDir::new(tmp.path().join("state"));
        dir.create().unwrap();
        assert!(dir.load_layers().is_none());
        let layers = GroupLayers {
            version: 3,
            layers: vec![Layer {
                group: "year:Year 7".into(),
                overrides: Overrides {
                    hours: Some(MonitoringHours::parse("Mon-Fri 08:00-16:00, term time").unwrap()),
                    ..Overrides::default()
                },
            }],
            accounts: vec![("amy".into(), vec!["year:Year 7".into()])],
            device_groups: Vec::new(),
            terms: vec![Term::parse("2026-09-03..2026-12-18").unwrap()],
            aups: Vec::new(),
        };
        // What an agent of protocol 5 saved before it was upgraded.
        let old = wire5::GroupLayers::from(&layers);
        fs::write(
            dir.private().join("layers.bin"),
            postcard::to_stdvec(&old).unwrap(),
        )
        .unwrap();
        let read = dir.load_layers().unwrap();
        assert_eq!(read.layers[0].group, "year:Year 7");
        assert!(!read.layers[0].overrides.hours.as_ref().unwrap().term_time);
        // Saved now, it is read back whole, terms and all.
        dir.save_layers(&layers).unwrap();
        assert_eq!(dir.load_layers().unwrap(), layers);
        assert_eq!(mode_of(&dir.private().join("layers6.bin")), 0o600);
    }

    fn mode_of(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o777
    }
}
