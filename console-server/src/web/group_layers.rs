//! `/policy/groups`: the policy layers of groups and the named groups'
//! members, seen by every role and changed by admins: what `policy
//! set-group` and `group set` do, and more (severity shifts, sources,
//! sites not read). A layer is saved whole, checked first (a category a
//! library defines, hours that read) and refused if it ties with another
//! of its rank; each change is audited by the store and reaches the
//! laptops within seconds (see [`crate::store::groups`]).

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use protocol::layers::{GroupKind, Layer, MonitoringHours, OutsideHours, Overrides, Term};
use protocol::{Source, UnixMillis};

use super::auth::Staff;
use super::form::Form;
use super::layout::{WebError, csrf, shell};
use super::roles::{AdminStaff, AnyStaff};
use super::{AppState, blocking};
use crate::store::Role;

/// Severity shifts a form offers.
const SHIFTS: [i8; 5] = [-2, -1, 0, 1, 2];

/// A tri-state choice: the layer leaves it, or sets it on or off.
fn choice(name: &str, set: Option<bool>, label: &str) -> Markup {
    html! {
        select name=(name) aria-label=(label) {
            option value="" selected[set.is_none()] { "as the school" }
            option value="on" selected[set == Some(true)] { "on" }
            option value="off" selected[set == Some(false)] { "off" }
        }
    }
}

fn said(set: Option<bool>) -> &'static str {
    match set {
        None => "",
        Some(true) => "on",
        Some(false) => "off",
    }
}

/// A layer in words, for the list.
fn summary(o: &Overrides) -> String {
    let mut parts = Vec::new();
    if let Some(m) = o.min_severity {
        parts.push(format!("minimum severity {m}"));
    }
    for (c, on) in &o.categories {
        parts.push(format!("{c} {}", said(Some(*on))));
    }
    for (c, by) in &o.severity_shift {
        parts.push(format!("{c} severity {by:+}"));
    }
    for (s, on) in &o.sources {
        parts.push(format!("{} {}", s.as_str(), said(Some(*on))));
    }
    if let Some(s) = o.screenshots {
        parts.push(format!("screenshots {}", said(Some(s))));
    }
    if !o.page_reading_excluded.is_empty() {
        parts.push(format!(
            "pages not read on {}",
            o.page_reading_excluded.join(", ")
        ));
    }
    if let Some(h) = &o.hours {
        parts.push(format!(
            "monitored {h}, outside: {}",
            match o.outside_hours {
                OutsideHours::Nothing => "nothing",
                OutsideHours::GravestOnly => "severity 5 only",
            }
        ));
    }
    if parts.is_empty() {
        "nothing changed".into()
    } else {
        parts.join("; ")
    }
}

/// The form that sets one group's whole layer.
fn layer_form(staff: &Staff, group: Option<&str>, o: &Overrides, categories: &[String]) -> Markup {
    let category = |c: &str| o.categories.iter().find(|(n, _)| n == c).map(|x| x.1);
    let shift = |c: &str| {
        o.severity_shift
            .iter()
            .find(|(n, _)| n == c)
            .map_or(0, |x| x.1)
    };
    let source = |s: Source| o.sources.iter().find(|(n, _)| *n == s).map(|x| x.1);
    html! {
        form.layer method="post" action="/policy/groups" {
            (csrf(staff))
            @match group {
                Some(g) => { input type="hidden" name="group" value=(g); }
                None => {
                    label { "Group " input name="group" required list="known-groups" placeholder="year:Year 7" size="24"; }
                }
            }
            label { "Minimum severity "
                select name="min_severity" {
                    option value="" selected[o.min_severity.is_none()] { "as the school" }
                    @for m in 1u8..=5 { option value=(m) selected[o.min_severity == Some(m)] { (m) } }
                }
            }
            table.layer-categories {
                thead { tr { th { "Category" } th { "Watched" } th { "Severity moved by" } } }
                tbody {
                    @for c in categories {
                        tr {
                            td { (c) }
                            td { (choice(&format!("cat:{c}"), category(c), c)) }
                            td {
                                select name={ "shift:" (c) } aria-label={ "severity shift of " (c) } {
                                    @for by in SHIFTS { option value=(by) selected[by == shift(c)] { (format!("{by:+}")) } }
                                }
                            }
                        }
                    }
                }
            }
            fieldset {
                legend { "Sources" }
                @for s in Source::ALL {
                    @if s != Source::Concern {
                        label { (s.as_str()) " " (choice(&format!("src:{}", s.as_str()), source(s), s.as_str())) }
                        " "
                    }
                }
            }
            label { "Screenshots " (choice("screenshots", o.screenshots, "screenshots")) }
            label { "Sites whose pages are not read (one a line) "
                textarea name="excluded" rows="2" cols="30" { (o.page_reading_excluded.join("\n")) }
            }
            label { "Monitoring hours (empty: always; \", term time\" after them for the terms only) "
                input name="hours" value=(o.hours.as_ref().map(ToString::to_string).unwrap_or_default()) placeholder="Mon-Fri 08:00-16:00, term time" size="30";
            }
            label { "Outside them "
                select name="outside_hours" {
                    option value="nothing" selected[o.outside_hours == OutsideHours::Nothing] { "nothing is captured" }
                    option value="gravest" selected[o.outside_hours == OutsideHours::GravestOnly] { "only severity 5" }
                }
            }
            button.primary type="submit" { @if group.is_some() { "Save this layer" } @else { "Add the layer" } }
        }
    }
}

/// `GET /policy/groups`.
pub async fn page(State(state): State<AppState>, staff: AnyStaff) -> Result<Response, WebError> {
    staff.require_trust()?;
    let (layers, groups, terms) =
        blocking(&state, |s| Ok((s.layers()?, s.known_groups()?, s.terms()?))).await?;
    let categories = {
        let policy = state.policy.borrow().clone();
        crate::group_policy::categories(&policy)
            .map_err(|e| WebError::Internal(format!("{e:#}")))?
    };
    let named: Vec<&(String, u64)> = groups
        .iter()
        .filter(|(g, _)| {
            matches!(
                GroupKind::of(g),
                Ok(GroupKind::Accounts | GroupKind::Devices)
            )
        })
        .collect();
    let mut members: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (g, _) in &named {
        let group = g.clone();
        let list = blocking(&state, move |s| s.group_members(&group)).await?;
        members.insert(g.clone(), list);
    }
    let admin: Option<&Staff> = (staff.role == Role::Admin).then_some(&*staff);
    let body = html! {
        h1 { "Policies per group" }
        p.muted {
            "The school's policy applies to everyone; a group's layer changes it for that group. "
            "Layers apply in order: role (role:pupil, role:staff), year group (year:NAME, from the MIS import), "
            "named groups of accounts (accounts:NAME), then groups of laptops (devices:NAME); the later wins. "
            "Two layers of one rank that set one thing differently for one account or laptop are refused. "
            "A change reaches the laptops within seconds; an offline laptop applies what it last received. "
            a href="/policy/effective" { "See what applies to whom." }
        }
        datalist #known-groups {
            @for (g, _) in &groups { option value=(g) {} }
        }
        div.card #group-list {
            h2 { "Groups" }
            @if groups.is_empty() {
                p.muted { "No groups yet: import the register (Users) for year groups and roles, or name a group below." }
            } @else {
                p { @for (i, (g, n)) in groups.iter().enumerate() { @if i > 0 { ", " } (g) " (" (n) ")" } }
            }
        }
        div.card #layers {
            h2 { "Layers" }
            @if layers.is_empty() {
                p #no-layers.muted { "No group has a layer: the school's policy applies to everyone." }
            }
            @for Layer { group, overrides } in &layers {
                section.layer data-group=(group) {
                    h3 { (group) }
                    p.summary { (summary(overrides)) }
                    @if let Some(admin) = &admin {
                        details {
                            summary { "Change" }
                            (layer_form(admin, Some(group), overrides, &categories))
                        }
                        form.inline method="post" action="/policy/groups/remove" {
                            (csrf(admin))
                            input type="hidden" name="group" value=(group);
                            button type="submit" { "Remove this layer" }
                        }
                    }
                }
            }
            @if let Some(admin) = &admin {
                details #add-layer {
                    summary { "Add a layer" }
                    (layer_form(admin, None, &Overrides::default(), &categories))
                }
            }
        }
        div.card #terms {
            h2 { "School terms" }
            p.muted {
                "Monitoring hours that say \"term time\" (Mon-Fri 08:00-16:00, term time) hold only in these terms; "
                "outside them the group is outside its hours. With no terms set, every week is term time."
            }
            @if terms.is_empty() {
                p #no-terms { "No terms set." }
            } @else {
                ul #term-list { @for t in &terms { li { (t.to_string()) } } }
            }
            @if let Some(admin) = &admin {
                form method="post" action="/policy/groups/terms" {
                    (csrf(admin))
                    label { "Terms, one a line (first and last day) "
                        textarea name="terms" rows="4" cols="30" placeholder="2026-09-03..2026-12-18" {
                            (terms.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))
                        }
                    }
                    button type="submit" { "Save the terms" }
                }
            }
        }
        div.card #named-groups {
            h2 { "Named groups" }
            p.muted { "Lists of accounts (accounts:NAME, for example a club) and of laptops by id (devices:NAME, for example the library trolley)." }
            @for (g, list) in &members {
                section.named data-group=(g) {
                    h3 { (g) }
                    @if let Some(admin) = &admin {
                        form method="post" action="/policy/groups/members" {
                            (csrf(admin))
                            input type="hidden" name="group" value=(g);
                            textarea name="members" rows="3" cols="40" aria-label={ "members of " (g) } { (list.join("\n")) }
                            button type="submit" { "Save members" }
                        }
                    } @else {
                        p { (list.join(", ")) }
                    }
                }
            }
            @if let Some(admin) = &admin {
                form #new-group method="post" action="/policy/groups/members" {
                    (csrf(admin))
                    label { "New group " input name="group" required placeholder="devices:library" size="24"; }
                    label { "Members (one a line) " textarea name="members" rows="3" cols="40" {} }
                    button type="submit" { "Save the group" }
                }
            }
        }
    };
    Ok(shell(&staff, "Policies per group", "Settings", body).into_response())
}

/// A layer read from the form: every field checked.
fn overrides_of(form: &Form, categories: &[String]) -> Result<Overrides, WebError> {
    let bad = |m: String| WebError::BadRequest(m);
    let tri = |name: &str| -> Result<Option<bool>, WebError> {
        match form.get(name).unwrap_or_default() {
            "" => Ok(None),
            "on" => Ok(Some(true)),
            "off" => Ok(Some(false)),
            other => Err(bad(format!("{name}: {other:?} is not on, off or empty"))),
        }
    };
    let mut o = Overrides {
        min_severity: match form.get("min_severity").unwrap_or_default() {
            "" => None,
            m => Some(
                m.parse::<u8>()
                    .ok()
                    .filter(|m| (1..=5).contains(m))
                    .ok_or_else(|| bad(format!("minimum severity {m:?} is not 1 to 5")))?,
            ),
        },
        ..Overrides::default()
    };
    for c in categories {
        if let Some(on) = tri(&format!("cat:{c}"))? {
            o.categories.push((c.clone(), on));
        }
        let by = form.get(&format!("shift:{c}")).unwrap_or("0");
        let by: i8 = by
            .trim_start_matches('+')
            .parse()
            .ok()
            .filter(|b| SHIFTS.contains(b))
            .ok_or_else(|| bad(format!("{c}: a severity shift is -2 to +2, not {by:?}")))?;
        if by != 0 {
            o.severity_shift.push((c.clone(), by));
        }
    }
    for s in Source::ALL {
        if let Some(on) = tri(&format!("src:{}", s.as_str()))? {
            o.sources.push((s, on));
        }
    }
    o.screenshots = tri("screenshots")?;
    for line in form.get("excluded").unwrap_or_default().lines() {
        let site = line.trim().to_ascii_lowercase();
        if site.is_empty() {
            continue;
        }
        if site.contains(['/', ' ', ':']) || !site.contains('.') {
            return Err(bad(format!(
                "{site:?} is not a site: write its name, such as nhs.uk"
            )));
        }
        o.page_reading_excluded.push(site);
    }
    let hours = form.get("hours").unwrap_or_default().trim();
    if !hours.is_empty() {
        o.hours = Some(MonitoringHours::parse(hours).map_err(bad)?);
    }
    o.outside_hours = match form.get("outside_hours").unwrap_or("nothing") {
        "nothing" => OutsideHours::Nothing,
        "gravest" => OutsideHours::GravestOnly,
        other => {
            return Err(bad(format!(
                "outside hours: {other:?} is not nothing or gravest"
            )));
        }
    };
    Ok(o)
}

fn group_of(form: &Form) -> Result<String, WebError> {
    let group = form.get("group").unwrap_or_default().trim().to_owned();
    GroupKind::of(&group).map_err(WebError::BadRequest)?;
    Ok(group)
}

/// `POST /policy/groups`: a group's whole layer.
pub async fn save(
    State(state): State<AppState>,
    staff: AdminStaff,
    headers: HeaderMap,
    form: Form,
) -> Result<Response, WebError> {
    staff.require_trust()?;
    staff.check_post(&headers, &form)?;
    let group = group_of(&form)?;
    let categories = {
        let policy = state.policy.borrow().clone();
        crate::group_policy::categories(&policy)
            .map_err(|e| WebError::Internal(format!("{e:#}")))?
    };
    let overrides = overrides_of(&form, &categories)?;
    let who = (staff.name.clone(), staff.origin.clone());
    blocking(&state, move |s| {
        s.set_layer(
            &group,
            Some(&overrides),
            (&who.0, &who.1),
            UnixMillis::now(),
        )
    })
    .await?;
    Ok(Redirect::to("/policy/groups#layers").into_response())
}

/// `POST /policy/groups/remove`: a group's layer removed.
pub async fn remove(
    State(state): State<AppState>,
    staff: AdminStaff,
    headers: HeaderMap,
    form: Form,
) -> Result<Response, WebError> {
    staff.require_trust()?;
    staff.check_post(&headers, &form)?;
    let group = group_of(&form)?;
    let who = (staff.name.clone(), staff.origin.clone());
    blocking(&state, move |s| {
        s.set_layer(&group, None, (&who.0, &who.1), UnixMillis::now())
    })
    .await?;
    Ok(Redirect::to("/policy/groups#layers").into_response())
}

/// `POST /policy/groups/terms`: the school's terms, replaced.
pub async fn terms(
    State(state): State<AppState>,
    staff: AdminStaff,
    headers: HeaderMap,
    form: Form,
) -> Result<Response, WebError> {
    staff.require_trust()?;
    staff.check_post(&headers, &form)?;
    let terms = form
        .get("terms")
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(Term::parse)
        .collect::<Result<Vec<_>, _>>()
        .map_err(WebError::BadRequest)?;
    let who = (staff.name.clone(), staff.origin.clone());
    blocking(&state, move |s| {
        s.set_terms(&terms, (&who.0, &who.1), UnixMillis::now())
    })
    .await?;
    Ok(Redirect::to("/policy/groups#terms").into_response())
}

/// `POST /policy/groups/members`: the accounts or laptops of a named group.
pub async fn members(
    State(state): State<AppState>,
    staff: AdminStaff,
    headers: HeaderMap,
    form: Form,
) -> Result<Response, WebError> {
    staff.require_trust()?;
    staff.check_post(&headers, &form)?;
    let group = group_of(&form)?;
    let list: Vec<String> = form
        .get("members")
        .unwrap_or_default()
        .lines()
        .map(|m| m.trim().to_owned())
        .filter(|m| !m.is_empty())
        .collect();
    if list.len() > 10_000 {
        return Err(WebError::BadRequest("at most 10,000 members".into()));
    }
    let who = (staff.name.clone(), staff.origin.clone());
    blocking(&state, move |s| {
        s.set_group_members(&group, &list, (&who.0, &who.1), UnixMillis::now())
    })
    .await?;
    Ok(Redirect::to("/policy/groups#named-groups").into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(fields: &[(&str, &str)]) -> Form {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        Form::parse(body.as_bytes())
    }

    #[test]
    fn a_layer_form_reads_whole_and_refuses_what_does_not_read() {
        let cats = vec!["drugs".to_owned(), "self-harm".to_owned()];
        let o = overrides_of(
            &form(&[
                ("min_severity", "4"),
                ("cat:drugs", "off"),
                ("cat:self-harm", ""),
                ("shift:drugs", "0"),
                ("shift:self-harm", "+1"),
                ("src:clipboard", "off"),
                ("screenshots", "off"),
                ("excluded", "NHS.uk\n\nchildline.org.uk"),
                ("hours", "Mon-Fri 08:00-16:00"),
                ("outside_hours", "gravest"),
            ]),
            &cats,
        )
        .unwrap();
        assert_eq!(o.min_severity, Some(4));
        assert_eq!(o.categories, vec![("drugs".into(), false)]);
        assert_eq!(o.severity_shift, vec![("self-harm".into(), 1)]);
        assert_eq!(o.sources, vec![(Source::Clipboard, false)]);
        assert_eq!(o.screenshots, Some(false));
        assert_eq!(o.page_reading_excluded, vec!["nhs.uk", "childline.org.uk"]);
        assert_eq!(o.outside_hours, OutsideHours::GravestOnly);
        // Shown in the form as it will read back.
        let hours = o.hours.clone().unwrap();
        assert_eq!(MonitoringHours::parse(&hours.to_string()).unwrap(), hours);
        assert_eq!(
            hours,
            MonitoringHours::parse("Mon-Fri 08:00-16:00").unwrap()
        );
        assert!(
            summary(&o).contains("self-harm severity +1"),
            "{}",
            summary(&o)
        );
        for bad in [
            ("min_severity", "9"),
            ("shift:drugs", "+5"),
            ("hours", "after school"),
            ("excluded", "https://nhs.uk/page"),
            ("cat:drugs", "maybe"),
        ] {
            assert!(overrides_of(&form(&[bad]), &cats).is_err(), "{bad:?}");
        }
        assert_eq!(summary(&Overrides::default()), "nothing changed");
    }
}
