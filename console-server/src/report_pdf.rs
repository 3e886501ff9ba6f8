//! The weekly site-visit report as a PDF (A4), for filing and for the
//! Monday mail: the figures, the sign-off, the flagged sites, the new
//! sites, a bar chart of time per site, and the tables (each cut at
//! [`MAX_ROWS`] rows; the CSV has them all).
//!
//! Written with `pdf-writer` and the standard Helvetica fonts, so nothing
//! is embedded and nothing needs a system library. Text is converted to
//! the fonts' WinAnsi encoding; a character outside it prints as `?`, and
//! control characters never reach the file.

use pdf_writer::{Content, Finish, Name, Pdf, Rect, Ref, Str};

use crate::school_week::Week;
use crate::site_report::{WeeklyReport, change, duration};
use crate::store::visits::WeekSignoff;

/// Most rows printed per table.
pub const MAX_ROWS: usize = 150;

const PAGE_W: f32 = 595.0;
const PAGE_H: f32 = 842.0;
const MARGIN: f32 = 48.0;
const REGULAR: Name<'static> = Name(b"F1");
const BOLD: Name<'static> = Name(b"F2");

/// A string in WinAnsi bytes, cut to about `max_width` points at `size`.
fn win_ansi(s: &str, size: f32, max_width: f32) -> Vec<u8> {
    let max_chars = ((max_width / (size * 0.55)) as usize).max(4);
    let mut out = Vec::new();
    for (i, c) in s.chars().enumerate() {
        if i >= max_chars {
            out.truncate(out.len().saturating_sub(1));
            out.push(0x85); // …
            break;
        }
        let b = match c {
            ' '..='~' => c as u8,
            '\u{a0}'..='\u{ff}' => c as u32 as u8,
            '€' => 0x80,
            '…' => 0x85,
            '‘' => 0x91,
            '’' => 0x92,
            '“' => 0x93,
            '”' => 0x94,
            '–' => 0x96,
            '—' => 0x97,
            '−' => b'-',
            _ => b'?',
        };
        out.push(b);
    }
    out
}

fn categories(flags: &[crate::site_report::Flag]) -> String {
    flags
        .iter()
        .map(|f| f.category.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Pages under construction.
struct Doc {
    pages: Vec<Content>,
    y: f32,
}

impl Doc {
    fn new() -> Doc {
        let mut d = Doc {
            pages: Vec::new(),
            y: 0.0,
        };
        d.new_page();
        d
    }

    fn new_page(&mut self) {
        self.pages.push(Content::new());
        self.y = PAGE_H - MARGIN;
    }

    fn page(&mut self) -> &mut Content {
        self.pages.last_mut().expect("a page is always open")
    }

    /// Makes room for `h` points, starting a page if needed.
    fn room(&mut self, h: f32) {
        if self.y - h < MARGIN {
            self.new_page();
        }
    }

    fn text_at(&mut self, x: f32, y: f32, font: Name<'static>, size: f32, width: f32, s: &str) {
        let bytes = win_ansi(s, size, width);
        let c = self.page();
        c.begin_text();
        c.set_font(font, size);
        c.next_line(x, y);
        c.show(Str(&bytes));
        c.end_text();
    }

    fn line(&mut self, font: Name<'static>, size: f32, s: &str) {
        self.room(size * 1.5);
        self.y -= size * 1.4;
        let y = self.y;
        self.text_at(MARGIN, y, font, size, PAGE_W - 2.0 * MARGIN, s);
    }

    fn gap(&mut self, h: f32) {
        self.y -= h;
    }

    /// A table: column headings, widths (points) and rows of cells.
    fn table(&mut self, heads: &[&str], widths: &[f32], rows: &[Vec<String>]) {
        let size = 8.5;
        let row_h = 12.0;
        let head = |d: &mut Doc| {
            d.room(row_h * 2.0);
            d.y -= row_h;
            let mut x = MARGIN;
            let y = d.y;
            for (h, w) in heads.iter().zip(widths) {
                d.text_at(x, y, BOLD, size, *w - 4.0, h);
                x += w;
            }
        };
        head(self);
        for row in rows.iter().take(MAX_ROWS) {
            if self.y - row_h < MARGIN {
                self.new_page();
                head(self);
            }
            self.y -= row_h;
            let mut x = MARGIN;
            let y = self.y;
            for (cell, w) in row.iter().zip(widths) {
                self.text_at(x, y, REGULAR, size, *w - 4.0, cell);
                x += w;
            }
        }
        if rows.len() > MAX_ROWS {
            self.line(
                REGULAR,
                8.5,
                &format!(
                    "… and {} more rows: see the CSV export.",
                    rows.len() - MAX_ROWS
                ),
            );
        }
        self.gap(6.0);
    }

    /// Horizontal bars of active time for the top sites.
    fn bars(&mut self, report: &WeeklyReport) {
        let top: Vec<_> = report.domains.iter().take(10).collect();
        if top.is_empty() {
            return;
        }
        let max = top
            .iter()
            .map(|d| d.active_seconds)
            .max()
            .unwrap_or(1)
            .max(1);
        let row_h = 13.0;
        let (label_w, bar_w) = (170.0, 250.0);
        self.room(row_h * top.len() as f32 + 10.0);
        for d in top {
            self.y -= row_h;
            let y = self.y;
            let name = if d.domain.is_empty() {
                "(address unknown)"
            } else {
                &d.domain
            };
            self.text_at(MARGIN, y, REGULAR, 8.5, label_w - 6.0, name);
            let w = d.active_seconds as f32 / max as f32 * bar_w;
            let flagged = !d.flags.is_empty();
            let c = self.page();
            if flagged {
                c.set_fill_rgb(0.76, 0.26, 0.29);
            } else {
                c.set_fill_rgb(0.29, 0.47, 0.76);
            }
            c.rect(MARGIN + label_w, y - 1.0, w.max(0.5), 9.0);
            c.fill_nonzero();
            c.set_fill_rgb(0.0, 0.0, 0.0);
            self.text_at(
                MARGIN + label_w + w + 4.0,
                y,
                REGULAR,
                8.5,
                90.0,
                &duration(d.active_seconds),
            );
        }
        self.gap(8.0);
    }
}

/// The PDF bytes of a week's report.
pub fn render(report: &WeeklyReport, week: Week, signoff: Option<&WeekSignoff>) -> Vec<u8> {
    let mut d = Doc::new();
    d.line(BOLD, 16.0, &format!("Site visits, week {week}"));
    d.line(REGULAR, 10.0, &week.span_label());
    d.gap(4.0);
    d.line(
        REGULAR,
        10.0,
        &format!(
            "{} page visits · {} active ({} on last week) · {} users · {} sites",
            report.visits,
            duration(report.active_seconds),
            change(report.active_seconds, report.previous_seconds),
            report.users,
            report.domains.len()
        ),
    );
    match signoff {
        Some(s) => d.line(
            REGULAR,
            10.0,
            &format!(
                "Checked and signed off by {} on {}. Notes: {}",
                s.staff,
                super::web::layout::local_time(&crate::store::rfc3339(s.time)),
                s.notes.replace(['\n', '\r'], " ")
            ),
        ),
        None => d.line(BOLD, 10.0, "Not yet signed off."),
    }
    d.gap(8.0);
    if report.domains.is_empty() {
        d.line(REGULAR, 10.0, "No site visits were recorded this week.");
    } else {
        d.line(
            BOLD,
            12.0,
            "Where the time went (top 10 sites; red: flagged)",
        );
        d.gap(4.0);
        d.bars(report);

        d.line(BOLD, 12.0, "Flagged sites by category");
        if report.flagged.is_empty() {
            d.line(REGULAR, 10.0, "No visited site is in a flagged category.");
        }
        for c in &report.flagged {
            d.line(
                BOLD,
                10.0,
                &format!("{} (severity {})", c.category, c.severity),
            );
            let rows: Vec<Vec<String>> = c
                .domains
                .iter()
                .map(|&i| {
                    let x = &report.domains[i];
                    vec![
                        x.domain.clone(),
                        x.visits.to_string(),
                        x.users.to_string(),
                        duration(x.active_seconds),
                    ]
                })
                .collect();
            d.table(
                &["Site", "Visits", "Users", "Active time"],
                &[250.0, 60.0, 60.0, 90.0],
                &rows,
            );
        }

        d.line(BOLD, 12.0, "Sites never seen before this week");
        let new: Vec<Vec<String>> = report
            .new_domains()
            .map(|x| {
                vec![
                    x.domain.clone(),
                    x.users.to_string(),
                    duration(x.active_seconds),
                    categories(&x.flags),
                ]
            })
            .collect();
        if new.is_empty() {
            d.line(REGULAR, 10.0, "None.");
        } else {
            d.table(
                &["Site", "Users", "Active time", "Categories"],
                &[220.0, 50.0, 90.0, 139.0],
                &new,
            );
        }

        d.line(BOLD, 12.0, "By site");
        let rows: Vec<Vec<String>> = report
            .domains
            .iter()
            .map(|x| {
                vec![
                    if x.domain.is_empty() {
                        "(address unknown)".into()
                    } else {
                        x.domain.clone()
                    },
                    x.visits.to_string(),
                    x.users.to_string(),
                    duration(x.active_seconds),
                    change(x.active_seconds, x.previous_seconds),
                    categories(&x.flags),
                ]
            })
            .collect();
        d.table(
            &["Site", "Visits", "Users", "Active", "Change", "Categories"],
            &[180.0, 45.0, 40.0, 70.0, 50.0, 114.0],
            &rows,
        );

        d.line(BOLD, 12.0, "By user");
        let rows: Vec<Vec<String>> = report
            .users_lines
            .iter()
            .map(|u| {
                vec![
                    u.user.clone(),
                    u.sites.to_string(),
                    u.visits.to_string(),
                    duration(u.active_seconds),
                    u.flagged_sites.join(", "),
                ]
            })
            .collect();
        d.table(
            &["User", "Sites", "Visits", "Active", "Flagged sites"],
            &[120.0, 40.0, 45.0, 70.0, 224.0],
            &rows,
        );

        d.line(BOLD, 12.0, "By device");
        let rows: Vec<Vec<String>> = report
            .devices
            .iter()
            .map(|x| {
                vec![
                    if x.hostname.is_empty() {
                        x.device.to_string()
                    } else {
                        x.hostname.clone()
                    },
                    x.visits.to_string(),
                    x.users.to_string(),
                    duration(x.active_seconds),
                ]
            })
            .collect();
        d.table(
            &["Device", "Visits", "Users", "Active time"],
            &[250.0, 60.0, 60.0, 90.0],
            &rows,
        );
    }
    d.line(
        REGULAR,
        8.0,
        "Contains personal data about pupils: keep and share it only as the school's data-protection policy says.",
    );
    finish(d, &format!("Site visits {week}"))
}

fn finish(d: Doc, title: &str) -> Vec<u8> {
    let mut pdf = Pdf::new();
    let catalog = Ref::new(1);
    let tree = Ref::new(2);
    let regular = Ref::new(3);
    let bold = Ref::new(4);
    let info = Ref::new(5);
    let first = 6;
    let n = d.pages.len() as i32;
    let page_ids: Vec<Ref> = (0..n).map(|i| Ref::new(first + 2 * i)).collect();
    pdf.catalog(catalog).pages(tree);
    pdf.pages(tree).kids(page_ids.iter().copied()).count(n);
    pdf.type1_font(regular)
        .base_font(Name(b"Helvetica"))
        .encoding_predefined(Name(b"WinAnsiEncoding"));
    pdf.type1_font(bold)
        .base_font(Name(b"Helvetica-Bold"))
        .encoding_predefined(Name(b"WinAnsiEncoding"));
    let title_bytes = win_ansi(title, 1.0, 10_000.0);
    pdf.document_info(info)
        .title(pdf_writer::TextStr(&String::from_utf8_lossy(&title_bytes)))
        .creator(pdf_writer::TextStr("Safeguard console"));
    for (i, content) in d.pages.into_iter().enumerate() {
        let page_id = page_ids[i];
        let content_id = Ref::new(page_id.get() + 1);
        let mut c = content;
        // Page number.
        let label = format!("Page {} of {n}", i + 1);
        c.begin_text();
        c.set_font(REGULAR, 8.0);
        c.next_line(PAGE_W - MARGIN - 50.0, MARGIN / 2.0);
        c.show(Str(label.as_bytes()));
        c.end_text();
        let mut page = pdf.page(page_id);
        page.media_box(Rect::new(0.0, 0.0, PAGE_W, PAGE_H));
        page.parent(tree);
        page.contents(content_id);
        {
            let mut res = page.resources();
            let mut fonts = res.fonts();
            fonts.pair(REGULAR, regular);
            fonts.pair(BOLD, bold);
        }
        page.finish();
        pdf.stream(content_id, c.finish().as_slice());
    }
    pdf.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_win_ansi_and_never_carries_control_characters() {
        assert_eq!(win_ansi("café – ok", 10.0, 1000.0), b"caf\xe9 \x96 ok");
        assert_eq!(win_ansi("a\u{202e}b\nc\u{0}", 10.0, 1000.0), b"a?b?c?");
        let cut = win_ansi(&"x".repeat(500), 10.0, 55.0);
        assert_eq!(cut.len(), 10);
        assert_eq!(*cut.last().unwrap(), 0x85);
    }
}
