//! The store's laptops: enrollment records, connections, presence
//! (offline, online, silent while a user is logged in) and revocation.

use std::collections::HashSet;

use protocol::UnixMillis;
use uuid::Uuid;

use super::sql::{Db, Row, SqlError, params};
use super::sql_alerts::plan_in;
use super::sql_store::*;
use super::*;
use crate::alerts::rules::Happening;

fn device_row(r: &Row) -> Result<Device, SqlError> {
    let heartbeat: Option<String> = r.get(9)?;
    Ok(Device {
        id: r.get(0)?,
        hostname: r.get(1)?,
        os: r.get(2)?,
        agent_version: r.get(3)?,
        user: r.get(4)?,
        enrolled: r.get::<Option<UnixMillis>>(5)?.map(rfc3339),
        last_seen: r.get::<Option<UnixMillis>>(6)?.map(rfc3339),
        online: r.get(7)?,
        revoked: r.get::<Option<UnixMillis>>(8)?.map(rfc3339),
        heartbeat: heartbeat.and_then(|h| serde_json::from_str(&h).ok()),
        health: r
            .get::<Option<String>>(10)?
            .and_then(|h| serde_json::from_str(&h).ok()),
        open_tamper_events: r.get::<i64>(11)?.max(0) as u64,
        silent_since: r.get::<Option<UnixMillis>>(12)?.map(rfc3339),
        school: r.get(13)?,
    })
}

/// Who a device last said was logged in: the users of its latest health's
/// sessions, or, with no health (an agent older than protocol version 4),
/// its heartbeat's user.
fn logged_in(user: Option<String>, health: Option<&str>) -> Vec<String> {
    let Some(health) = health else {
        return user.into_iter().filter(|u| !u.is_empty()).collect();
    };
    let health: serde_json::Value = serde_json::from_str(health).unwrap_or_default();
    let mut users: Vec<String> = health["sessions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["user"].as_str())
        .filter(|u| !u.is_empty())
        .map(str::to_owned)
        .collect();
    users.sort();
    users.dedup();
    users
}

/// `14:05` (with the date when not today) in the school's zone.
fn clock_time(t: UnixMillis) -> String {
    let zone = crate::school_week::zone();
    match jiff::Timestamp::from_millisecond(t.0) {
        Ok(ts) => {
            let at = ts.to_zoned(zone.clone());
            if at.date() == jiff::Timestamp::now().to_zoned(zone).date() {
                at.strftime("%H:%M:%S").to_string()
            } else {
                at.strftime("%a %-d %b %H:%M:%S").to_string()
            }
        }
        Err(_) => format!("an invalid time ({} ms)", t.0),
    }
}

/// `3 min 20 s`, `2 h 5 min`.
fn gap_length(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min {} s", s / 60, s % 60),
        _ => format!("{} h {} min", s / 3600, (s % 3600) / 60),
    }
}

fn insert_event(
    db: &mut Db<'_, '_>,
    now: UnixMillis,
    kind: &str,
    device: Option<&str>,
    detail: &str,
) -> Result<Event, SqlError> {
    let id: i64 = db.query_row(
        "INSERT INTO events (time, kind, device, detail) VALUES (?1, ?2, ?3, ?4) RETURNING id",
        &params![now, kind, device, detail],
        |r| r.get(0),
    )?;
    Ok(Event {
        id,
        time: rfc3339(now),
        kind: kind.to_owned(),
        device: device.and_then(|d| Uuid::parse_str(d).ok()),
        detail: detail.to_owned(),
    })
}

impl DeviceStore for SqlStore {
    fn add_device(
        &self,
        id: Uuid,
        hostname: &str,
        os: &str,
        agent_version: &str,
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        self.write("recording an enrolled device", |db| {
            db.execute(
                "INSERT INTO devices (id, hostname, os, agent_version, enrolled, first_seen)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
                &params![id, hostname, os, agent_version, now],
            )
        })?;
        Ok(())
    }

    fn device_connected(
        &self,
        id: Uuid,
        agent_version: &str,
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        self.write("recording a device connection", |db| {
            db.execute(
                "INSERT INTO devices (id, agent_version, first_seen, last_seen)
                 VALUES (?1, ?2, ?3, ?3)
                 ON CONFLICT (id) DO UPDATE SET agent_version = ?2, last_seen = ?3",
                &params![id, agent_version, now],
            )
        })?;
        Ok(())
    }

    fn devices(&self, online_since: UnixMillis) -> Result<Vec<Device>, StoreError> {
        self.read("listing devices", |db| {
            db.query_map(
                "SELECT id, hostname, os, agent_version, user, enrolled, last_seen,
                     revoked IS NULL AND last_seen IS NOT NULL AND last_seen >= ?1, revoked,
                     heartbeat, health,
                     (SELECT COUNT(*) FROM tamper_events t
                      WHERE t.device = devices.id AND t.ack_time IS NULL),
                     silent_since, school
                 FROM devices ORDER BY hostname, id",
                &params![online_since],
                device_row,
            )
        })
    }

    fn update_presence(
        &self,
        cutoff: UnixMillis,
        now: UnixMillis,
    ) -> Result<Vec<Event>, StoreError> {
        let rules = super::alerts::AlertStore::alert_rules(self);
        // In slices of a few hundred laptops, each its own transaction: when
        // a whole school comes online at once, one transaction over every
        // laptop would hold up (on PostgreSQL, conflict with) the ingest
        // that updates the same rows.
        const SLICE: usize = 200;
        let mut events = Vec::new();
        for _ in 0..10_000 {
            let slice = self.write("updating presence", |db| {
                let mut events = Vec::new();
                let changes: Vec<(String, String, bool)> = db.query_map(
                    "SELECT id, hostname, online FROM devices
                     WHERE revoked IS NULL AND last_seen IS NOT NULL
                       AND ((online = 1 AND last_seen < ?1) OR (online = 0 AND last_seen >= ?1))
                     ORDER BY id LIMIT ?2",
                    &params![cutoff, SLICE],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )?;
                for (id, hostname, was_online) in changes {
                    let name = if hostname.is_empty() { &id } else { &hostname };
                    let (online, kind, detail) = if was_online {
                        (
                            0,
                            "device_offline",
                            format!("{name} has not been heard from"),
                        )
                    } else {
                        (1, "device_online", format!("{name} is back online"))
                    };
                    db.execute(
                        "UPDATE devices SET online = ?2 WHERE id = ?1",
                        &params![id, online],
                    )?;
                    let event = insert_event(db, now, kind, Some(&id), &detail)?;
                    if was_online {
                        let record = format!("{id}/{}", event.id);
                        plan_in(db, &rules, Happening::Offline, "offline", &record, &id, now)?;
                    }
                    events.push(event);
                }
                Ok(events)
            })?;
            let done = slice.len() < SLICE;
            events.extend(slice);
            if done {
                break;
            }
        }
        Ok(events)
    }

    fn update_silence(
        &self,
        cutoff: UnixMillis,
        heard_since: UnixMillis,
        now: UnixMillis,
    ) -> Result<Vec<Uuid>, StoreError> {
        let rules = super::alerts::AlertStore::alert_rules(self);
        self.write("checking for silent devices", |db| {
            // Gaps that have ended: the device was heard after the gap began.
            let ended: Vec<(String, i64, i64, String)> = db.query_map(
                "SELECT id, silent_since, last_seen, silent_event FROM devices
                 WHERE silent_event IS NOT NULL AND last_seen > silent_since",
                &[],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )?;
            for (id, since, heard, event) in ended {
                let ended = format!(
                    " It was heard again at {}, after {}.",
                    clock_time(UnixMillis(heard)),
                    gap_length(heard.saturating_sub(since))
                );
                db.execute(
                    "UPDATE tamper_events SET detail = detail || ?2 WHERE id = ?1",
                    &params![event, ended],
                )?;
                db.execute(
                    "UPDATE devices SET silent_since = NULL, silent_event = NULL WHERE id = ?1",
                    &params![id],
                )?;
            }
            // Devices gone silent while they should be on.
            // id, hostname, heartbeat user, health, last heard.
            type Quiet = (String, String, Option<String>, Option<String>, i64);
            let quiet: Vec<Quiet> = db.query_map(
                "SELECT id, hostname, user, health, last_seen FROM devices
                 WHERE revoked IS NULL AND silent_event IS NULL
                   AND last_seen < ?1 AND last_seen >= ?2",
                &params![cutoff, heard_since],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )?;
            let mut opened = Vec::new();
            for (id, hostname, user, health, last_seen) in quiet {
                let users = logged_in(user, health.as_deref());
                if users.is_empty() {
                    continue;
                }
                let event = Uuid::now_v7();
                let name = if hostname.is_empty() { &id } else { &hostname };
                let detail = format!(
                    "{name} has sent nothing since {} while {} {} logged in: its network cut, \
                     its power pulled or its lid shut, or the agent's service stopped without a word.",
                    clock_time(UnixMillis(last_seen)),
                    users.join(", "),
                    if users.len() == 1 { "was" } else { "were" },
                );
                db.execute(
                    "INSERT INTO tamper_events (id, device, time, user, kind, detail)
                     VALUES (?1, ?2, ?3, ?4, 'DeviceSilent', ?5)",
                    &params![event, id, last_seen, users.join(", "), detail],
                )?;
                db.execute(
                    "UPDATE devices SET silent_since = ?2, silent_event = ?3 WHERE id = ?1",
                    &params![id, last_seen, event],
                )?;
                insert_event(db, now, "device_silent", Some(&id), &detail)?;
                plan_in(db, &rules, Happening::Tamper, "tamper", &id_str(event), &id, now)?;
                super::live::notify(db, super::live::Live::Tamper(event))?;
                opened.push(event);
            }
            Ok(opened)
        })
    }

    fn revoke_device(&self, id: Uuid, reason: &str, now: UnixMillis) -> Result<bool, StoreError> {
        self.write("revoking a device", |db| {
            let changed = db.execute(
                "UPDATE devices SET revoked = ?2, revoked_reason = ?3, online = 0
                 WHERE id = ?1 AND revoked IS NULL",
                &params![id, now, reason],
            )?;
            if changed == 1 {
                insert_event(db, now, "device_revoked", Some(&id_str(id)), reason)?;
            }
            db.query_row(
                "SELECT EXISTS (SELECT 1 FROM devices WHERE id = ?1)",
                &params![id],
                |r| r.get(0),
            )
        })
    }

    fn revoked_devices(&self) -> Result<HashSet<String>, StoreError> {
        let ids: Vec<String> = self.read("reading revocations", |db| {
            db.query_map(
                "SELECT id FROM devices WHERE revoked IS NOT NULL",
                &[],
                |r| r.get(0),
            )
        })?;
        Ok(ids.into_iter().collect())
    }

    fn events(&self, limit: u32) -> Result<Vec<Event>, StoreError> {
        self.read("listing events", |db| {
            db.query_map(
                "SELECT id, time, kind, device, detail FROM events ORDER BY id DESC LIMIT ?1",
                &params![limit],
                |r| {
                    let device: Option<String> = r.get(3)?;
                    Ok(Event {
                        id: r.get(0)?,
                        time: rfc3339(r.get(1)?),
                        kind: r.get(2)?,
                        device: device.and_then(|d| Uuid::parse_str(&d).ok()),
                        detail: r.get(4)?,
                    })
                },
            )
        })
    }
}
