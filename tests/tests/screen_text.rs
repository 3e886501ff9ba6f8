//! Other applications' on-screen text, end to end: a GTK application's
//! text window (`zenity --text-info`) showing a risky phrase becomes a
//! `screen_text` capture naming that application. The test starts a
//! session bus and the accessibility bus itself; the real agent reads
//! the text through AT-SPI (pure-Rust `atspi`/`zbus`), on a real X
//! server (Xvfb + openbox).

use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, ensure};
use serde_json::Value;
use tests::agent_process::{AgentProcess, EnrolledBed};
use tests::desktop::{XDesktop, ZENITY_MESSAGES, require, wait_for};
use tests::session_bus::SessionBus;

/// Kills a child on drop.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A desktop with a session bus, an enrolled bed, and the real agent
/// reading other applications' text through the accessibility bus.
struct Reading {
    x: XDesktop,
    bus: SessionBus,
    bed: EnrolledBed,
    agent: AgentProcess,
}

impl Reading {
    fn start(extra: &[&str]) -> anyhow::Result<Reading> {
        require("zenity", "zenity")?;
        let x = XDesktop::start()?;
        let bus = SessionBus::start(&x.display)?;
        let bed = EnrolledBed::new()?;
        let agent = AgentProcess::start_with_env(
            "run",
            &bed.state,
            Some(&x.display),
            &bed.home,
            extra,
            &[("DBUS_SESSION_BUS_ADDRESS", &bus.address)],
        )?;
        agent.wait_log("watching the X display", Duration::from_secs(30))?;
        agent.answer_aup(&x, 1, true)?;
        agent
            .wait_log(
                "reading on-screen text through the accessibility bus",
                Duration::from_secs(30),
            )
            .context("the agent never reached the accessibility bus")?;
        Ok(Reading { x, bus, bed, agent })
    }

    /// Shows `text` in a zenity text window titled "Messages".
    fn show_messages(&self, text: &str) -> anyhow::Result<Killed> {
        let file = self.bed.tmp.path().join("message.txt");
        std::fs::write(&file, text)?;
        Ok(Killed(
            Command::new("zenity")
                .args(ZENITY_MESSAGES)
                .arg(&file)
                .env("DISPLAY", &self.x.display)
                .env("DBUS_SESSION_BUS_ADDRESS", &self.bus.address)
                .env("HOME", &self.bed.home)
                .env_remove("NO_AT_BRIDGE")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .context("cannot start zenity")?,
        ))
    }

    /// The screen_text captures, once `ok` holds for them (up to 30 s);
    /// an error with the agent's log if none came.
    fn captures_until(&self, ok: impl Fn(&[Value]) -> bool) -> anyhow::Result<Vec<Value>> {
        let mut found: Vec<Value> = Vec::new();
        wait_for(Duration::from_secs(30), || {
            let Ok((200, body)) = self
                .bed
                .api
                .get("/api/v1/captures?source=screen_text&limit=100")
            else {
                return false;
            };
            found = body["captures"].as_array().cloned().unwrap_or_default();
            ok(&found)
        });
        ensure!(
            !found.is_empty(),
            "no screen_text capture from the zenity window within 30 s; agent log:\n{}",
            self.agent.log_text()
        );
        Ok(found)
    }
}

/// A message received that no term names, shown in another application,
/// is captured by the semantic layer (issue 20): what a pupil views, not
/// only what she types.
#[test]
fn a_message_received_without_a_risky_word_is_captured_by_the_semantic_layer() -> anyhow::Result<()>
{
    let model = tests::agent_process::semantic_model()?;
    let r = Reading::start(&["--semantic-model", &model])?;
    r.agent
        .wait_log("semantic layer loaded", Duration::from_secs(60))?;
    let _zenity = r.show_messages("Messages from Sam\n\nSam: does ur mum read ur messages\n")?;
    let found = r.captures_until(|found| !found.is_empty())?;
    let c = &found[0];
    ensure!(
        c["term"]
            .as_str()
            .is_some_and(|t| t.starts_with("semantic layer: reads as grooming")),
        "{found:?}"
    );
    ensure!(
        c["app"] == "Zenity" && c["window_title"] == "Messages",
        "{c}"
    );
    Ok(())
}

#[test]
fn a_gtk_text_window_showing_a_risky_phrase_becomes_a_capture() -> anyhow::Result<()> {
    let r = Reading::start(&[])?;
    let _zenity = r.show_messages(
        "Messages from Alex\n\nAlex: its our secret ok, delete this chat after you read it\nAlex: and send me a pic of you in the morning\n",
    )?;
    // Both lines' captures: the secret and the request for a picture.
    let found = r.captures_until(|found| {
        ["grooming", "sexting"]
            .iter()
            .all(|cat| found.iter().any(|c| c["category"] == *cat))
    })?;
    let c = &found[0];
    ensure!(
        c["app"] == "Zenity",
        "the capture names {:?}, not Zenity: {c}",
        c["app"]
    );
    ensure!(c["window_title"] == "Messages", "{c}");
    ensure!(
        found.iter().any(|c| c["term"] == "its our secret")
            && found
                .iter()
                .any(|c| c["term"] == "send me a pic" || c["term"] == "send me a picture of you"),
        "{found:?}"
    );
    ensure!(c["has_image"] == true, "{c}");
    ensure!(c["url"].is_null(), "{c}");
    Ok(())
}
