//! The Monday report: every Monday at 07:00 in the school's zone, the week
//! just ended is made into a PDF and a CSV, kept in `DIR/reports/`, and
//! mailed to the addresses in `console.toml` when an SMTP relay is set. On
//! a trust's console each school named in `[[report.schools]]` also gets
//! its own report, of its laptops only, mailed to its own staff.
//!
//! The task looks at the clock at start and then at most every ten
//! minutes, so a console that was down on Monday morning makes the report
//! when it comes back, and a clock change cannot make it skip a week. A
//! report already made is not made again; a mail that failed is tried
//! again at each look until it goes, for as long as that week is the
//! latest one due.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use protocol::UnixMillis;
use tokio::sync::watch;

use crate::school_week::{self, Week};
use crate::settings::ReportMail;
use crate::site_report::{self, WeeklyReport, duration};
use crate::store::Store;
use crate::store::visits::ScheduledReport;

/// Longest sleep between looks at the clock.
const LOOK_EVERY: Duration = Duration::from_secs(600);

/// The latest week whose report is due at `now`: last week from Monday
/// 07:00, the week before until then.
pub fn due_week(now: UnixMillis, tz: &jiff::tz::TimeZone) -> Week {
    let last = Week::containing(now, tz).previous();
    match last.report_due(tz) {
        Some(due) if now.0 >= due.timestamp().as_millisecond() => last,
        _ => last.previous(),
    }
}

/// Runs until shutdown.
pub async fn run(
    store: Arc<dyn Store>,
    jobs: crate::store::jobs::JobGate,
    reports_dir: PathBuf,
    mail: ReportMail,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let s = store.clone();
        let dir = reports_dir.clone();
        let m = mail.clone();
        let gate = jobs.clone();
        let made = tokio::task::spawn_blocking(move || {
            // One instance of those sharing the store makes and mails the
            // report; the lease outlasts the wait between looks.
            if !gate.may_run("weekly-report", LOOK_EVERY * 2) {
                return Ok(None);
            }
            make_due(&*s, &dir, &m, UnixMillis::now())
        });
        match made.await {
            Ok(Ok(Some(done))) => tracing::info!("weekly report: {done}"),
            Ok(Ok(None)) => {}
            Ok(Err(e)) => tracing::error!("weekly report: {e:#}"),
            Err(e) => tracing::error!("weekly report: {e}"),
        }
        let tz = school_week::zone();
        let next_due = due_week(UnixMillis::now(), &tz)
            .next()
            .report_due(&tz)
            .map(|z| z.timestamp().as_millisecond());
        let wait = next_due
            .map(|t| Duration::from_millis(u64::try_from(t - UnixMillis::now().0).unwrap_or(0)))
            .unwrap_or(LOOK_EVERY)
            .clamp(Duration::from_secs(1), LOOK_EVERY);
        tokio::select! {
            _ = shutdown.wait_for(|s| *s) => return,
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// Makes (and mails) the reports due at `now` that are still to do: the
/// whole console's, then each school's in `[[report.schools]]`; says what
/// it did.
///
/// # Errors
/// A report could not be read, written or recorded. A failed mail is
/// recorded with its report, not returned.
pub fn make_due(
    store: &dyn Store,
    reports_dir: &Path,
    mail: &ReportMail,
    now: UnixMillis,
) -> anyhow::Result<Option<String>> {
    if store.first_visit()?.is_none() {
        // Nothing has ever arrived: no empty reports from a new install.
        return Ok(None);
    }
    let week = due_week(now, &school_week::zone());
    let mut said: Vec<String> = Vec::new();
    said.extend(make_one(
        store,
        reports_dir,
        mail,
        &mail.email_to,
        None,
        week,
        now,
    )?);
    for s in &mail.schools {
        said.extend(make_one(
            store,
            reports_dir,
            mail,
            &s.email_to,
            Some(&s.school),
            week,
            now,
        )?);
    }
    Ok((!said.is_empty()).then(|| said.join("; ")))
}

/// [`make_due`] for one report: the whole console's (`school` none), or
/// one school's, mailed to `to`. A school's report is recorded under
/// `"{week} {school}"` and kept as `site-visits-{week}-{school}.pdf`.
fn make_one(
    store: &dyn Store,
    reports_dir: &Path,
    mail: &ReportMail,
    to: &[String],
    school: Option<&str>,
    week: Week,
    now: UnixMillis,
) -> anyhow::Result<Option<String>> {
    let (key, name) = match school {
        None => (week.to_string(), format!("site-visits-{week}")),
        Some(s) => (format!("{week} {s}"), format!("site-visits-{week}-{s}")),
    };
    let existing = store.scheduled_report(&key)?;
    let wants_mail = !to.is_empty();
    let (pdf, csv, report) = match &existing {
        Some(r) if r.emailed.is_some() || !wants_mail => return Ok(None),
        _ => {
            let report = match school {
                None => WeeklyReport::load(
                    store,
                    site_report::builtin_categories(),
                    week,
                    site_report::Detail::Summary,
                )?,
                Some(s) => WeeklyReport::load_in_scope(
                    store,
                    week,
                    site_report::Detail::Summary,
                    &crate::store::scope::Scope::all().in_school(Some(s.to_owned())),
                )?,
            };
            let signoff = store.week_signoffs()?.remove(&week.to_string());
            let pdf = crate::report_pdf::render(&report, week, signoff.as_ref());
            let csv = site_report::csv(&report, "domains").unwrap_or_default();
            (pdf, csv, report)
        }
    };
    if existing.is_none() {
        write_private(&reports_dir.join(format!("{name}.pdf")), &pdf)?;
        write_private(
            &reports_dir.join(format!("{name}-domains.csv")),
            csv.as_bytes(),
        )?;
    }
    let mut record = existing.unwrap_or(ScheduledReport {
        week: key.clone(),
        generated: now,
        emailed: None,
        email_error: None,
    });
    let mut said = format!("{key} made and kept in {}", reports_dir.display());
    if wants_mail {
        match send(mail, to, school, &report, week, &pdf, &csv) {
            Ok(()) => {
                record.emailed = Some(UnixMillis::now());
                record.email_error = None;
                said.push_str(&format!(", mailed to {}", to.join(", ")));
            }
            Err(e) => {
                record.email_error = Some(format!("{e:#}"));
                said.push_str(&format!(
                    ", but the mail failed and will be tried again: {e:#}"
                ));
            }
        }
    }
    store.record_scheduled_report(&record)?;
    Ok(Some(said))
}

fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot make {}", dir.display()))?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    f.write_all(bytes)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// The mail's plain-text summary.
pub fn summary(report: &WeeklyReport, week: Week) -> String {
    let mut s = format!(
        "Site-visit report for {week} ({}).\n\n\
         {} page visits, {} of active time, {} users, {} sites.\n\n",
        week.span_label(),
        report.visits,
        duration(report.active_seconds),
        report.users,
        report.domains.len()
    );
    if report.flagged.is_empty() {
        s.push_str("No visited site is in a flagged category.\n");
    } else {
        s.push_str("Flagged sites:\n");
        for c in &report.flagged {
            let names: Vec<&str> = c
                .domains
                .iter()
                .take(10)
                .map(|&i| report.domains[i].domain.as_str())
                .collect();
            s.push_str(&format!(
                "- {} (severity {}): {}{}\n",
                c.category,
                c.severity,
                names.join(", "),
                if c.domains.len() > 10 { ", …" } else { "" }
            ));
        }
    }
    let new = report.new_domains().count();
    s.push_str(&format!("\n{new} sites were seen for the first time.\n"));
    s.push_str(
        "\nThe full report is attached (PDF, and the sites as CSV). Sign the week off in the \
         console under Reports once it has been checked.\n\nThis mail holds personal data about \
         pupils; keep and share it only as the school's data-protection policy says.\n",
    );
    s
}

fn send(
    mail: &ReportMail,
    to: &[String],
    school: Option<&str>,
    report: &WeeklyReport,
    week: Week,
    pdf: &[u8],
    csv: &str,
) -> anyhow::Result<()> {
    use lettre::message::header::ContentType;
    use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
    use lettre::{Message, Transport};

    let smtp = &mail.smtp;
    let from: Mailbox = smtp
        .from
        .parse()
        .with_context(|| format!("report.smtp.from {:?} is not an address", smtp.from))?;
    let subject = match school {
        None => format!("Site-visit report {week} ({})", week.span_label()),
        Some(s) => format!("Site-visit report {week} ({}), {s}", week.span_label()),
    };
    let file = match school {
        None => format!("site-visits-{week}"),
        Some(s) => format!("site-visits-{week}-{s}"),
    };
    let mut builder = Message::builder().from(from).subject(subject);
    for to in to {
        let to: Mailbox = to
            .parse()
            .with_context(|| format!("report.email_to {to:?} is not an address"))?;
        builder = builder.to(to);
    }
    let message = builder
        .multipart(
            MultiPart::mixed()
                .singlepart(SinglePart::plain(summary(report, week)))
                .singlepart(
                    Attachment::new(format!("{file}.pdf"))
                        .body(pdf.to_vec(), ContentType::parse("application/pdf")?),
                )
                .singlepart(Attachment::new(format!("{file}-domains.csv")).body(
                    csv.to_owned(),
                    ContentType::parse("text/csv; charset=utf-8")?,
                )),
        )
        .context("cannot build the mail")?;
    crate::mail::transport(smtp)?
        .send(&message)
        .with_context(|| format!("the relay {}:{} refused or failed", smtp.host, smtp.port))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> UnixMillis {
        UnixMillis(
            s.parse::<jiff::Zoned>()
                .unwrap()
                .timestamp()
                .as_millisecond(),
        )
    }

    #[test]
    fn the_report_falls_due_on_monday_at_seven_school_time() {
        let london = jiff::tz::TimeZone::get("Europe/London").unwrap();
        // Monday 23 November 2026 is in 2026-W48.
        let before = at("2026-11-23T06:59:59+00:00[Europe/London]");
        let after = at("2026-11-23T07:00:00+00:00[Europe/London]");
        assert_eq!(due_week(before, &london).to_string(), "2026-W46");
        assert_eq!(due_week(after, &london).to_string(), "2026-W47");
        let sunday = at("2026-11-29T23:00:00+00:00[Europe/London]");
        assert_eq!(due_week(sunday, &london).to_string(), "2026-W47");
        // In summer time, 07:00 is 06:00 UTC.
        let summer = at("2026-06-01T07:00:00+01:00[Europe/London]");
        assert_eq!(due_week(summer, &london).to_string(), "2026-W22");
    }
}
