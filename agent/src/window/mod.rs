//! The agent's own windows on the laptop's screen: the Acceptable Use
//! Policy ([`aup`]) and "Report a concern" ([`concern`]). Each runs as its
//! own short-lived process (`agent aup-window`, `agent concern-window`),
//! started by the session helper, so a window that is killed (or whose X
//! connection is cut) ends only that process and the helper can show it
//! again.
//!
//! A window is drawn in memory ([`canvas`], with built-in fonts) and put on
//! screen with `PutImage` over `x11rb`: no toolkit, no C libraries.

pub mod aup;
pub mod canvas;
pub mod concern;
pub mod markdown;

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use wordlists::Key;
use x11rb::connection::{Connection, RequestConnection};
use x11rb::protocol::Event;
use x11rb::protocol::xproto::{
    AtomEnum, ConfigureWindowAux, ConnectionExt as _, CreateGCAux, CreateWindowAux, EventMask,
    Gcontext, GrabMode, GrabStatus, ImageFormat, ImageOrder, InputFocus, KeyButMask, PropMode,
    StackMode, Window, WindowClass,
};
use x11rb::rust_connection::RustConnection;
use x11rb::wrapper::ConnectionExt as _;

use crate::platform::keymap::KeyTranslator;
use crate::platform::x11::read_keymap;
use canvas::Canvas;

/// The body of `agent aup-window` and `agent concern-window`: reads the
/// request (JSON) from standard input, shows the window, and prints the
/// answer (JSON) on standard output.
///
/// # Errors
/// A bad request, no display, or the window was killed: no answer.
pub fn child_main(which: &str) -> anyhow::Result<()> {
    use std::io::{Read, Write};
    let mut input = String::new();
    std::io::stdin()
        .read_to_string(&mut input)
        .context("cannot read the window's request")?;
    let answer = match which {
        "aup-window" => {
            let request = serde_json::from_str(&input).context("a bad AUP window request")?;
            serde_json::to_string(&aup::run(&request)?)?
        }
        "concern-window" => {
            let request = serde_json::from_str(&input).context("a bad concern window request")?;
            serde_json::to_string(&concern::run(&request)?)?
        }
        other => bail!("no window called {other:?}"),
    };
    let mut out = std::io::stdout().lock();
    writeln!(out, "{answer}")?;
    out.flush()?;
    Ok(())
}

/// `WM_CLASS` of the agent's windows (for people and window managers; the
/// helper knows its windows by id, see [`WINDOW_LINE`]).
pub const WINDOW_CLASS: &str = "Safeguard-agent";

/// The line a window process prints on standard output once its window is
/// mapped, followed by the X window id; the answer comes after it.
pub const WINDOW_LINE: &str = "window ";

/// How a window sits on the screen.
#[derive(Debug, Clone, Copy)]
pub enum Shape {
    /// Covers the whole screen, above everything, unmanaged by the window
    /// manager, holding the keyboard and pointer.
    FullScreen,
    /// A normal window of this size, centred, kept above others.
    Dialog { width: u16, height: u16 },
}

/// What the user did in a window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WindowEvent {
    /// A key: its unshifted keysym, the text it types (if any), and the
    /// modifiers held.
    Key {
        sym: u32,
        key: Option<Key>,
        ctrl: bool,
        alt: bool,
    },
    /// The left button at this point of the window.
    Click { x: i32, y: i32 },
    /// The wheel: positive is down.
    Wheel(i32),
    /// The window must be drawn again (exposed or resized).
    Redraw,
    /// The window manager's close button.
    CloseAsked,
}

/// One open window.
pub struct PromptWindow {
    conn: RustConnection,
    window: Window,
    gc: Gcontext,
    pub width: u16,
    pub height: u16,
    depth: u8,
    lsb_first: bool,
    keys: KeyTranslator,
    wm_delete: u32,
    /// Keyboard and pointer must be held (full screen).
    hold: bool,
    held: bool,
    mapped: bool,
    last_raise: Instant,
}

impl PromptWindow {
    /// Opens and maps a window titled `title` on `$DISPLAY`.
    ///
    /// # Errors
    /// No display, or a display whose pixels are not 24-bit true colour in
    /// 32-bit words (every current X server's default).
    pub fn open(title: &str, shape: Shape) -> anyhow::Result<PromptWindow> {
        let (conn, screen) = x11rb::connect(None).context("cannot connect to the X display")?;
        let setup = conn.setup();
        let s = &setup.roots[screen];
        let (root, depth, visual) = (s.root, s.root_depth, s.root_visual);
        let format = setup
            .pixmap_formats
            .iter()
            .find(|f| f.depth == depth)
            .with_context(|| format!("the display has no pixel format for depth {depth}"))?;
        let vis = s
            .allowed_depths
            .iter()
            .flat_map(|d| &d.visuals)
            .find(|v| v.visual_id == visual)
            .context("the display's default visual is not listed")?;
        if format.bits_per_pixel != 32
            || (vis.red_mask, vis.green_mask, vis.blue_mask) != (0xff0000, 0xff00, 0xff)
        {
            bail!(
                "the display uses {} bits per pixel with masks {:x}/{:x}/{:x}; the agent's windows need 24-bit colour",
                format.bits_per_pixel,
                vis.red_mask,
                vis.green_mask,
                vis.blue_mask
            );
        }
        let lsb_first = setup.image_byte_order == ImageOrder::LSB_FIRST;
        let (sw, sh) = (s.width_in_pixels, s.height_in_pixels);
        let (x, y, width, height, hold) = match shape {
            Shape::FullScreen => (0, 0, sw, sh, true),
            Shape::Dialog { width, height } => {
                let (w, h) = (width.min(sw), height.min(sh));
                (
                    i16::try_from((sw - w) / 2).unwrap_or(0),
                    i16::try_from((sh - h) / 3).unwrap_or(0),
                    w,
                    h,
                    false,
                )
            }
        };
        let intern = |name: &str| -> anyhow::Result<u32> {
            Ok(conn.intern_atom(false, name.as_bytes())?.reply()?.atom)
        };
        let wm_protocols = intern("WM_PROTOCOLS")?;
        let wm_delete = intern("WM_DELETE_WINDOW")?;
        let net_wm_name = intern("_NET_WM_NAME")?;
        let utf8 = intern("UTF8_STRING")?;
        let net_wm_state = intern("_NET_WM_STATE")?;
        let above = intern("_NET_WM_STATE_ABOVE")?;
        let fullscreen = intern("_NET_WM_STATE_FULLSCREEN")?;

        let window = conn.generate_id()?;
        conn.create_window(
            depth,
            window,
            root,
            x,
            y,
            width,
            height,
            0,
            WindowClass::INPUT_OUTPUT,
            visual,
            &CreateWindowAux::new()
                .background_pixel(0xffffff)
                .override_redirect(u32::from(hold))
                .event_mask(
                    EventMask::EXPOSURE
                        | EventMask::KEY_PRESS
                        | EventMask::KEY_RELEASE
                        | EventMask::BUTTON_PRESS
                        | EventMask::STRUCTURE_NOTIFY
                        | EventMask::VISIBILITY_CHANGE
                        | EventMask::FOCUS_CHANGE,
                ),
        )?
        .check()
        .context("cannot create the window")?;
        conn.change_property8(
            PropMode::REPLACE,
            window,
            AtomEnum::WM_NAME,
            AtomEnum::STRING,
            title.as_bytes(),
        )?;
        conn.change_property8(
            PropMode::REPLACE,
            window,
            net_wm_name,
            utf8,
            title.as_bytes(),
        )?;
        let class = format!("safeguard-agent\0{WINDOW_CLASS}\0");
        conn.change_property8(
            PropMode::REPLACE,
            window,
            AtomEnum::WM_CLASS,
            AtomEnum::STRING,
            class.as_bytes(),
        )?;
        conn.change_property32(
            PropMode::REPLACE,
            window,
            wm_protocols,
            AtomEnum::ATOM,
            &[wm_delete],
        )?;
        let states: &[u32] = if hold { &[above, fullscreen] } else { &[above] };
        conn.change_property32(
            PropMode::REPLACE,
            window,
            net_wm_state,
            AtomEnum::ATOM,
            states,
        )?;
        let gc = conn.generate_id()?;
        conn.create_gc(gc, window, &CreateGCAux::new())?;
        let keys = KeyTranslator::new(read_keymap(&conn)?, false, false);
        conn.map_window(window)?;
        conn.flush()?;
        // The helper knows its own windows by id, not by a class any
        // program could give itself: tell it this one's, before the answer.
        {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            writeln!(out, "{WINDOW_LINE}{window}")?;
            out.flush()?;
        }
        Ok(PromptWindow {
            conn,
            window,
            gc,
            width,
            height,
            depth,
            lsb_first,
            keys,
            wm_delete,
            hold,
            held: false,
            mapped: false,
            last_raise: Instant::now(),
        })
    }

    /// Whether the keyboard and pointer are held by this window (always
    /// false for a dialog).
    pub fn holds_input(&self) -> bool {
        self.held
    }

    /// Puts `canvas` (the window's size) on screen.
    ///
    /// # Errors
    /// The X connection failed.
    pub fn show(&self, canvas: &Canvas) -> anyhow::Result<()> {
        let width = usize::from(self.width).min(canvas.width as usize);
        let height = usize::from(self.height).min(canvas.height as usize);
        if width == 0 || height == 0 {
            return Ok(());
        }
        let max = self.conn.maximum_request_bytes().saturating_sub(64);
        let rows_per = (max / (width * 4)).clamp(1, height);
        let mut bytes = Vec::with_capacity(rows_per * width * 4);
        let mut row = 0;
        while row < height {
            let rows = rows_per.min(height - row);
            bytes.clear();
            for r in row..row + rows {
                let line = &canvas.pixels[r * canvas.width as usize..][..width];
                for &p in line {
                    let b = if self.lsb_first {
                        p.to_le_bytes()
                    } else {
                        p.to_be_bytes()
                    };
                    bytes.extend_from_slice(&b);
                }
            }
            self.conn.put_image(
                ImageFormat::Z_PIXMAP,
                self.window,
                self.gc,
                width as u16,
                rows as u16,
                0,
                row as i16,
                0,
                self.depth,
                &bytes,
            )?;
            row += rows;
        }
        self.conn.flush()?;
        Ok(())
    }

    /// Waits up to `within` for the next event. A full-screen window also
    /// takes the keyboard and pointer (again, if another client took them)
    /// and stays above every other window.
    ///
    /// # Errors
    /// The X connection was lost (the window was killed).
    pub fn next_event(&mut self, within: Duration) -> anyhow::Result<Option<WindowEvent>> {
        let until = Instant::now() + within;
        loop {
            if self.hold && self.mapped {
                self.keep_on_top()?;
            }
            while let Some(event) = self
                .conn
                .poll_for_event()
                .context("the X connection was lost")?
            {
                if let Some(e) = self.translate(event)? {
                    return Ok(Some(e));
                }
            }
            if Instant::now() >= until {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(15));
        }
    }

    fn keep_on_top(&mut self) -> anyhow::Result<()> {
        if !self.held {
            let kb = self
                .conn
                .grab_keyboard(
                    false,
                    self.window,
                    x11rb::CURRENT_TIME,
                    GrabMode::ASYNC,
                    GrabMode::ASYNC,
                )?
                .reply()?;
            let ptr = self
                .conn
                .grab_pointer(
                    false,
                    self.window,
                    EventMask::BUTTON_PRESS | EventMask::BUTTON_RELEASE,
                    GrabMode::ASYNC,
                    GrabMode::ASYNC,
                    self.window,
                    x11rb::NONE,
                    x11rb::CURRENT_TIME,
                )?
                .reply()?;
            self.held = kb.status == GrabStatus::SUCCESS && ptr.status == GrabStatus::SUCCESS;
            if self.held {
                tracing::info!("the keyboard and pointer are held by the window");
            }
        }
        if self.last_raise.elapsed() > Duration::from_millis(500) {
            self.last_raise = Instant::now();
            self.conn.configure_window(
                self.window,
                &ConfigureWindowAux::new().stack_mode(StackMode::ABOVE),
            )?;
            self.conn.flush()?;
        }
        Ok(())
    }

    fn translate(&mut self, event: Event) -> anyhow::Result<Option<WindowEvent>> {
        Ok(match event {
            Event::MapNotify(e) if e.window == self.window => {
                self.mapped = true;
                if !self.hold {
                    let _ = self.conn.set_input_focus(
                        InputFocus::PARENT,
                        self.window,
                        x11rb::CURRENT_TIME,
                    );
                    self.conn.flush()?;
                }
                Some(WindowEvent::Redraw)
            }
            Event::UnmapNotify(e) if e.window == self.window => {
                // Someone unmapped it (a window manager's "minimise"): back.
                self.mapped = false;
                self.held = false;
                self.conn.map_window(self.window)?;
                self.conn.flush()?;
                None
            }
            Event::Expose(e) if e.count == 0 => Some(WindowEvent::Redraw),
            Event::ConfigureNotify(e) if e.window == self.window => {
                if (e.width, e.height) != (self.width, self.height) {
                    self.width = e.width;
                    self.height = e.height;
                    Some(WindowEvent::Redraw)
                } else {
                    None
                }
            }
            Event::VisibilityNotify(_) if self.hold => {
                self.last_raise = Instant::now() - Duration::from_secs(1);
                None
            }
            Event::FocusOut(_) if self.hold => {
                // Focus moved away while the keyboard should be ours.
                self.held = false;
                None
            }
            Event::KeyPress(e) => {
                let state = u16::from(e.state);
                let group = u8::try_from((state >> 13) & 3).unwrap_or(0);
                let key = self.keys.press(e.detail, group);
                Some(WindowEvent::Key {
                    sym: self.keys.base_keysym(e.detail),
                    key,
                    ctrl: state & u16::from(KeyButMask::CONTROL) != 0,
                    alt: state & u16::from(KeyButMask::MOD1) != 0,
                })
            }
            Event::KeyRelease(e) => {
                self.keys.release(e.detail);
                None
            }
            Event::ButtonPress(e) => match e.detail {
                1 => Some(WindowEvent::Click {
                    x: i32::from(e.event_x),
                    y: i32::from(e.event_y),
                }),
                4 => Some(WindowEvent::Wheel(-1)),
                5 => Some(WindowEvent::Wheel(1)),
                _ => None,
            },
            Event::ClientMessage(e) if e.data.as_data32()[0] == self.wm_delete => {
                Some(WindowEvent::CloseAsked)
            }
            Event::MappingNotify(_) => {
                if let Ok(map) = read_keymap(&self.conn) {
                    self.keys.set_map(map);
                }
                None
            }
            _ => None,
        })
    }
}

/// A button drawn on a canvas, for hit tests.
#[derive(Debug, Clone, Copy, Default)]
pub struct Rect {
    pub x: i32,
    pub y: i32,
    pub w: i32,
    pub h: i32,
}

impl Rect {
    pub fn contains(&self, x: i32, y: i32) -> bool {
        x >= self.x && x < self.x + self.w && y >= self.y && y < self.y + self.h
    }
}
