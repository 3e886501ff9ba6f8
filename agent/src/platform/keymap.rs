//! Key codes to typed text: the keyboard mapping the X server holds, the
//! group (layout) in use, and modifier state followed key by key.
//!
//! Modifiers are followed from the key events themselves, in order, not
//! asked of the server: a fast typist (or xdotool) has released Shift by
//! the time a program asks, and "Kill" would read as "kill".

use wordlists::Key;
use xkeysym::{Keysym, key};

/// The server's keycode → keysyms table.
#[derive(Debug, Clone, Default)]
pub struct Keymap {
    pub min_keycode: u8,
    pub per_keycode: u8,
    pub keysyms: Vec<u32>,
}

impl Keymap {
    fn row(&self, keycode: u8) -> &[u32] {
        let per = usize::from(self.per_keycode);
        let Some(index) = keycode.checked_sub(self.min_keycode) else {
            return &[];
        };
        let start = usize::from(index) * per;
        self.keysyms.get(start..start + per).unwrap_or(&[])
    }

    /// The keysym at a column, `NoSymbol` when out of range.
    fn at(&self, keycode: u8, column: usize) -> u32 {
        self.row(keycode)
            .get(column)
            .copied()
            .unwrap_or(key::NoSymbol)
    }
}

/// Modifier keys held or locked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Modifiers {
    shift: u8,
    control: u8,
    alt: u8,
    level3: u8,
    caps_lock: bool,
    num_lock: bool,
}

/// Turns raw key presses and releases into [`Key`]s.
#[derive(Debug, Clone, Default)]
pub struct KeyTranslator {
    map: Keymap,
    mods: Modifiers,
}

impl KeyTranslator {
    /// `caps_lock` and `num_lock` are the lock states at start.
    pub fn new(map: Keymap, caps_lock: bool, num_lock: bool) -> KeyTranslator {
        KeyTranslator {
            map,
            mods: Modifiers {
                caps_lock,
                num_lock,
                ..Modifiers::default()
            },
        }
    }

    /// The keyboard mapping changed.
    pub fn set_map(&mut self, map: Keymap) {
        self.map = map;
    }

    /// A key went down while `group` (0-based layout) was active.
    pub fn press(&mut self, keycode: u8, group: u8) -> Option<Key> {
        let base = self.map.at(keycode, 0);
        match base {
            key::Shift_L | key::Shift_R => self.mods.shift = self.mods.shift.saturating_add(1),
            key::Control_L | key::Control_R => {
                self.mods.control = self.mods.control.saturating_add(1);
            }
            key::Alt_L
            | key::Alt_R
            | key::Meta_L
            | key::Meta_R
            | key::Super_L
            | key::Super_R
            | key::Hyper_L
            | key::Hyper_R => self.mods.alt = self.mods.alt.saturating_add(1),
            key::ISO_Level3_Shift | key::Mode_switch => {
                self.mods.level3 = self.mods.level3.saturating_add(1);
            }
            key::Caps_Lock => self.mods.caps_lock = !self.mods.caps_lock,
            key::Num_Lock => self.mods.num_lock = !self.mods.num_lock,
            _ => return self.translate(keycode, group),
        }
        None
    }

    /// The key's keysym without modifiers (a letter key gives its lower
    /// case letter), for shortcuts.
    pub fn base_keysym(&self, keycode: u8) -> u32 {
        self.map.at(keycode, 0)
    }

    /// Forgets the modifiers held (the locks stay). For a key combination
    /// the agent itself grabs: while the grab lasts the X server sends no
    /// raw events for it, so the releases of its Ctrl and Alt never arrive.
    pub fn release_modifiers(&mut self) {
        self.mods = Modifiers {
            caps_lock: self.mods.caps_lock,
            num_lock: self.mods.num_lock,
            ..Modifiers::default()
        };
    }

    /// A key came up.
    pub fn release(&mut self, keycode: u8) {
        let m = &mut self.mods;
        match self.map.at(keycode, 0) {
            key::Shift_L | key::Shift_R => m.shift = m.shift.saturating_sub(1),
            key::Control_L | key::Control_R => m.control = m.control.saturating_sub(1),
            key::Alt_L
            | key::Alt_R
            | key::Meta_L
            | key::Meta_R
            | key::Super_L
            | key::Super_R
            | key::Hyper_L
            | key::Hyper_R => m.alt = m.alt.saturating_sub(1),
            key::ISO_Level3_Shift | key::Mode_switch => m.level3 = m.level3.saturating_sub(1),
            _ => {}
        }
    }

    fn translate(&self, keycode: u8, group: u8) -> Option<Key> {
        let shifted = self.mods.shift > 0;
        let sym = self.keysym(keycode, group, shifted);
        if self.mods.control > 0 {
            return Some(match sym {
                key::BackSpace => Key::WordBackSpace,
                // Ctrl+Shift and the like: nothing typed, nothing lost.
                key::NoSymbol => return None,
                // Paste, select-all, undo …: the line can no longer be followed.
                _ => Key::Reset,
            });
        }
        if self.mods.alt > 0 {
            return Some(Key::Reset);
        }
        let named = match sym {
            key::BackSpace => Key::BackSpace,
            key::Delete | key::KP_Delete => Key::Delete,
            key::Left | key::KP_Left => Key::Left,
            key::Right | key::KP_Right => Key::Right,
            key::Home | key::KP_Home => Key::Home,
            key::End | key::KP_End => Key::End,
            key::Return | key::KP_Enter | key::Tab | key::ISO_Left_Tab | key::KP_Tab => Key::Enter,
            key::Up
            | key::Down
            | key::Page_Up
            | key::Page_Down
            | key::KP_Up
            | key::KP_Down
            | key::KP_Page_Up
            | key::KP_Page_Down
            | key::Escape
            | key::Insert => Key::Reset,
            _ => {
                let c = Keysym::new(sym).key_char()?;
                if c.is_control() {
                    return None;
                }
                // Caps Lock inverts the case of letters (Shift+Caps types lower case).
                let c = if self.mods.caps_lock && c.is_alphabetic() {
                    invert_case(c)
                } else {
                    c
                };
                Key::Char(c)
            }
        };
        Some(named)
    }

    /// The keysym for this keycode, group and shift level, by the core
    /// protocol's rules: columns are group 1 levels 1–2, group 2 levels 1–2,
    /// then levels 3–4 of each group (XKB's core mapping); a missing shifted
    /// symbol is the upper case of the unshifted one.
    fn keysym(&self, keycode: u8, group: u8, shifted: bool) -> u32 {
        let groups = (usize::from(self.map.per_keycode) / 2).clamp(1, 2);
        let mut g = usize::from(group).min(groups - 1);
        let level3 = self.mods.level3 > 0;
        // A group with nothing on this key falls back to the first.
        if self.map.at(keycode, 2 * g) == key::NoSymbol {
            g = 0;
        }
        let mut base = 2 * g + if level3 { 4 } else { 0 };
        if level3 && self.map.at(keycode, base) == key::NoSymbol {
            base = 2 * g;
        }
        // The keypad follows Num Lock, not Shift.
        let keypad = Keysym::new(self.map.at(keycode, base + 1)).is_keypad_key();
        let use_shifted = if keypad {
            self.mods.num_lock != shifted
        } else {
            shifted
        };
        if use_shifted {
            let s = self.map.at(keycode, base + 1);
            if s != key::NoSymbol {
                return s;
            }
            let lower = self.map.at(keycode, base);
            return Keysym::new(lower)
                .key_char()
                .and_then(|c| {
                    let mut up = c.to_uppercase();
                    let u = up.next()?;
                    up.next().is_none().then(|| Keysym::from_char(u).raw())
                })
                .filter(|&u| u != key::NoSymbol)
                .unwrap_or(lower);
        }
        self.map.at(keycode, base)
    }
}

fn invert_case(c: char) -> char {
    let other: Vec<char> = if c.is_uppercase() {
        c.to_lowercase().collect()
    } else {
        c.to_uppercase().collect()
    };
    match other[..] {
        [one] => one,
        _ => c,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny US-like map: keycodes from 8, four symbols each
    /// (group 1 lower/upper, group 2 lower/upper).
    fn translator() -> KeyTranslator {
        let rows: [[u32; 4]; 9] = [
            [key::Shift_L, 0, 0, 0],                      // 8
            [key::a, key::A, 0x6c6, 0x6e6],               // 9: a / Cyrillic ф Ф
            [key::_1, key::exclam, 0, 0],                 // 10
            [key::BackSpace, key::BackSpace, 0, 0],       // 11
            [key::Control_L, 0, 0, 0],                    // 12
            [key::Caps_Lock, 0, 0, 0],                    // 13
            [key::space, key::space, 0, 0],               // 14
            [key::e, 0, 0, 0],                            // 15: no shifted symbol listed
            [key::dead_acute, key::dead_diaeresis, 0, 0], // 16
        ];
        KeyTranslator::new(
            Keymap {
                min_keycode: 8,
                per_keycode: 4,
                keysyms: rows.iter().flatten().copied().collect(),
            },
            false,
            false,
        )
    }

    #[test]
    fn modifiers_whose_release_was_never_seen_can_be_forgotten() {
        let mut t = translator();
        t.press(13, 0); // Caps Lock on
        t.press(12, 0); // Control, released while grabbed: never seen
        assert_eq!(t.press(9, 0), Some(Key::Reset));
        t.release_modifiers();
        assert_eq!(t.press(9, 0), Some(Key::Char('A')), "Caps Lock stays");
    }

    #[test]
    fn shift_caps_groups_and_control() {
        let mut t = translator();
        assert_eq!(t.press(9, 0), Some(Key::Char('a')));
        assert_eq!(t.press(8, 0), None);
        assert_eq!(t.press(9, 0), Some(Key::Char('A')));
        assert_eq!(t.press(10, 0), Some(Key::Char('!')));
        assert_eq!(
            t.press(15, 0),
            Some(Key::Char('E')),
            "upper case made from lower"
        );
        t.release(8);
        assert_eq!(t.press(9, 0), Some(Key::Char('a')));
        assert_eq!(t.press(9, 1), Some(Key::Char('ф')), "second layout");
        assert_eq!(
            t.press(10, 1),
            Some(Key::Char('1')),
            "empty in group 2: group 1"
        );
        t.press(13, 0);
        assert_eq!(t.press(9, 0), Some(Key::Char('A')), "caps lock");
        assert_eq!(
            t.press(10, 0),
            Some(Key::Char('1')),
            "caps lock leaves digits"
        );
        t.press(8, 0);
        assert_eq!(t.press(9, 0), Some(Key::Char('a')), "shift + caps lock");
        t.release(8);
        t.press(13, 0);
        assert_eq!(t.press(11, 0), Some(Key::BackSpace));
        t.press(12, 0);
        assert_eq!(t.press(11, 0), Some(Key::WordBackSpace));
        assert_eq!(t.press(9, 0), Some(Key::Reset), "ctrl+a");
        t.release(12);
        assert_eq!(t.press(14, 0), Some(Key::Char(' ')));
        assert_eq!(t.press(16, 0), None, "dead keys type nothing themselves");
        assert_eq!(t.press(200, 0), None, "unknown keycode");
        assert_eq!(t.press(3, 0), None, "below the minimum keycode");
        t.release(8);
        t.release(8);
        assert_eq!(
            t.press(9, 0),
            Some(Key::Char('a')),
            "extra releases do not underflow"
        );
    }
}
