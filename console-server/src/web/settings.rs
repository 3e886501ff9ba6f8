//! The Settings page: the capture settings of the policy (an admin's),
//! changed through [`super::policy::update_policy`] and pushed to every
//! connected laptop at once.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;

use super::AppState;
use super::form::Form;
use super::layout::{WebError, csrf, shell};
use super::policy::update_policy;
use super::roles::AdminStaff;
use crate::store::AuditAction;

pub async fn page(State(state): State<AppState>, staff: AdminStaff) -> Result<Response, WebError> {
    staff.require_trust()?;
    let p = state.policy.borrow().clone();
    let defs = state.definitions();
    let src = &p.sources;
    let rules = super::alert_rules::section(&state, &staff).await?;
    let body = html! {
        h1 { "Settings" }
        p.muted { "What the laptops capture (policy version " (p.version) "). Saving makes a new version that every connected laptop receives within seconds." }
        form.card method="post" action="/settings" {
            (csrf(&staff))
            h2 { "Capturing" }
            label { "Minimum severity captured "
                select name="min_severity" { @for n in 1..=5u8 { option value=(n) selected[n == p.min_severity] { (n) } } }
            }
            label { "The same term in the same window counts once per "
                input type="number" name="debounce_seconds" min="0" max="86400" value=(p.debounce_seconds); " seconds"
            }
            label { input type="checkbox" name="screenshots" value="1" checked[p.screenshots]; " Take a screenshot with each capture" }
            label { "Screenshot width at most "
                input type="number" name="screenshot_max_width" min="320" max="7680" value=(p.screenshot_max_width); " pixels"
            }
            label { input type="checkbox" name="semantic" value="1" checked[p.semantic]; " Judge messages no term caught with the semantic layer (a language model on the laptop; its captures say \"reads as\" a category)" }
            h2 { "Sources" }
            label { input type="checkbox" name="typed" value="1" checked[src.typed]; " Typed text" }
            label { input type="checkbox" name="window_title" value="1" checked[src.window_title]; " Window titles" }
            label { input type="checkbox" name="browser" value="1" checked[src.browser]; " Browser addresses and searches" }
            label { input type="checkbox" name="clipboard" value="1" checked[src.clipboard]; " Clipboard" }
            label { input type="checkbox" name="site_visits" value="1" checked[src.site_visits]; " Site visits" }
            label { input type="checkbox" name="screen_text" value="1" checked[src.screen_text]; " Text on screen (pages read by the browser extension)" }
            label { "Sites whose pages are never read (one domain a line; covers subdomains; their addresses and titles are still seen)"
                textarea name="page_reading_excluded" rows="4" cols="50" { (p.page_reading_excluded.join("\n")) }
            }
            h2 { "Categories captured" }
            @for (name, title) in &defs.categories {
                label { input type="checkbox" name="category" value=(name) checked[!p.disabled_categories.contains(name)]; " " (title) }
            }
            h2 { "Alerts in the console" }
            p.muted { "Live alerts reach every open inbox. Desktop notifications and the alert sound (by severity) are chosen in each browser, on the inbox. Alerts by mail and webhook are set below." }
            button.primary type="submit" { "Save and push to laptops" }
        }
        (rules)
        div.card {
            h2 { "Policies per group" }
            p.muted {
                "Layers change this policy for year groups, roles, named groups of accounts and groups of laptops. "
                a href="/policy/groups" { "Set the layers and groups" } ", or "
                a href="/policy/effective" { "see what applies to whom" } "."
            }
        }
        div.card {
            h2 { "Retention" }
            p.muted { "Set in console.toml in the data directory ([retention]); applied hourly." }
        }
    };
    Ok(shell(&staff, "Settings", "Settings", body).into_response())
}

pub async fn save(
    State(state): State<AppState>,
    staff: AdminStaff,
    headers: HeaderMap,
    form: Form,
) -> Result<Response, WebError> {
    staff.require_trust()?;
    staff.check_post(&headers, &form)?;
    let num = |name: &str| -> Result<u32, WebError> {
        form.get(name)
            .unwrap_or_default()
            .trim()
            .parse()
            .map_err(|_| WebError::BadRequest(format!("{name} must be a whole number")))
    };
    let min_severity = u8::try_from(num("min_severity")?)
        .map_err(|_| WebError::BadRequest("min_severity must be 1 to 5".into()))?;
    let debounce = num("debounce_seconds")?.min(86_400);
    let width = num("screenshot_max_width")?;
    let on = |name: &str| form.get(name) == Some("1");
    let defs = state.definitions();
    let kept: Vec<&str> = form.all("category").collect();
    let disabled: Vec<String> = defs
        .categories
        .iter()
        .filter(|(name, _)| !kept.contains(&name.as_str()))
        .map(|(name, _)| name.clone())
        .collect();
    let sources = protocol::SourceSwitches {
        typed: on("typed"),
        window_title: on("window_title"),
        browser: on("browser"),
        clipboard: on("clipboard"),
        site_visits: on("site_visits"),
        screen_text: on("screen_text"),
    };
    let excluded = excluded_sites(form.get("page_reading_excluded").unwrap_or_default())?;
    let screenshots = on("screenshots");
    let semantic = on("semantic");
    let detail = format!(
        "min severity {min_severity}, debounce {debounce}s, screenshots {screenshots} (≤{width}px), semantic layer {semantic}, {sources:?}, off: {disabled:?}, pages not read: {excluded:?}"
    );
    update_policy(
        &state,
        &staff,
        AuditAction::SetPolicy,
        String::new(),
        detail,
        move |p| {
            p.min_severity = min_severity;
            p.debounce_seconds = debounce;
            p.screenshots = screenshots;
            p.screenshot_max_width = width;
            p.sources = sources;
            p.disabled_categories = disabled.clone();
            p.page_reading_excluded = excluded.clone();
            p.semantic = semantic;
            Ok(())
        },
    )
    .await?;
    Ok(Redirect::to("/settings").into_response())
}

/// The sites excluded from page reading, one domain a line: lower-cased,
/// without a scheme, path or `*.`; a line that is not a domain is refused.
fn excluded_sites(text: &str) -> Result<Vec<String>, WebError> {
    let mut out: Vec<String> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let host = line
            .split_once("://")
            .map_or(line, |(_, rest)| rest)
            .split(['/', '?', '#'])
            .next()
            .unwrap_or_default()
            .trim_start_matches("*.")
            .trim_end_matches('.')
            .to_ascii_lowercase();
        let host = host.rsplit_once(':').map_or(host.as_str(), |(h, port)| {
            if port.chars().all(|c| c.is_ascii_digit()) {
                h
            } else {
                &host
            }
        });
        let ok = !host.is_empty()
            && host.len() <= 253
            && host.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            });
        if !ok {
            return Err(WebError::BadRequest(format!(
                "line {} of the sites whose pages are not read, {line:?}, is not a domain (write one like mis.school.example)",
                n + 1
            )));
        }
        if !out.iter().any(|d| d == host) {
            out.push(host.to_owned());
        }
    }
    if out.len() > 500 {
        return Err(WebError::BadRequest(
            "at most 500 sites may be excluded from page reading".into(),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use protocol::Policy;

    use super::*;

    #[test]
    fn excluded_sites_are_domains() {
        let got = excluded_sites(
            "https://MIS.school.example/login?x=1\n\n*.arbor.example:443\nmis.school.example\n",
        )
        .unwrap();
        assert_eq!(got, ["mis.school.example", "arbor.example"]);
        for bad in [
            "not a domain",
            "a..b",
            "<script>",
            "x .example/y",
            "https://",
        ] {
            assert!(excluded_sites(bad).is_err(), "{bad}");
        }
        let mut p = Policy::baseline();
        p.page_reading_excluded = got;
        assert!(p.page_reading_excluded("mis.school.example"));
        assert!(p.page_reading_excluded("www.arbor.example."));
        assert!(p.page_reading_excluded("ARBOR.example"));
        assert!(!p.page_reading_excluded("notarbor.example"));
        assert!(!p.page_reading_excluded("school.example"));
    }
}
