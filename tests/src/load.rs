//! Synthetic data for the console's benchmarks, stored through the real
//! ingest path (`store_batch`): captures spread over weeks, and a week of
//! site visits from 1,500 pupils on 200 laptops to 3,000 sites of skewed
//! popularity in school hours. Deterministic, so runs compare.

use console_server::school_week::{self, Week};
use console_server::store::sql_store::SqlStore;
use console_server::store::{Incoming, IngestStore};
use protocol::{AgentMessage, Capture, Screenshot, SiteVisit, SiteVisits, Source, UnixMillis};
use uuid::Uuid;

/// Pupils in the visit data.
pub const USERS: usize = 1500;
/// Laptops in the visit data.
pub const DEVICES: usize = 200;
/// Sites in the visit data.
pub const SITES: u64 = 3000;

/// The library's categories, for captures spread over them.
pub const CATEGORIES: &[&str] = &[
    "self-harm",
    "cyberbullying",
    "grooming",
    "weapons",
    "drugs",
    "adult",
    "extremism",
    "sexting",
    "gambling",
    "hate",
    "eating-disorders",
    "filter-bypass",
    "personal-info",
];

/// A cheap deterministic mix (SplitMix64).
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// A site; low numbers far more popular.
pub fn site(r: u64) -> String {
    let u = (r % 10_000) as f64 / 10_000.0;
    let n = (u * u * u * SITES as f64) as u64;
    match n {
        0 => "bbc.co.uk".into(),
        1 => "youtube.com".into(),
        2 => "m.bet365.com".into(),
        3 => "roblox.com".into(),
        _ => format!("site{n}.example"),
    }
}

/// Stores `rows` visit rows in `week`, from `devices` (at least
/// [`DEVICES`]).
///
/// # Errors
/// A storage failure.
pub fn fill_visits(
    store: &SqlStore,
    week: Week,
    rows: usize,
    devices: &[Uuid],
) -> anyhow::Result<()> {
    let (start, _) = week.bounds(&school_week::zone());
    {
        // Counted in the school's zone from the start, as the console does.
        use console_server::store::visits::VisitStore;
        store.ensure_week_totals(&school_week::zone())?;
    }
    let mut made = 0;
    while made < rows {
        let mut batch = Vec::new();
        for _ in 0..10 {
            if made >= rows {
                break;
            }
            let n = 1000.min(rows - made);
            let visits: Vec<SiteVisit> = (made..made + n)
                .map(|i| {
                    let r = mix(i as u64 ^ start.0 as u64);
                    let user = (r % USERS as u64) as usize;
                    let day = (r >> 12) % 5;
                    let minute = (r >> 20) % (7 * 60);
                    let t = start.0 + (day as i64 * 24 + 8) * 3_600_000 + minute as i64 * 60_000;
                    let domain = site(r >> 32);
                    SiteVisit {
                        user: format!("pupil{user:04}"),
                        browser: "Chrome".into(),
                        url: format!("https://{domain}/page/{}", (r >> 40) % 50),
                        domain,
                        title: "A page".into(),
                        start: UnixMillis(t),
                        end: UnixMillis(t + 60_000),
                        active_seconds: ((r >> 48) % 300) as u32,
                        visits: 1,
                    }
                })
                .collect();
            let user = (mix(made as u64) % USERS as u64) as usize;
            batch.push(Incoming {
                device: devices[user % DEVICES],
                received: UnixMillis::now(),
                message: AgentMessage::SiteVisits(SiteVisits {
                    id: Uuid::now_v7(),
                    visits,
                }),
            });
            made += n;
        }
        store.store_batch(&batch)?;
    }
    Ok(())
}

/// Stores `count` captures from `device`, evenly over the `span_ms` before
/// `now`, oldest first (ids in time order), 800 pupils, every category and
/// severity, no screenshots.
///
/// # Errors
/// A storage failure.
pub fn fill_captures(
    store: &SqlStore,
    count: usize,
    now: i64,
    span_ms: i64,
    device: Uuid,
) -> anyhow::Result<()> {
    let mut made = 0;
    while made < count {
        let batch: Vec<Incoming> = (made..(made + 5000).min(count))
            .map(|i| {
                let t = now - span_ms + (i as i64 * span_ms / count as i64);
                let secs = (t / 1000) as u64;
                let id = Uuid::new_v7(uuid::Timestamp::from_unix(
                    uuid::NoContext,
                    secs,
                    ((t % 1000) * 1_000_000) as u32,
                ));
                let context = format!("message {i} from pupil {} about something", i % 800);
                Incoming {
                    device,
                    received: UnixMillis(t),
                    message: AgentMessage::Capture(Capture {
                        id,
                        time: UnixMillis(t),
                        user: format!("pupil{}", i % 800),
                        source: Source::Typed,
                        app: "chromium".into(),
                        window_title: "Chat".into(),
                        url: None,
                        term: "something".into(),
                        category: CATEGORIES[i % CATEGORIES.len()].into(),
                        severity: (i % 5 + 1) as u8,
                        context_match: (0, 7),
                        context,
                        screenshot: Screenshot::Missing("bench".into()),
                    }),
                }
            })
            .collect();
        made += batch.len();
        store.store_batch(&batch)?;
    }
    Ok(())
}

/// Runs `f` `runs` times; the median time and the last result.
pub fn median(runs: usize, mut f: impl FnMut() -> usize) -> (std::time::Duration, usize) {
    let mut times = Vec::new();
    let mut n = 0;
    for _ in 0..runs.max(1) {
        let t = std::time::Instant::now();
        n = f();
        times.push(t.elapsed());
    }
    times.sort();
    (times[times.len() / 2], n)
}
