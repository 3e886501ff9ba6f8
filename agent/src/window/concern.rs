//! The "Report a concern" window (`agent concern-window`): a pupil writes
//! what happened and chooses whether a picture of the screen goes with it.
//! The report is the process's answer on standard output; the session
//! helper adds the page that was in front and sends it.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use wordlists::Key;
use xkeysym::key;

use super::aup::button_label;
use super::canvas::{Canvas, Fonts, Weight};
use super::{PromptWindow, Rect, Shape, WindowEvent};

/// The window's title.
pub const TITLE: &str = "Report a concern";
/// Longest report, in characters.
pub const MAX_CHARS: usize = 4000;

/// What the window is told about the moment the report was asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConcernRequest {
    /// The browser page in front, as "title (address)".
    pub page: Option<String>,
}

/// What the pupil sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConcernReport {
    pub text: String,
    pub screenshot: bool,
}

const INK: u32 = 0x1f2328;
const MUTED: u32 = 0x57606a;
const SEND: u32 = 0x0969da;

/// Shows the window until the pupil sends (Some) or cancels (None).
///
/// # Errors
/// No display, or the window was killed.
pub fn run(request: &ConcernRequest) -> anyhow::Result<Option<ConcernReport>> {
    let mut fonts = Fonts::load()?;
    let mut window = PromptWindow::open(
        TITLE,
        Shape::Dialog {
            width: 680,
            height: 500,
        },
    )?;
    let mut form = Form {
        text: String::new(),
        screenshot: true,
        page: request.page.clone(),
        send: Rect::default(),
        cancel: Rect::default(),
        tick: Rect::default(),
        warn: false,
    };
    loop {
        let Some(mut event) = window.next_event(Duration::from_millis(250))? else {
            continue;
        };
        // Everything already queued (fast typing) before one redraw.
        let mut redraw = false;
        loop {
            match form.handle(event) {
                Step::Redraw => redraw = true,
                Step::Nothing => {}
                Step::Send => {
                    return Ok(Some(ConcernReport {
                        text: form.text.trim().to_owned(),
                        screenshot: form.screenshot,
                    }));
                }
                Step::Cancel => return Ok(None),
            }
            match window.next_event(Duration::ZERO)? {
                Some(e) => event = e,
                None => break,
            }
        }
        if redraw {
            let canvas = form.draw(&mut fonts, window.width, window.height);
            window.show(&canvas)?;
        }
    }
}

enum Step {
    Redraw,
    Nothing,
    Send,
    Cancel,
}

struct Form {
    text: String,
    screenshot: bool,
    page: Option<String>,
    send: Rect,
    cancel: Rect,
    tick: Rect,
    /// "Write something first" is shown.
    warn: bool,
}

impl Form {
    fn try_send(&mut self) -> Step {
        if self.text.trim().is_empty() {
            self.warn = true;
            Step::Redraw
        } else {
            Step::Send
        }
    }

    fn handle(&mut self, event: WindowEvent) -> Step {
        match event {
            WindowEvent::Redraw => Step::Redraw,
            WindowEvent::CloseAsked => Step::Cancel,
            WindowEvent::Key { sym, ctrl, .. }
                if ctrl && matches!(sym, key::Return | key::KP_Enter) =>
            {
                self.try_send()
            }
            WindowEvent::Key { sym, alt: true, .. } if sym == key::s => self.try_send(),
            WindowEvent::Key { sym, alt: true, .. } if sym == key::p => {
                self.screenshot = !self.screenshot;
                Step::Redraw
            }
            WindowEvent::Key { sym, .. } if sym == key::Escape => Step::Cancel,
            WindowEvent::Key {
                key: Some(k),
                ctrl: false,
                alt: false,
                sym,
            } => {
                match k {
                    Key::Char(c) if self.text.chars().count() < MAX_CHARS => self.text.push(c),
                    Key::BackSpace => {
                        self.text.pop();
                    }
                    // Tab is not a new line here.
                    Key::Enter if sym == key::Return || sym == key::KP_Enter => {
                        self.text.push('\n');
                    }
                    _ => return Step::Nothing,
                }
                self.warn = false;
                Step::Redraw
            }
            WindowEvent::Key {
                key: Some(Key::WordBackSpace),
                ..
            } => {
                let keep = self.text.trim_end().rfind(' ').map_or(0, |i| i + 1);
                self.text.truncate(keep);
                Step::Redraw
            }
            WindowEvent::Click { x, y } => {
                if self.send.contains(x, y) {
                    self.try_send()
                } else if self.cancel.contains(x, y) {
                    Step::Cancel
                } else if self.tick.contains(x, y) {
                    self.screenshot = !self.screenshot;
                    Step::Redraw
                } else {
                    Step::Nothing
                }
            }
            _ => Step::Nothing,
        }
    }

    fn draw(&mut self, fonts: &mut Fonts, width: u16, height: u16) -> Canvas {
        let (w, h) = (i32::from(width), i32::from(height));
        let mut c = Canvas::new(u32::from(width), u32::from(height), 0xffffff);
        let pad = 24;
        let inner = (w - 2 * pad) as f32;
        c.text(fonts, (Weight::Bold, 24.0), pad, 44, TITLE, INK);
        let mut y = 76;
        let intro = "Tell us what happened, or what upset or worried you. Only the school's safeguarding team will read this.";
        for line in fonts.wrap(Weight::Regular, 15.0, intro, inner) {
            c.text(fonts, (Weight::Regular, 15.0), pad, y, &line, MUTED);
            y += 21;
        }
        if let Some(page) = &self.page {
            let line = format!("The page you were on goes with it: {page}");
            for l in fonts
                .wrap(Weight::Regular, 13.0, &line, inner)
                .iter()
                .take(2)
            {
                c.text(fonts, (Weight::Regular, 13.0), pad, y, l, MUTED);
                y += 18;
            }
        }
        // The text box, showing the end of what was written.
        let box_top = y + 4;
        let box_h = (h - box_top - 120).max(60);
        c.fill(pad, box_top, w - 2 * pad, box_h, 0xffffff);
        c.outline(pad, box_top, w - 2 * pad, box_h, 2, SEND);
        let mut shown = format!("{}|", self.text);
        if self.text.is_empty() {
            shown = "|".into();
        }
        let lines = fonts.wrap(Weight::Regular, 16.0, &shown, inner - 20.0);
        let fit = ((box_h - 16) / 22).max(1) as usize;
        let start = lines.len().saturating_sub(fit);
        let mut ty = box_top + 26;
        for l in &lines[start..] {
            c.text(fonts, (Weight::Regular, 16.0), pad + 10, ty, l, INK);
            ty += 22;
        }
        // The picture choice.
        let tick_y = box_top + box_h + 14;
        self.tick = Rect {
            x: pad,
            y: tick_y,
            w: 420,
            h: 24,
        };
        c.outline(pad, tick_y, 22, 22, 2, INK);
        if self.screenshot {
            c.fill(pad + 5, tick_y + 5, 12, 12, SEND);
        }
        c.text(
            fonts,
            (Weight::Regular, 15.0),
            pad + 32,
            tick_y + 17,
            "Include a picture of my screen (Alt+P)",
            INK,
        );
        if self.warn {
            c.text(
                fonts,
                (Weight::Bold, 15.0),
                pad,
                h - 26,
                "Write something first.",
                0xcf222e,
            );
        }
        let (bw, bh) = (190, 44);
        let by = h - bh - 18;
        self.send = Rect {
            x: w - pad - bw,
            y: by,
            w: bw,
            h: bh,
        };
        self.cancel = Rect {
            x: self.send.x - 140 - 12,
            y: by,
            w: 140,
            h: bh,
        };
        c.fill(self.send.x, by, bw, bh, SEND);
        button_label(&mut c, fonts, self.send, "Send  (Ctrl+Enter)", 0xffffff);
        c.outline(self.cancel.x, by, self.cancel.w, bh, 2, 0x8c959f);
        button_label(&mut c, fonts, self.cancel, "Cancel (Esc)", INK);
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(c: char) -> WindowEvent {
        WindowEvent::Key {
            sym: c as u32,
            key: Some(Key::Char(c)),
            ctrl: false,
            alt: false,
        }
    }

    #[test]
    fn typing_editing_and_sending() {
        let mut form = Form {
            text: String::new(),
            screenshot: true,
            page: Some("Forum (https://example.org/)".into()),
            send: Rect::default(),
            cancel: Rect::default(),
            tick: Rect::default(),
            warn: false,
        };
        let mut fonts = Fonts::load().unwrap();
        form.draw(&mut fonts, 680, 500);
        // An empty report is not sent.
        let click_send = WindowEvent::Click {
            x: form.send.x + 3,
            y: form.send.y + 3,
        };
        assert!(matches!(form.handle(click_send.clone()), Step::Redraw));
        assert!(form.warn);
        for c in "someone is mean tx".chars() {
            form.handle(key(c));
        }
        form.handle(WindowEvent::Key {
            sym: key::BackSpace,
            key: Some(Key::BackSpace),
            ctrl: false,
            alt: false,
        });
        assert_eq!(form.text, "someone is mean t");
        form.handle(WindowEvent::Key {
            sym: key::p,
            key: Some(Key::Reset),
            ctrl: false,
            alt: true,
        });
        assert!(!form.screenshot);
        form.draw(&mut fonts, 680, 500);
        assert!(matches!(form.handle(click_send), Step::Send));
        assert!(matches!(
            form.handle(WindowEvent::Key {
                sym: key::Escape,
                key: Some(Key::Reset),
                ctrl: false,
                alt: false
            }),
            Step::Cancel
        ));
    }
}
