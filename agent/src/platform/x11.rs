//! The X11 desktop over `x11rb` (pure Rust, no C libraries).
//!
//! - typed keys: XInput2 raw key events on the root window (every key of
//!   every master keyboard, whichever window has focus, no grab), turned
//!   into text by [`KeyTranslator`] with the server's keyboard mapping and
//!   the XKB group;
//! - the front window: `_NET_ACTIVE_WINDOW` on the root (falling back to
//!   the input focus without an EWMH window manager), its `_NET_WM_NAME`
//!   (or `WM_NAME`) and `WM_CLASS`, and changes to either;
//! - the clipboard: XFixes tells when `CLIPBOARD` changes owner; the text
//!   is then asked for as `UTF8_STRING` (at most [`MAX_CLIPBOARD`] bytes);
//! - screenshots: `GetImage` of the root window, which spans every monitor;
//! - idle time: the MIT-SCREEN-SAVER extension.
//!
//! One thread reads events and sends [`DesktopEvent`]s; queries run on the
//! same connection from any thread.

use std::sync::Arc;

use anyhow::{Context, bail};
use x11rb::connection::{Connection, RequestConnection};
use x11rb::protocol::Event;
use x11rb::protocol::xproto::{
    Atom, AtomEnum, ChangeWindowAttributesAux, ConnectionExt as _, CreateWindowAux, EventMask,
    GrabMode, ImageFormat, ImageOrder, ModMask, PropMode, Window, WindowClass,
};
use x11rb::protocol::{screensaver, xfixes, xinput, xkb};
use x11rb::rust_connection::RustConnection;
use x11rb::wrapper::ConnectionExt as _;

use super::keymap::{KeyTranslator, Keymap};
use super::{Desktop, DesktopEvent, EventSink, RgbImage, WindowInfo};

/// The most clipboard text read at once.
pub const MAX_CLIPBOARD: u32 = 64 * 1024;
/// The "Report a concern" shortcut, as staff and pupils are told it.
pub const CONCERN_SHORTCUT: &str = "Ctrl+Alt+R";
const CONCERN_KEY: u32 = xkeysym::key::r;
/// Longest title kept.
const MAX_TITLE: u32 = 4096;

struct Atoms {
    net_active_window: Atom,
    net_wm_name: Atom,
    net_wm_pid: Atom,
    utf8_string: Atom,
    clipboard: Atom,
    incr: Atom,
    transfer: Atom,
}

impl Atoms {
    fn intern(conn: &RustConnection) -> anyhow::Result<Atoms> {
        let get = |name: &str| -> anyhow::Result<Atom> {
            Ok(conn.intern_atom(false, name.as_bytes())?.reply()?.atom)
        };
        Ok(Atoms {
            net_active_window: get("_NET_ACTIVE_WINDOW")?,
            net_wm_name: get("_NET_WM_NAME")?,
            net_wm_pid: get("_NET_WM_PID")?,
            utf8_string: get("UTF8_STRING")?,
            clipboard: get("CLIPBOARD")?,
            incr: get("INCR")?,
            transfer: get("SAFEGUARD_CLIPBOARD")?,
        })
    }
}

/// An open X11 display.
pub struct X11Desktop {
    conn: RustConnection,
    root: Window,
    width: u16,
    height: u16,
    own: Window,
    atoms: Atoms,
    name: String,
    has_screensaver: bool,
}

impl X11Desktop {
    /// Connects to `display` (or `$DISPLAY`), sets up the event sources,
    /// and starts the thread that reads events into the returned channel.
    ///
    /// # Errors
    /// No display, or a server without XInput 2 (needed for keys).
    pub fn open(display: Option<&str>, sink: EventSink) -> anyhow::Result<Arc<X11Desktop>> {
        let name = display
            .map(str::to_owned)
            .or_else(|| std::env::var("DISPLAY").ok())
            .unwrap_or_default();
        let (conn, screen) = x11rb::connect(display)
            .with_context(|| format!("cannot connect to the X display {name:?}"))?;
        let setup_root = &conn.setup().roots[screen];
        let (root, width, height) = (
            setup_root.root,
            setup_root.width_in_pixels,
            setup_root.height_in_pixels,
        );
        let atoms = Atoms::intern(&conn)?;

        // Keys: XInput 2 raw events from every master keyboard.
        if conn
            .extension_information(xinput::X11_EXTENSION_NAME)?
            .is_none()
        {
            bail!("the X server {name} has no XInput extension; typed text cannot be seen");
        }
        let v = xinput::xi_query_version(&conn, 2, 2)?.reply()?;
        if v.major_version < 2 {
            bail!(
                "the X server {name} has XInput {}.{}; 2.0 or later is needed",
                v.major_version,
                v.minor_version
            );
        }
        xinput::xi_select_events(
            &conn,
            root,
            &[xinput::EventMask {
                deviceid: 1, // XIAllMasterDevices
                mask: vec![
                    xinput::XIEventMask::RAW_KEY_PRESS | xinput::XIEventMask::RAW_KEY_RELEASE,
                ],
            }],
        )?
        .check()
        .context("cannot listen for raw key events")?;
        let has_xkb = conn
            .extension_information(xkb::X11_EXTENSION_NAME)?
            .is_some()
            && xkb::use_extension(&conn, 1, 0)?.reply()?.supported;

        // The front window: property changes on the root.
        conn.change_window_attributes(
            root,
            &ChangeWindowAttributesAux::new().event_mask(EventMask::PROPERTY_CHANGE),
        )?
        .check()?;

        // Our own invisible window, to receive the clipboard's text.
        let own = conn.generate_id()?;
        conn.create_window(
            x11rb::COPY_DEPTH_FROM_PARENT,
            own,
            root,
            -10,
            -10,
            1,
            1,
            0,
            WindowClass::INPUT_OUTPUT,
            0,
            &CreateWindowAux::new(),
        )?
        .check()?;
        conn.change_property8(
            PropMode::REPLACE,
            own,
            AtomEnum::WM_NAME,
            AtomEnum::STRING,
            b"safeguard agent",
        )?;
        if conn
            .extension_information(xfixes::X11_EXTENSION_NAME)?
            .is_some()
        {
            xfixes::query_version(&conn, 5, 0)?.reply()?;
            xfixes::select_selection_input(
                &conn,
                own,
                atoms.clipboard,
                xfixes::SelectionEventMask::SET_SELECTION_OWNER,
            )?
            .check()?;
        } else {
            tracing::warn!(
                "the X server {name} has no XFixes extension; the clipboard is not watched"
            );
        }
        let has_screensaver = conn
            .extension_information(screensaver::X11_EXTENSION_NAME)?
            .is_some();

        let desktop = Arc::new(X11Desktop {
            conn,
            root,
            width,
            height,
            own,
            atoms,
            name,
            has_screensaver,
        });
        let (caps_lock, num_lock) = desktop.locks(has_xkb);
        let keymap = desktop.keymap()?;
        desktop.grab_concern_shortcut(&keymap);
        let translator = KeyTranslator::new(keymap, caps_lock, num_lock);
        let reader = desktop.clone();
        std::thread::Builder::new()
            .name("x11-events".into())
            .spawn(move || reader.event_loop(translator, has_xkb, &*sink))
            .context("cannot start the X event thread")?;
        Ok(desktop)
    }

    fn keymap(&self) -> anyhow::Result<Keymap> {
        read_keymap(&self.conn)
    }

    /// Takes Ctrl+Alt+R on the whole display for "Report a concern" (with
    /// or without Caps Lock and Num Lock on).
    fn grab_concern_shortcut(&self, keymap: &Keymap) {
        let per = usize::from(keymap.per_keycode.max(1));
        let codes: Vec<u8> = keymap
            .keysyms
            .chunks(per)
            .enumerate()
            .filter(|(_, syms)| syms.first() == Some(&CONCERN_KEY))
            .filter_map(|(i, _)| u8::try_from(usize::from(keymap.min_keycode) + i).ok())
            .collect();
        if codes.is_empty() {
            tracing::warn!("the keyboard has no R key; the concern shortcut is off");
            return;
        }
        let base = ModMask::CONTROL | ModMask::M1;
        let mut failed = None;
        for code in codes {
            for locks in [
                ModMask::from(0u16),
                ModMask::LOCK,
                ModMask::M2,
                ModMask::LOCK | ModMask::M2,
            ] {
                let grabbed = self
                    .conn
                    .grab_key(
                        false,
                        self.root,
                        base | locks,
                        code,
                        GrabMode::ASYNC,
                        GrabMode::ASYNC,
                    )
                    .map_err(anyhow::Error::from)
                    .and_then(|c| c.check().map_err(anyhow::Error::from));
                if let Err(e) = grabbed {
                    failed = Some(e);
                }
            }
        }
        match failed {
            Some(e) => tracing::warn!(
                "{CONCERN_SHORTCUT} is taken by another program ({e}); the concern window opens from its launcher only"
            ),
            None => tracing::info!("{CONCERN_SHORTCUT} opens \"Report a concern\""),
        }
    }

    /// Caps Lock and Num Lock as they are now.
    fn locks(&self, has_xkb: bool) -> (bool, bool) {
        if !has_xkb {
            return (false, false);
        }
        match xkb::get_state(&self.conn, xkb::ID::USE_CORE_KBD.into()).map(|c| c.reply()) {
            Ok(Ok(state)) => {
                let locked = u16::from(state.locked_mods);
                (locked & 0x02 != 0, locked & 0x10 != 0) // Lock, Mod2
            }
            _ => (false, false),
        }
    }

    fn group(&self, has_xkb: bool) -> u8 {
        if !has_xkb {
            return 0;
        }
        xkb::get_state(&self.conn, xkb::ID::USE_CORE_KBD.into())
            .ok()
            .and_then(|c| c.reply().ok())
            .map_or(0, |s| u8::from(s.group))
    }

    fn event_loop(
        &self,
        mut keys: KeyTranslator,
        has_xkb: bool,
        sink: &(dyn Fn(DesktopEvent) -> bool + Send),
    ) {
        let mut watched: Option<Window> = None;
        let mut front = self.active_window();
        if let Some(w) = &front {
            watched = Some(self.watch(w.id as Window, watched));
        }
        loop {
            let event = match self.conn.wait_for_event() {
                Ok(e) => e,
                Err(e) => {
                    sink(DesktopEvent::Closed(format!(
                        "the X connection closed: {e}"
                    )));
                    return;
                }
            };
            let out = match event {
                Event::XinputRawKeyPress(e) => u8::try_from(e.detail)
                    .ok()
                    .and_then(|code| keys.press(code, self.group(has_xkb)))
                    .map(DesktopEvent::Key),
                Event::XinputRawKeyRelease(e) => {
                    if let Ok(code) = u8::try_from(e.detail) {
                        keys.release(code);
                    }
                    None
                }
                Event::KeyPress(e) if e.event == self.root => {
                    keys.release_modifiers();
                    Some(DesktopEvent::ConcernShortcut)
                }
                Event::MappingNotify(_) => {
                    match self.keymap() {
                        Ok(map) => keys.set_map(map),
                        Err(e) => tracing::warn!("{e:#}"),
                    }
                    None
                }
                Event::PropertyNotify(e) => {
                    if e.window == self.root && e.atom == self.atoms.net_active_window {
                        let now = self.active_window();
                        if now.as_ref().map(|w| w.id) != front.as_ref().map(|w| w.id) {
                            if let Some(w) = &now {
                                watched = Some(self.watch(w.id as Window, watched));
                            }
                            front = now.clone();
                            now.map(DesktopEvent::Focus)
                        } else {
                            None
                        }
                    } else if Some(e.window) == watched
                        && (e.atom == self.atoms.net_wm_name
                            || e.atom == u32::from(AtomEnum::WM_NAME))
                    {
                        let now = self.describe(e.window);
                        if front.as_ref().map(|w| &w.title) != Some(&now.title) {
                            front = Some(now.clone());
                            Some(DesktopEvent::Title(now))
                        } else {
                            None
                        }
                    } else {
                        None
                    }
                }
                Event::XfixesSelectionNotify(e) if e.selection == self.atoms.clipboard => {
                    if e.owner != x11rb::NONE && e.owner != self.own {
                        let _ = self.conn.convert_selection(
                            self.own,
                            self.atoms.clipboard,
                            self.atoms.utf8_string,
                            self.atoms.transfer,
                            e.selection_timestamp,
                        );
                        let _ = self.conn.flush();
                    }
                    None
                }
                Event::SelectionNotify(e) if e.requestor == self.own => {
                    if e.property == x11rb::NONE {
                        None
                    } else {
                        self.clipboard_text().map(DesktopEvent::Clipboard)
                    }
                }
                Event::Error(e) => {
                    // A window vanishing between an event and our query is normal.
                    tracing::debug!("X error: {e:?}");
                    None
                }
                _ => None,
            };
            if let Some(out) = out
                && !sink(out)
            {
                return;
            }
        }
    }

    /// Asks for title changes of `window`, dropping interest in the last one.
    fn watch(&self, window: Window, previous: Option<Window>) -> Window {
        if let Some(prev) = previous
            && prev != window
        {
            let _ = self.conn.change_window_attributes(
                prev,
                &ChangeWindowAttributesAux::new().event_mask(EventMask::NO_EVENT),
            );
        }
        let _ = self.conn.change_window_attributes(
            window,
            &ChangeWindowAttributesAux::new().event_mask(EventMask::PROPERTY_CHANGE),
        );
        let _ = self.conn.flush();
        window
    }

    fn clipboard_text(&self) -> Option<String> {
        let reply = self
            .conn
            .get_property(
                true,
                self.own,
                self.atoms.transfer,
                AtomEnum::ANY,
                0,
                MAX_CLIPBOARD / 4,
            )
            .ok()?
            .reply()
            .ok()?;
        if reply.type_ == self.atoms.incr {
            tracing::debug!("clipboard text sent in pieces (INCR) is not read");
            return None;
        }
        let text = String::from_utf8_lossy(&reply.value).into_owned();
        (!text.trim().is_empty()).then_some(text)
    }

    fn text_property(&self, window: Window, atom: Atom) -> Option<String> {
        let reply = self
            .conn
            .get_property(false, window, atom, AtomEnum::ANY, 0, MAX_TITLE / 4)
            .ok()?
            .reply()
            .ok()?;
        (reply.format == 8 && !reply.value.is_empty())
            .then(|| String::from_utf8_lossy(&reply.value).into_owned())
    }

    /// Title and application of a window (or of its client window: some
    /// toolkits name a child, so one level of children is looked at).
    fn describe(&self, window: Window) -> WindowInfo {
        let title = self
            .text_property(window, self.atoms.net_wm_name)
            .or_else(|| self.text_property(window, AtomEnum::WM_NAME.into()))
            .unwrap_or_default();
        let app = self
            .text_property(window, AtomEnum::WM_CLASS.into())
            .map(|class| {
                // WM_CLASS is "instance\0Class\0": the class names the app.
                let mut parts = class.split('\0').filter(|s| !s.is_empty());
                let instance = parts.next().unwrap_or_default().to_owned();
                parts.next().map_or(instance, str::to_owned)
            })
            .unwrap_or_default();
        let pid = self
            .conn
            .get_property(
                false,
                window,
                self.atoms.net_wm_pid,
                AtomEnum::CARDINAL,
                0,
                1,
            )
            .ok()
            .and_then(|c| c.reply().ok())
            .and_then(|r| r.value32()?.next())
            .filter(|&p| p > 0);
        WindowInfo {
            id: u64::from(window),
            app,
            title,
            pid,
        }
    }

    fn active_from_wm(&self) -> Option<Window> {
        let reply = self
            .conn
            .get_property(
                false,
                self.root,
                self.atoms.net_active_window,
                AtomEnum::WINDOW,
                0,
                1,
            )
            .ok()?
            .reply()
            .ok()?;
        reply.value32()?.next().filter(|&w| w != x11rb::NONE)
    }
}

impl Desktop for X11Desktop {
    fn active_window(&self) -> Option<WindowInfo> {
        let window = self.active_from_wm().or_else(|| {
            let focus = self.conn.get_input_focus().ok()?.reply().ok()?.focus;
            (focus > 1 && focus != self.root).then_some(focus)
        })?;
        Some(self.describe(window))
    }

    fn screenshot(&self) -> anyhow::Result<RgbImage> {
        let reply = self
            .conn
            .get_image(
                ImageFormat::Z_PIXMAP,
                self.root,
                0,
                0,
                self.width,
                self.height,
                !0,
            )?
            .reply()
            .context("the X server refused the screenshot")?;
        let setup = self.conn.setup();
        let format = setup
            .pixmap_formats
            .iter()
            .find(|f| f.depth == reply.depth)
            .with_context(|| format!("no pixmap format for depth {}", reply.depth))?;
        let visual = setup
            .roots
            .iter()
            .flat_map(|s| &s.allowed_depths)
            .flat_map(|d| &d.visuals)
            .find(|v| v.visual_id == reply.visual)
            .context("the screenshot's visual is unknown")?;
        to_rgb(
            &reply.data,
            u32::from(self.width),
            u32::from(self.height),
            PixelLayout {
                bits_per_pixel: format.bits_per_pixel,
                scanline_pad: format.scanline_pad,
                lsb_first: setup.image_byte_order == ImageOrder::LSB_FIRST,
                masks: [visual.red_mask, visual.green_mask, visual.blue_mask],
            },
        )
    }

    fn idle_ms(&self) -> Option<u64> {
        if !self.has_screensaver {
            return None;
        }
        let info = screensaver::query_info(&self.conn, self.root)
            .ok()?
            .reply()
            .ok()?;
        Some(u64::from(info.ms_since_user_input))
    }

    fn name(&self) -> String {
        self.name.clone()
    }
}

/// The server's keyboard mapping.
///
/// # Errors
/// The X connection failed.
pub fn read_keymap(conn: &impl Connection) -> anyhow::Result<Keymap> {
    let setup = conn.setup();
    let (min, max) = (setup.min_keycode, setup.max_keycode);
    let reply = conn
        .get_keyboard_mapping(min, max - min + 1)?
        .reply()
        .context("cannot read the keyboard mapping")?;
    Ok(Keymap {
        min_keycode: min,
        per_keycode: reply.keysyms_per_keycode,
        keysyms: reply.keysyms,
    })
}

/// How the server lays out pixels in a Z-pixmap image.
#[derive(Debug, Clone, Copy)]
pub struct PixelLayout {
    pub bits_per_pixel: u8,
    pub scanline_pad: u8,
    pub lsb_first: bool,
    pub masks: [u32; 3],
}

/// Converts a Z-pixmap image of 16, 24 or 32 bits per pixel to RGB.
///
/// # Errors
/// Another pixel size, or too little data for the size given.
pub fn to_rgb(
    data: &[u8],
    width: u32,
    height: u32,
    layout: PixelLayout,
) -> anyhow::Result<RgbImage> {
    let bpp = usize::from(layout.bits_per_pixel);
    if !matches!(bpp, 16 | 24 | 32) {
        bail!("screens with {bpp} bits per pixel are not supported");
    }
    if layout.masks.contains(&0) {
        bail!("the screen's visual has no colour masks (not a true-colour screen)");
    }
    let bytes = bpp / 8;
    let pad = usize::from(layout.scanline_pad.max(8));
    let stride = (width as usize * bpp).div_ceil(pad) * pad / 8;
    let need = stride * height as usize;
    if data.len() < need {
        bail!("the screenshot has {} bytes, {need} expected", data.len());
    }
    let channel = |mask: u32| {
        let shift = mask.trailing_zeros();
        let max = mask >> shift.min(31);
        (shift, max.max(1))
    };
    let chans = layout.masks.map(channel);
    let mut pixels = Vec::with_capacity(width as usize * height as usize * 3);
    for row in data.chunks_exact(stride).take(height as usize) {
        for px in row[..width as usize * bytes].chunks_exact(bytes) {
            let mut v: u32 = 0;
            for (i, &b) in px.iter().enumerate() {
                let i = if layout.lsb_first { i } else { bytes - 1 - i };
                v |= u32::from(b) << (8 * i);
            }
            for (shift, max) in chans {
                let c = (v >> shift) & max;
                pixels.push(if max == 255 {
                    c as u8
                } else {
                    (c * 255 / max) as u8
                });
            }
        }
    }
    Ok(RgbImage {
        width,
        height,
        pixels,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_32_and_16_bit_pixels() {
        // Two BGRX pixels: pure red and pure blue, LSB first.
        let data = [0, 0, 255, 0, 255, 0, 0, 0];
        let layout = PixelLayout {
            bits_per_pixel: 32,
            scanline_pad: 32,
            lsb_first: true,
            masks: [0xff0000, 0x00ff00, 0x0000ff],
        };
        let img = to_rgb(&data, 2, 1, layout).unwrap();
        assert_eq!(img.pixels, [255, 0, 0, 0, 0, 255]);
        // RGB565 white and green, rows padded to 32 bits.
        let data = [0xff, 0xff, 0xe0, 0x07, 0xff, 0xff, 0xe0, 0x07];
        let layout = PixelLayout {
            bits_per_pixel: 16,
            scanline_pad: 32,
            lsb_first: true,
            masks: [0xf800, 0x07e0, 0x001f],
        };
        let img = to_rgb(&data, 2, 2, layout).unwrap();
        assert_eq!(&img.pixels[..6], &[255, 255, 255, 0, 255, 0]);
        assert!(
            to_rgb(&data, 4, 4, layout)
                .unwrap_err()
                .to_string()
                .contains("expected")
        );
        let no_masks = PixelLayout {
            masks: [0, 0, 0],
            ..layout
        };
        assert!(
            to_rgb(&data, 2, 2, no_masks)
                .unwrap_err()
                .to_string()
                .contains("no colour masks")
        );
    }
}
