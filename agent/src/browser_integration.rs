//! `agent browser-integration install`: registers `agent native-host` with
//! every supported browser (the native-messaging host manifests) and,
//! system-wide, writes the managed browser policies a school wants: the
//! extension force-installed (when the school serves it: `--update-url`,
//! `--firefox-xpi-url`), private windows, guest and new profiles off, so a
//! pupil cannot leave the extension behind.
//!
//! The browsers start a host by a path with no arguments, so a small
//! wrapper script beside the manifests runs `agent native-host` with the
//! state directory. `--root` puts every system path under another
//! directory (for tests and for building an image).

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde_json::{Value, json};

/// The extension's fixed id in Chromium, Chrome, Edge and Brave: from the
/// public `key` in its manifest.
pub const CHROMIUM_EXTENSION_ID: &str = "kjkdkioccmibebpmnmmleilagkgegocp";
/// The extension's id in Firefox (`browser_specific_settings.gecko.id`).
pub const FIREFOX_EXTENSION_ID: &str = "page-reader@safeguard.invalid";
/// The native-messaging host's name, as the extension asks for it.
pub const HOST_NAME: &str = "org.safeguard.agent";

/// A Chromium-family browser: where its manifests and policies go.
struct Chromium {
    name: &'static str,
    /// Under the user's home.
    user_hosts: &'static str,
    system_hosts: &'static [&'static str],
    policies: &'static str,
    /// Its private-window policy.
    private_off: (&'static str, u8),
    add_profile_off: &'static str,
}

const CHROMIUMS: [Chromium; 4] = [
    Chromium {
        name: "Chromium",
        user_hosts: ".config/chromium/NativeMessagingHosts",
        system_hosts: &["etc/chromium/native-messaging-hosts"],
        policies: "etc/chromium/policies/managed",
        private_off: ("IncognitoModeAvailability", 1),
        add_profile_off: "BrowserAddPersonEnabled",
    },
    Chromium {
        name: "Google Chrome",
        user_hosts: ".config/google-chrome/NativeMessagingHosts",
        system_hosts: &["etc/opt/chrome/native-messaging-hosts"],
        policies: "etc/opt/chrome/policies/managed",
        private_off: ("IncognitoModeAvailability", 1),
        add_profile_off: "BrowserAddPersonEnabled",
    },
    Chromium {
        name: "Microsoft Edge",
        user_hosts: ".config/microsoft-edge/NativeMessagingHosts",
        system_hosts: &["etc/opt/edge/native-messaging-hosts"],
        policies: "etc/opt/edge/policies/managed",
        private_off: ("InPrivateModeAvailability", 1),
        add_profile_off: "BrowserAddProfileEnabled",
    },
    Chromium {
        name: "Brave",
        user_hosts: ".config/BraveSoftware/Brave-Browser/NativeMessagingHosts",
        system_hosts: &[
            "etc/opt/brave/native-messaging-hosts",
            "etc/brave/native-messaging-hosts",
        ],
        policies: "etc/brave/policies/managed",
        private_off: ("IncognitoModeAvailability", 1),
        add_profile_off: "BrowserAddPersonEnabled",
    },
];

const FIREFOX_USER_HOSTS: &str = ".mozilla/native-messaging-hosts";
const FIREFOX_SYSTEM_HOSTS: [&str; 2] = [
    "usr/lib/mozilla/native-messaging-hosts",
    "usr/lib64/mozilla/native-messaging-hosts",
];
const FIREFOX_POLICIES: &str = "etc/firefox/policies/policies.json";

/// What to install.
#[derive(Debug, Clone)]
pub struct Install {
    /// The current user's browser folders (under `home`), not the system's.
    pub user: bool,
    pub home: PathBuf,
    /// The root the system paths are under (`/`).
    pub root: PathBuf,
    /// The `agent` program the host runs.
    pub agent: PathBuf,
    /// The state directory whose service the host talks to.
    pub state_dir: PathBuf,
    /// Where Chromium-family browsers fetch the packed extension's update
    /// manifest (force-install needs one off the web stores).
    pub update_url: Option<String>,
    /// Where Firefox fetches the signed extension.
    pub firefox_xpi_url: Option<String>,
}

/// Installs; returns one line for each file written and each note.
///
/// # Errors
/// A file cannot be written (say which; system-wide needs root).
pub fn install(i: &Install) -> anyhow::Result<Vec<String>> {
    let mut said = Vec::new();
    let host_dir = if i.user {
        i.home.join(".local/share/safeguard-agent")
    } else {
        i.root.join("usr/local/lib/safeguard-agent")
    };
    let wrapper = host_dir.join("native-host");
    write(
        &wrapper,
        wrapper_script(&i.agent, &i.state_dir).as_bytes(),
        0o755,
    )?;
    said.push(format!(
        "wrote {} (runs agent native-host)",
        wrapper.display()
    ));

    let chromium_manifest = json!({
        "name": HOST_NAME,
        "description": "Safeguard page reader: hands page text to the Safeguard agent",
        "path": wrapper,
        "type": "stdio",
        "allowed_origins": [format!("chrome-extension://{CHROMIUM_EXTENSION_ID}/")],
    });
    let firefox_manifest = json!({
        "name": HOST_NAME,
        "description": "Safeguard page reader: hands page text to the Safeguard agent",
        "path": wrapper,
        "type": "stdio",
        "allowed_extensions": [FIREFOX_EXTENSION_ID],
    });
    let file = format!("{HOST_NAME}.json");
    for b in &CHROMIUMS {
        let dirs: Vec<PathBuf> = if i.user {
            vec![i.home.join(b.user_hosts)]
        } else {
            b.system_hosts.iter().map(|d| i.root.join(d)).collect()
        };
        for d in dirs {
            let path = d.join(&file);
            write(&path, &pretty(&chromium_manifest), 0o644)?;
            said.push(format!("wrote {} ({})", path.display(), b.name));
        }
    }
    let firefox_dirs: Vec<PathBuf> = if i.user {
        vec![i.home.join(FIREFOX_USER_HOSTS)]
    } else {
        FIREFOX_SYSTEM_HOSTS
            .iter()
            .map(|d| i.root.join(d))
            .collect()
    };
    for d in firefox_dirs {
        let path = d.join(&file);
        write(&path, &pretty(&firefox_manifest), 0o644)?;
        said.push(format!("wrote {} (Firefox)", path.display()));
    }
    if i.user {
        said.push("no browser policies for one user: the extension must be added to each browser by hand (or run this as root without --user)".into());
        return Ok(said);
    }

    for b in &CHROMIUMS {
        let path = i.root.join(b.policies).join("safeguard.json");
        write(
            &path,
            &pretty(&chromium_policy(b, i.update_url.as_deref())),
            0o644,
        )?;
        said.push(format!("wrote {} ({} policy)", path.display(), b.name));
    }
    let path = i.root.join(FIREFOX_POLICIES);
    let existing = match std::fs::read_to_string(&path) {
        Ok(text) => Some(serde_json::from_str::<Value>(&text).with_context(|| {
            format!(
                "{} is not JSON; fix or remove it, then run this again",
                path.display()
            )
        })?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let merged = firefox_policy(existing, i.firefox_xpi_url.as_deref())?;
    write(&path, &pretty(&merged), 0o644)?;
    said.push(format!("wrote {} (Firefox policy)", path.display()));
    if i.update_url.is_none() {
        said.push("no --update-url: Chromium, Chrome, Edge and Brave are told to keep private windows, guest and new profiles off, but not to install the extension; give the address of its update manifest to force-install it".into());
    }
    if i.firefox_xpi_url.is_none() {
        said.push("no --firefox-xpi-url: Firefox keeps private windows off, but is not told to install the extension; give the address of the signed .xpi to force-install it".into());
    }
    Ok(said)
}

/// The host wrapper: the browsers run it with their own arguments.
fn wrapper_script(agent: &Path, state_dir: &Path) -> String {
    format!(
        "#!/bin/sh\n# Written by `agent browser-integration install`: the native-messaging\n# host of the Safeguard page-reader extension.\nexec {} native-host --state-dir {} \"$@\"\n",
        shell_quote(&agent.to_string_lossy()),
        shell_quote(&state_dir.to_string_lossy())
    )
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn chromium_policy(b: &Chromium, update_url: Option<&str>) -> Value {
    let mut p = json!({
        b.private_off.0: b.private_off.1,
        "BrowserGuestModeEnabled": false,
        b.add_profile_off: false,
    });
    if let Some(url) = update_url {
        p["ExtensionInstallForcelist"] = json!([format!("{CHROMIUM_EXTENSION_ID};{url}")]);
    }
    p
}

/// Firefox has one policies file: ours is merged into the school's.
fn firefox_policy(existing: Option<Value>, xpi_url: Option<&str>) -> anyhow::Result<Value> {
    let mut all = existing.unwrap_or_else(|| json!({}));
    anyhow::ensure!(
        all.is_object(),
        "the Firefox policies file is not a JSON object"
    );
    if !all["policies"].is_object() {
        all["policies"] = json!({});
    }
    let p = &mut all["policies"];
    p["DisablePrivateBrowsing"] = json!(true);
    if let Some(url) = xpi_url {
        if !p["ExtensionSettings"].is_object() {
            p["ExtensionSettings"] = json!({});
        }
        p["ExtensionSettings"][FIREFOX_EXTENSION_ID] = json!({
            "installation_mode": "force_installed",
            "install_url": url,
            "private_browsing": true,
        });
    }
    Ok(all)
}

fn pretty(v: &Value) -> Vec<u8> {
    let mut bytes = serde_json::to_vec_pretty(v).expect("JSON values serialise");
    bytes.push(b'\n');
    bytes
}

fn write(path: &Path, bytes: &[u8], mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let dir = path.parent().context("a file has a folder")?;
    std::fs::create_dir_all(dir).with_context(|| {
        format!(
            "cannot create {} (system-wide needs root; for this user only, add --user)",
            dir.display()
        )
    })?;
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot set the mode of {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn install_into(tmp: &Path, user: bool, urls: bool) -> Vec<String> {
        install(&Install {
            user,
            home: tmp.join("home"),
            root: tmp.join("root"),
            agent: PathBuf::from("/usr/local/bin/agent"),
            state_dir: PathBuf::from("/var/lib/it's here"),
            update_url: urls
                .then(|| "https://console.school.lan:8443/extension/updates.xml".into()),
            firefox_xpi_url: urls
                .then(|| "https://console.school.lan:8443/extension/page-reader.xpi".into()),
        })
        .unwrap()
    }

    fn read(path: PathBuf) -> Value {
        serde_json::from_slice(
            &std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
        )
        .unwrap()
    }

    /// The id in the code is the one the manifest's key gives.
    #[test]
    fn the_extension_id_is_the_manifests() {
        use base64::Engine as _;
        let manifest: Value =
            serde_json::from_str(include_str!("../browser-extension/manifest.json")).unwrap();
        let der = base64::engine::general_purpose::STANDARD
            .decode(manifest["key"].as_str().unwrap())
            .unwrap();
        let digest = ring::digest::digest(&ring::digest::SHA256, &der);
        let id: String = digest.as_ref()[..16]
            .iter()
            .flat_map(|b| [b >> 4, b & 15])
            .map(|n| char::from(b'a' + n))
            .collect();
        assert_eq!(id, CHROMIUM_EXTENSION_ID);
        assert_eq!(
            manifest["browser_specific_settings"]["gecko"]["id"],
            FIREFOX_EXTENSION_ID
        );
        assert_eq!(manifest["manifest_version"], 3);
        assert!(
            include_str!("../browser-extension/background.js")
                .contains(&format!("\"{HOST_NAME}\""))
        );
    }

    #[test]
    fn user_install_writes_every_browsers_manifest_and_no_policy() {
        let tmp = tempfile::tempdir().unwrap();
        let said = install_into(tmp.path(), true, false);
        let home = tmp.path().join("home");
        let wrapper = home.join(".local/share/safeguard-agent/native-host");
        let script = std::fs::read_to_string(&wrapper).unwrap();
        assert!(script.contains("exec '/usr/local/bin/agent' native-host --state-dir '/var/lib/it'\\''s here' \"$@\""), "{script}");
        for b in &CHROMIUMS {
            let m = read(home.join(b.user_hosts).join("org.safeguard.agent.json"));
            assert_eq!(m["path"], wrapper.to_str().unwrap());
            assert_eq!(
                m["allowed_origins"][0],
                format!("chrome-extension://{CHROMIUM_EXTENSION_ID}/")
            );
        }
        let f = read(
            home.join(FIREFOX_USER_HOSTS)
                .join("org.safeguard.agent.json"),
        );
        assert_eq!(f["allowed_extensions"][0], FIREFOX_EXTENSION_ID);
        assert!(!tmp.path().join("root").exists(), "nothing system-wide");
        assert!(said.last().unwrap().contains("no browser policies"));
    }

    #[test]
    fn system_install_writes_policies_and_merges_firefoxs() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        let ff = root.join(FIREFOX_POLICIES);
        std::fs::create_dir_all(ff.parent().unwrap()).unwrap();
        std::fs::write(
            &ff,
            r#"{"policies": {"Homepage": {"URL": "https://school.example"}}}"#,
        )
        .unwrap();
        install_into(tmp.path(), false, true);
        let chromium = read(root.join("etc/chromium/policies/managed/safeguard.json"));
        assert_eq!(chromium["IncognitoModeAvailability"], 1);
        assert_eq!(chromium["BrowserGuestModeEnabled"], false);
        assert_eq!(
            chromium["ExtensionInstallForcelist"][0],
            format!(
                "{CHROMIUM_EXTENSION_ID};https://console.school.lan:8443/extension/updates.xml"
            )
        );
        let edge = read(root.join("etc/opt/edge/policies/managed/safeguard.json"));
        assert_eq!(edge["InPrivateModeAvailability"], 1);
        let firefox = read(ff.clone());
        assert_eq!(
            firefox["policies"]["Homepage"]["URL"], "https://school.example",
            "the school's own policy kept"
        );
        assert_eq!(firefox["policies"]["DisablePrivateBrowsing"], true);
        assert_eq!(
            firefox["policies"]["ExtensionSettings"][FIREFOX_EXTENSION_ID]["installation_mode"],
            "force_installed"
        );
        let m = read(root.join("usr/lib/mozilla/native-messaging-hosts/org.safeguard.agent.json"));
        assert_eq!(
            m["path"],
            root.join("usr/local/lib/safeguard-agent/native-host")
                .to_str()
                .unwrap()
        );
        // A broken policies file is not overwritten.
        std::fs::write(&ff, "{not json").unwrap();
        let err = install(&Install {
            user: false,
            home: tmp.path().join("home"),
            root: root.clone(),
            agent: PathBuf::from("/usr/local/bin/agent"),
            state_dir: PathBuf::from("/var/lib/safeguard-agent"),
            update_url: None,
            firefox_xpi_url: None,
        })
        .unwrap_err();
        assert!(format!("{err:#}").contains("is not JSON"), "{err:#}");
        assert_eq!(std::fs::read_to_string(&ff).unwrap(), "{not json");
    }
}
