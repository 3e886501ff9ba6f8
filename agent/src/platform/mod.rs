//! What the agent needs from the desktop, behind traits so Windows and
//! macOS backends can follow (there, `xcap` is the intended screenshot
//! backend). Linux X11 is implemented in [`x11`] over `x11rb`, with no C X
//! libraries.

pub mod keymap;
pub mod x11;

use wordlists::Key;

/// The window in front.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WindowInfo {
    /// A platform id; equal ids are the same window.
    pub id: u64,
    /// The application (`WM_CLASS` class on X11).
    pub app: String,
    pub title: String,
    /// The process that owns it, as the window says (`_NET_WM_PID`), when
    /// it says.
    pub pid: Option<u32>,
}

/// Something that happened on the desktop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DesktopEvent {
    /// A key typed (after layout and modifiers) into the focused window.
    Key(Key),
    /// Another window came to the front.
    Focus(WindowInfo),
    /// The front window's title changed.
    Title(WindowInfo),
    /// New text on the clipboard.
    Clipboard(String),
    /// The desktop went away (the X server closed); no more events.
    Closed(String),
    /// The "Report a concern" shortcut was pressed.
    ConcernShortcut,
}

/// A screenshot: 8-bit RGB, row by row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RgbImage {
    pub width: u32,
    pub height: u32,
    pub pixels: Vec<u8>,
}

/// Where a desktop hands its events; returns false once nobody listens.
pub type EventSink = Box<dyn Fn(DesktopEvent) -> bool + Send>;

/// The desktop's queries (events go to the [`EventSink`] given at open).
pub trait Desktop: Send + Sync {
    /// The window in front now.
    fn active_window(&self) -> Option<WindowInfo>;
    /// The whole screen, every monitor.
    ///
    /// # Errors
    /// Why the screen could not be read.
    fn screenshot(&self) -> anyhow::Result<RgbImage>;
    /// Milliseconds since the user last touched keyboard or mouse.
    fn idle_ms(&self) -> Option<u64>;
    /// The display's name, for logs.
    fn name(&self) -> String;
}
