//! `x-screenshot OUT.png`: a PNG of the whole X display in `$DISPLAY`, taken
//! the way the agent takes its screenshots. For looking at what the agent's
//! windows show under Xvfb, where no screenshot tool is installed.

use agent::platform::Desktop;
use agent::platform::x11::X11Desktop;

fn main() -> anyhow::Result<()> {
    let out = std::env::args()
        .nth(1)
        .ok_or_else(|| anyhow::anyhow!("usage: x-screenshot OUT.png"))?;
    let desktop = X11Desktop::open(None, Box::new(|_| false))?;
    let image = desktop.screenshot()?;
    std::fs::write(&out, agent::screenshot::encode_png(&image)?)?;
    println!("{out}: {}x{}", image.width, image.height);
    Ok(())
}
