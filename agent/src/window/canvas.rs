//! A picture of a window, drawn in memory: filled rectangles and text in
//! DejaVu Sans (built into the binary, so the laptop needs no fonts),
//! rasterised with `fontdue`. Pixels are `0x00RRGGBB`.

use std::collections::HashMap;

const REGULAR: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
const BOLD: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans-Bold.ttf");

/// Regular or bold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Weight {
    Regular,
    Bold,
}

/// The two faces, with rasterised glyphs kept for the next draw.
pub struct Fonts {
    regular: fontdue::Font,
    bold: fontdue::Font,
    glyphs: HashMap<(char, Weight, u32), (fontdue::Metrics, Vec<u8>)>,
}

impl Fonts {
    /// The built-in faces.
    ///
    /// # Errors
    /// Only if the built-in font files are damaged (the tests rule it out).
    pub fn load() -> anyhow::Result<Fonts> {
        let settings = fontdue::FontSettings::default();
        let load = |bytes: &'static [u8], name: &str| {
            fontdue::Font::from_bytes(bytes, settings)
                .map_err(|e| anyhow::anyhow!("the built-in font {name} does not load: {e}"))
        };
        Ok(Fonts {
            regular: load(REGULAR, "DejaVu Sans")?,
            bold: load(BOLD, "DejaVu Sans Bold")?,
            glyphs: HashMap::new(),
        })
    }

    fn face(&self, weight: Weight) -> &fontdue::Font {
        match weight {
            Weight::Regular => &self.regular,
            Weight::Bold => &self.bold,
        }
    }

    /// Width of `text` in pixels.
    pub fn width(&self, weight: Weight, size: f32, text: &str) -> f32 {
        let face = self.face(weight);
        text.chars()
            .map(|c| face.metrics(c, size).advance_width)
            .sum()
    }

    /// Distance between baselines, in pixels.
    pub fn line_height(&self, size: f32) -> f32 {
        self.regular
            .horizontal_line_metrics(size)
            .map_or(size * 1.2, |m| m.new_line_size)
    }

    /// Height of the capitals above the baseline, about.
    pub fn ascent(&self, size: f32) -> f32 {
        self.regular
            .horizontal_line_metrics(size)
            .map_or(size * 0.8, |m| m.ascent)
    }

    /// Breaks `text` into lines no wider than `max_width`, at spaces (and
    /// inside a word only when the word alone is too wide). A `\n` always
    /// breaks.
    pub fn wrap(&self, weight: Weight, size: f32, text: &str, max_width: f32) -> Vec<String> {
        let mut lines = Vec::new();
        for paragraph in text.split('\n') {
            let mut line = String::new();
            let mut width = 0.0;
            let space = self.width(weight, size, " ");
            for word in paragraph.split(' ').filter(|w| !w.is_empty()) {
                let w = self.width(weight, size, word);
                let extra = if line.is_empty() { w } else { space + w };
                if width + extra <= max_width || line.is_empty() && w <= max_width {
                    if !line.is_empty() {
                        line.push(' ');
                    }
                    line.push_str(word);
                    width += extra;
                    continue;
                }
                if !line.is_empty() {
                    lines.push(std::mem::take(&mut line));
                    width = 0.0;
                }
                if w <= max_width {
                    line.push_str(word);
                    width = w;
                    continue;
                }
                // A word wider than the line: cut it.
                for c in word.chars() {
                    let cw = self.width(weight, size, c.encode_utf8(&mut [0; 4]));
                    if width + cw > max_width && !line.is_empty() {
                        lines.push(std::mem::take(&mut line));
                        width = 0.0;
                    }
                    line.push(c);
                    width += cw;
                }
            }
            lines.push(line);
        }
        lines
    }
}

/// Pixels of a window.
pub struct Canvas {
    pub width: u32,
    pub height: u32,
    pub pixels: Vec<u32>,
}

impl Canvas {
    pub fn new(width: u32, height: u32, background: u32) -> Canvas {
        Canvas {
            width,
            height,
            pixels: vec![background; width as usize * height as usize],
        }
    }

    /// Fills a rectangle (clipped to the canvas).
    pub fn fill(&mut self, x: i32, y: i32, w: i32, h: i32, color: u32) {
        let (x0, y0) = (x.max(0), y.max(0));
        let x1 = (x + w).min(self.width as i32);
        let y1 = (y + h).min(self.height as i32);
        for row in y0..y1 {
            let start = row as usize * self.width as usize;
            self.pixels[start + x0 as usize..start + x1.max(x0) as usize].fill(color);
        }
    }

    /// A rectangle's outline, `t` pixels thick.
    pub fn outline(&mut self, x: i32, y: i32, w: i32, h: i32, t: i32, color: u32) {
        self.fill(x, y, w, t, color);
        self.fill(x, y + h - t, w, t, color);
        self.fill(x, y, t, h, color);
        self.fill(x + w - t, y, t, h, color);
    }

    /// Draws `text` with its baseline at `y`, from `x`; returns the x after it.
    pub fn text(
        &mut self,
        fonts: &mut Fonts,
        (weight, size): (Weight, f32),
        x: i32,
        y: i32,
        text: &str,
        color: u32,
    ) -> i32 {
        let mut pen = x as f32;
        for c in text.chars() {
            let key = (c, weight, size.to_bits());
            if !fonts.glyphs.contains_key(&key) {
                let glyph = fonts.face(weight).rasterize(c, size);
                fonts.glyphs.insert(key, glyph);
            }
            let (m, bitmap) = &fonts.glyphs[&key];
            let gx = pen.round() as i32 + m.xmin;
            let gy = y - m.height as i32 - m.ymin;
            self.blend(gx, gy, m.width, m.height, bitmap, color);
            pen += m.advance_width;
        }
        pen.round() as i32
    }

    fn blend(&mut self, x: i32, y: i32, w: usize, h: usize, coverage: &[u8], color: u32) {
        for row in 0..h {
            let py = y + row as i32;
            if py < 0 || py >= self.height as i32 {
                continue;
            }
            for col in 0..w {
                let px = x + col as i32;
                if px < 0 || px >= self.width as i32 {
                    continue;
                }
                let a = u32::from(coverage[row * w + col]);
                if a == 0 {
                    continue;
                }
                let i = py as usize * self.width as usize + px as usize;
                self.pixels[i] = mix(self.pixels[i], color, a);
            }
        }
    }
}

/// `fg` over `bg` at coverage `a` (0–255).
fn mix(bg: u32, fg: u32, a: u32) -> u32 {
    let channel = |shift: u32| {
        let b = (bg >> shift) & 0xff;
        let f = (fg >> shift) & 0xff;
        ((f * a + b * (255 - a)) / 255) << shift
    };
    channel(16) | channel(8) | channel(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_fonts_load_and_draw() {
        let mut fonts = Fonts::load().unwrap();
        let mut canvas = Canvas::new(200, 40, 0xffffff);
        let end = canvas.text(&mut fonts, (Weight::Bold, 20.0), 5, 30, "Accept", 0x000000);
        assert!(end > 60 && end < 120, "Accept is {end} px wide");
        let dark = canvas.pixels.iter().filter(|&&p| p < 0x808080).count();
        assert!(dark > 100, "only {dark} dark pixels were drawn");
        // Drawing off the edges is clipped, not a panic.
        canvas.text(&mut fonts, (Weight::Regular, 30.0), -20, 5, "édge ✓", 0);
        canvas.text(&mut fonts, (Weight::Regular, 30.0), 190, 60, "edge", 0);
        canvas.fill(-5, -5, 500, 500, 0x123456);
        assert!(canvas.pixels.iter().all(|&p| p == 0x123456));
    }

    #[test]
    fn text_wraps_at_spaces_and_cuts_long_words() {
        let fonts = Fonts::load().unwrap();
        let lines = fonts.wrap(
            Weight::Regular,
            16.0,
            "one two three four five six\nseven",
            100.0,
        );
        assert!(lines.len() >= 3, "{lines:?}");
        assert_eq!(lines.last().unwrap(), "seven");
        for l in &lines {
            assert!(fonts.width(Weight::Regular, 16.0, l) <= 100.0, "{l:?}");
        }
        let long = fonts.wrap(Weight::Regular, 16.0, &"x".repeat(200), 100.0);
        assert!(long.len() > 5);
        assert_eq!(long.concat(), "x".repeat(200));
    }
}
