//! Screenshots for captures: downscaled to the policy's width by area
//! averaging (text stays legible) and encoded as PNG.

use anyhow::Context;

use crate::platform::RgbImage;

/// Shrinks `image` to at most `max_width` pixels wide, keeping its shape.
pub fn downscale(image: &RgbImage, max_width: u32) -> RgbImage {
    if image.width <= max_width || max_width == 0 {
        return image.clone();
    }
    let (w, h) = (image.width as usize, image.height as usize);
    let nw = max_width as usize;
    let nh = ((h * nw).div_ceil(w)).max(1);
    let mut out = Vec::with_capacity(nw * nh * 3);
    for y in 0..nh {
        let (y0, y1) = (y * h / nh, ((y + 1) * h / nh).max(y * h / nh + 1));
        for x in 0..nw {
            let (x0, x1) = (x * w / nw, ((x + 1) * w / nw).max(x * w / nw + 1));
            let mut sum = [0u32; 3];
            for row in y0..y1 {
                let line = &image.pixels[(row * w + x0) * 3..(row * w + x1) * 3];
                for px in line.chunks_exact(3) {
                    for c in 0..3 {
                        sum[c] += u32::from(px[c]);
                    }
                }
            }
            let n = ((y1 - y0) * (x1 - x0)) as u32;
            out.extend(sum.map(|s| (s / n) as u8));
        }
    }
    RgbImage {
        width: nw as u32,
        height: nh as u32,
        pixels: out,
    }
}

/// Encodes RGB as PNG (fast compression: screens compress well anyway).
///
/// # Errors
/// Only if the image's size and pixels disagree.
pub fn encode_png(image: &RgbImage) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, image.width, image.height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.set_compression(png::Compression::Fast);
    let mut writer = encoder.write_header().context("cannot start the PNG")?;
    writer
        .write_image_data(&image.pixels)
        .context("cannot encode the screenshot")?;
    writer.finish().context("cannot finish the PNG")?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halves_by_averaging_and_round_trips_through_png() {
        // 4x2: left half white, right half black.
        let mut pixels = Vec::new();
        for _ in 0..2 {
            for x in 0..4 {
                pixels.extend(if x < 2 { [255; 3] } else { [0; 3] });
            }
        }
        let img = RgbImage {
            width: 4,
            height: 2,
            pixels,
        };
        let small = downscale(&img, 2);
        assert_eq!((small.width, small.height), (2, 1));
        assert_eq!(small.pixels, [255, 255, 255, 0, 0, 0]);
        assert_eq!(downscale(&img, 1920), img, "never enlarged");
        let png = encode_png(&img).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        let mut reader = png::Decoder::new(std::io::Cursor::new(png))
            .read_info()
            .unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!((info.width, info.height), (4, 2));
        assert_eq!(&buf[..info.buffer_size()], &img.pixels[..]);
    }

    #[test]
    fn odd_sizes_keep_their_shape() {
        let img = RgbImage {
            width: 2561,
            height: 1441,
            pixels: vec![128; 2561 * 1441 * 3],
        };
        let small = downscale(&img, 1920);
        assert_eq!(small.width, 1920);
        assert_eq!(small.height, 1081);
        assert!(small.pixels.iter().all(|&p| p == 128));
    }
}
