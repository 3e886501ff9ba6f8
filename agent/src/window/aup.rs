//! The Acceptable Use Policy window (`agent aup-window`): full screen,
//! holding the keyboard and pointer, until the user accepts (the button or
//! Alt+A) or declines (the button or Alt+D). The decision is the process's
//! answer on standard output; the session helper records it.

use std::time::Duration;

use protocol::{Audience, Decision};
use serde::{Deserialize, Serialize};
use xkeysym::key;

use super::canvas::{Canvas, Fonts, Weight};
use super::markdown::{self, Block, BlockKind};
use super::{PromptWindow, Rect, Shape, WindowEvent};

/// The window's title, which tests and administrators look for.
pub const TITLE: &str = "Acceptable Use Policy";

/// What the session helper asks the window to show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AupRequest {
    pub audience: Audience,
    /// The year group whose own AUP this is; `None` for the audience's.
    #[serde(default)]
    pub group: Option<String>,
    pub version: u32,
    pub markdown: String,
}

const BACKGROUND: u32 = 0xeef1f5;
const INK: u32 = 0x1f2328;
const MUTED: u32 = 0x57606a;
const ACCEPT: u32 = 0x1a7f37;
const BAR: u32 = 88;
const BODY: f32 = 18.0;

/// Shows the policy until the user decides.
///
/// # Errors
/// No display, or the window was killed (the X connection lost).
pub fn run(request: &AupRequest) -> anyhow::Result<Decision> {
    let mut fonts = Fonts::load()?;
    let mut window = PromptWindow::open(TITLE, Shape::FullScreen)?;
    let mut view = View {
        blocks: markdown::blocks(&request.markdown),
        subtitle: format!(
            "For {} · version {}",
            match request.audience {
                Audience::Pupils => "pupils",
                Audience::Staff => "staff",
            },
            request.version
        ),
        scroll: 0,
        accept: Rect::default(),
        decline: Rect::default(),
        max_scroll: 0,
    };
    loop {
        let Some(mut event) = window.next_event(Duration::from_millis(250))? else {
            continue;
        };
        let mut redraw = false;
        loop {
            let page = i32::from(window.height) * 2 / 3;
            redraw |= match event {
                WindowEvent::Redraw => true,
                WindowEvent::Key { sym, alt: true, .. } if sym == key::a => {
                    return Ok(Decision::Accept);
                }
                WindowEvent::Key { sym, alt: true, .. } if sym == key::d => {
                    return Ok(Decision::Decline);
                }
                WindowEvent::Key { sym, .. } => view.scroll_by(match sym {
                    key::Page_Down | key::space | key::KP_Page_Down => page,
                    key::Page_Up | key::KP_Page_Up => -page,
                    key::Down | key::KP_Down => 40,
                    key::Up | key::KP_Up => -40,
                    key::Home => i32::MIN / 2,
                    key::End => i32::MAX / 2,
                    _ => 0,
                }),
                WindowEvent::Wheel(n) => view.scroll_by(n * 60),
                WindowEvent::Click { x, y } => {
                    if view.accept.contains(x, y) {
                        return Ok(Decision::Accept);
                    }
                    if view.decline.contains(x, y) {
                        return Ok(Decision::Decline);
                    }
                    false
                }
                WindowEvent::CloseAsked => false,
            };
            match window.next_event(Duration::ZERO)? {
                Some(e) => event = e,
                None => break,
            }
        }
        if redraw {
            let canvas = view.draw(&mut fonts, window.width, window.height);
            window.show(&canvas)?;
        }
    }
}

struct View {
    blocks: Vec<Block>,
    subtitle: String,
    scroll: i32,
    max_scroll: i32,
    accept: Rect,
    decline: Rect,
}

/// One laid-out line of the policy.
struct Line {
    text: String,
    weight: Weight,
    size: f32,
    indent: i32,
    marker: Option<String>,
    /// Space above the line.
    gap: i32,
}

impl View {
    /// Scrolls; whether anything moved.
    fn scroll_by(&mut self, delta: i32) -> bool {
        let to = self.scroll.saturating_add(delta).clamp(0, self.max_scroll);
        let moved = to != self.scroll;
        self.scroll = to;
        moved
    }

    fn lines(&self, fonts: &Fonts, width: f32) -> Vec<Line> {
        let mut out = Vec::new();
        for b in &self.blocks {
            let (weight, size, indent, marker, gap) = match b.kind {
                BlockKind::Heading(1) => (Weight::Bold, 26.0, 0, None, 22),
                BlockKind::Heading(2) => (Weight::Bold, 22.0, 0, None, 18),
                BlockKind::Heading(_) => (Weight::Bold, 19.0, 0, None, 14),
                BlockKind::Paragraph => (Weight::Regular, BODY, 0, None, 12),
                BlockKind::Code => (Weight::Regular, 16.0, 16, None, 10),
                BlockKind::Item { depth, number } => (
                    Weight::Regular,
                    BODY,
                    30 * i32::from(depth.min(6)),
                    Some(number.map_or_else(|| "•".to_owned(), |n| format!("{n}."))),
                    6,
                ),
            };
            let wrapped = fonts.wrap(weight, size, &b.text, width - indent as f32);
            for (i, text) in wrapped.into_iter().enumerate() {
                out.push(Line {
                    text,
                    weight,
                    size,
                    indent,
                    marker: if i == 0 { marker.clone() } else { None },
                    gap: if i == 0 { gap } else { 0 },
                });
            }
        }
        out
    }

    fn draw(&mut self, fonts: &mut Fonts, width: u16, height: u16) -> Canvas {
        let (w, h) = (i32::from(width), i32::from(height));
        let mut c = Canvas::new(u32::from(width), u32::from(height), BACKGROUND);
        let card_w = (w - 48).clamp(200, 980);
        let card_x = (w - card_w) / 2;
        let pad = 36;
        let text_w = (card_w - 2 * pad) as f32;
        let header_h = 112;
        let bar_h = BAR as i32;
        let body_top = header_h;
        let body_bottom = h - bar_h;
        c.fill(card_x, 0, card_w, h, 0xffffff);

        // The policy, scrolled.
        let lines = self.lines(fonts, text_w);
        let mut y = body_top + 8 - self.scroll;
        let mut bottom = 0;
        for line in &lines {
            let lh = fonts.line_height(line.size).ceil() as i32;
            y += line.gap;
            let baseline = y + fonts.ascent(line.size).round() as i32;
            if y + lh > body_top && y < body_bottom {
                let x = card_x + pad + line.indent;
                if let Some(m) = &line.marker {
                    c.text(fonts, (Weight::Bold, line.size), x - 22, baseline, m, INK);
                }
                c.text(
                    fonts,
                    (line.weight, line.size),
                    x,
                    baseline,
                    &line.text,
                    INK,
                );
            }
            y += lh;
            bottom = y + self.scroll;
        }
        self.max_scroll = (bottom + 24 - body_bottom).max(0);
        self.scroll = self.scroll.min(self.max_scroll);

        // The header over anything scrolled under it.
        c.fill(card_x, 0, card_w, header_h, 0xffffff);
        c.fill(card_x, header_h - 2, card_w, 2, 0xd0d7de);
        c.text(fonts, (Weight::Bold, 30.0), card_x + pad, 52, TITLE, INK);
        c.text(
            fonts,
            (Weight::Regular, 15.0),
            card_x + pad,
            84,
            &self.subtitle,
            MUTED,
        );

        // The bar with the two choices.
        c.fill(0, body_bottom, w, bar_h, 0xf6f8fa);
        c.fill(0, body_bottom, w, 2, 0xd0d7de);
        let more = self.scroll < self.max_scroll;
        let note = if more {
            "Scroll to read it all (Page Down).  You must choose to use this computer."
        } else {
            "You must choose to use this computer. Decline logs you out."
        };
        c.text(
            fonts,
            (Weight::Regular, 15.0),
            card_x + 8,
            body_bottom + bar_h / 2 + 6,
            note,
            MUTED,
        );
        let bw = 210;
        let bh = 48;
        let by = body_bottom + (bar_h - bh) / 2;
        self.accept = Rect {
            x: card_x + card_w - bw - 8,
            y: by,
            w: bw,
            h: bh,
        };
        self.decline = Rect {
            x: self.accept.x - bw - 16,
            y: by,
            w: bw,
            h: bh,
        };
        c.fill(self.accept.x, by, bw, bh, ACCEPT);
        button_label(&mut c, fonts, self.accept, "Accept  (Alt+A)", 0xffffff);
        c.fill(self.decline.x, by, bw, bh, 0xffffff);
        c.outline(self.decline.x, by, bw, bh, 2, 0x8c959f);
        button_label(&mut c, fonts, self.decline, "Decline  (Alt+D)", INK);
        c
    }
}

/// A label centred in a button.
pub(super) fn button_label(c: &mut Canvas, fonts: &mut Fonts, r: Rect, label: &str, color: u32) {
    let size = 17.0;
    let tw = fonts.width(Weight::Bold, size, label).round() as i32;
    let baseline = r.y + r.h / 2 + (fonts.ascent(size) / 2.0).round() as i32 - 2;
    c.text(
        fonts,
        (Weight::Bold, size),
        r.x + (r.w - tw) / 2,
        baseline,
        label,
        color,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_policy_scrolls_and_the_buttons_are_on_screen() {
        let mut fonts = Fonts::load().unwrap();
        let markdown = (0..80)
            .map(|i| format!("- rule number {i} of the school's policy\n"))
            .collect::<String>();
        let mut view = View {
            blocks: markdown::blocks(&markdown),
            subtitle: "For pupils · version 1".into(),
            scroll: 0,
            max_scroll: 0,
            accept: Rect::default(),
            decline: Rect::default(),
        };
        view.draw(&mut fonts, 1024, 768);
        assert!(view.max_scroll > 0, "80 rules fit on one screen?");
        assert!(view.accept.contains(view.accept.x + 5, view.accept.y + 5));
        assert!(view.accept.y + view.accept.h <= 768);
        assert!(view.decline.x + view.decline.w < view.accept.x);
        assert!(view.scroll_by(i32::MAX / 2));
        assert_eq!(view.scroll, view.max_scroll);
        assert!(!view.scroll_by(10), "scrolled past the end");
        view.draw(&mut fonts, 1024, 768);
        // A tiny screen still draws.
        view.draw(&mut fonts, 200, 150);
    }
}
