//! `GET /policy/effective`: for a chosen user, laptop and moment, which
//! groups they are in, which layers apply, and what results: the page
//! form of `console-server policy effective`, read through the same
//! [`crate::group_policy::effective`]. Every role may read it (it tells
//! what is monitored, not what was captured); each look is audited.

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use maud::html;
use protocol::UnixMillis;
use serde::Deserialize;
use serde_json::Value;

use super::layout::{WebError, shell};
use super::roles::AnyStaff;
use super::{AppState, blocking};
use crate::store::AuditAction;

#[derive(Debug, Default, Deserialize)]
pub struct Params {
    #[serde(default)]
    user: String,
    #[serde(default)]
    device: String,
    /// RFC 3339, or empty for now.
    #[serde(default)]
    at: String,
}

fn yes(v: &Value) -> &'static str {
    if v.as_bool() == Some(true) {
        "on"
    } else {
        "off"
    }
}

pub async fn page(
    State(state): State<AppState>,
    staff: AnyStaff,
    Query(p): Query<Params>,
) -> Result<Response, WebError> {
    let (user, device) = (p.user.trim().to_owned(), p.device.trim().to_owned());
    let at = if p.at.trim().is_empty() {
        UnixMillis::now()
    } else {
        let t: jiff::Timestamp = p.at.trim().parse().map_err(|_| {
            WebError::BadRequest(format!(
                "{:?} is not a time such as 2026-12-08T19:00:00Z",
                p.at
            ))
        })?;
        UnixMillis(t.as_millisecond())
    };
    let result = if user.is_empty() {
        None
    } else {
        let (u, d) = (user.clone(), device.clone());
        let scope = staff.scope.clone();
        let e = blocking(&state, move |s| {
            // A reviewer limited to groups asks about her groups' accounts.
            if let Some(only) = s.scope_accounts(&scope)?
                && !only.contains(&u)
            {
                return Err(crate::store::StoreError::Refused(format!(
                    "{u} is not among those you see ({})",
                    scope.describe()
                )));
            }
            crate::group_policy::effective(s, &u, (!d.is_empty()).then_some(d.as_str()), at)
                .map_err(|e| crate::store::StoreError::Refused(format!("{e:#}")))
        })
        .await?;
        staff
            .audit(
                &state,
                AuditAction::ViewEffectivePolicy,
                user.clone(),
                format!("device {device:?}, at {}", crate::store::rfc3339(at)),
            )
            .await?;
        Some(e)
    };
    let layers = blocking(&state, |s| s.layers()).await?;
    let body = html! {
        h1 { "What applies to whom" }
        p.muted {
            "The school's policy, then each group's layer: role, year group, named groups of accounts, then groups of laptops; the later wins. "
            "Layers are set on "
            a href="/policy/groups" { "Policies per group" }
            " or with console-server policy set-group."
        }
        form.card method="get" action="/policy/effective" {
            label { "Account " input type="text" name="user" value=(user) required; }
            label { "Laptop id (optional) " input type="text" name="device" value=(device); }
            label { "At (RFC 3339, empty for now) " input type="text" name="at" value=(p.at); }
            button.primary type="submit" { "Show" }
        }
        @if let Some(e) = &result {
            div.card #effective {
                h2 { (user) " at " (crate::store::rfc3339(at)) }
                table {
                    tr { th { "Groups" } td { (e["groups"].as_array().map(|g| g.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", ")).unwrap_or_default()) } }
                    tr { th { "Layers applied" } td #layers-applied { (e["layers"].as_array().map(|g| g.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", ")).unwrap_or_default()) } }
                    tr { th { "Monitored now" } td #monitoring {
                        @if e["monitoring"] == true {
                            @if e["gravest_only"] == true { "only severity 5 (outside the hours)" } @else { "yes" }
                        } @else { "no (outside the hours)" }
                    } }
                    tr { th { "Hours" } td { (e["hours"].as_str().unwrap_or("always")) } }
                    tr { th { "In term" } td #in-term { @if e["in_term"] == true { "yes" } @else { "no (the school's terms are on Policies per group)" } } }
                    tr { th { "Minimum severity" } td #min-severity { (e["min_severity"]) } }
                    tr { th { "Screenshots" } td { (yes(&e["screenshots"])) } }
                    tr { th { "Categories" } td #categories {
                        @if let Some(cats) = e["categories"].as_object() {
                            @for (name, on) in cats {
                                span class=(if on == true { "cat on" } else { "cat off" }) { (name) ": " (yes(on)) } " "
                            }
                        }
                    } }
                    tr { th { "Sources" } td {
                        @if let Some(src) = e["sources"].as_object() {
                            @for (name, on) in src { (name) ": " (yes(on)) " " }
                        }
                    } }
                }
            }
        }
        div.card {
            h2 { "Layers" }
            @if layers.is_empty() {
                p #no-layers.muted { "No group has a layer: the school's policy applies to everyone." }
            } @else {
                table #layer-list {
                    thead { tr { th { "Group" } th { "Changes" } } }
                    tbody {
                        @for l in &layers {
                            tr { td { (l.group) } td { (serde_json::to_string(&l.overrides).unwrap_or_default()) } }
                        }
                    }
                }
            }
        }
    };
    Ok(shell(&staff, "What applies to whom", "Settings", body).into_response())
}
