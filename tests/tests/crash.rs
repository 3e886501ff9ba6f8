//! Nothing lost, nothing doubled: a laptop streams captures while the
//! console is killed with SIGKILL and restarted. Every capture acked before
//! the kill must be in the database after it; after the laptop resends what
//! was not acked, every capture is stored exactly once.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use protocol::Capture;
use tests::laptop::deliver;
use tests::*;
use tokio::time::{Instant, timeout};

const CAPTURES: usize = 400;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn captures_survive_a_console_killed_mid_stream() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut console = ConsoleProcess::start(&data).unwrap();
    let identity = identity_from_ca(&data).unwrap();
    let captures: Vec<Capture> = (0..CAPTURES)
        .map(|i| capture("i want to kms", "kms", Some(fake_png(30, i as u64))))
        .collect();
    let ids: Vec<uuid::Uuid> = captures.iter().map(|c| c.id).collect();
    let address = Arc::new(Mutex::new(console.agent_addr.clone()));
    let acked = Arc::new(Mutex::new(HashSet::new()));
    let client = tokio::spawn(deliver(identity, captures, address.clone(), acked.clone()));

    // Kill it once a quarter of the captures are acked.
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked.lock().unwrap().len() < CAPTURES / 4 {
        assert!(
            Instant::now() < deadline,
            "too slow: {}",
            console.log_text()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let killed = tokio::task::spawn_blocking(move || {
        console.kill();
        console
    })
    .await
    .unwrap();
    let acked_before_kill: Vec<uuid::Uuid> = acked.lock().unwrap().iter().copied().collect();
    assert!(
        acked_before_kill.len() < CAPTURES,
        "the kill came too late to test anything"
    );
    // Everything acked before the kill is durable.
    assert_eq!(
        count_stored(&data, &acked_before_kill).unwrap(),
        (0, 0),
        "an acked capture is missing after SIGKILL"
    );
    drop(killed);

    // Restart on the same data; the laptop finds it and resends.
    let console = ConsoleProcess::start(&data).unwrap();
    *address.lock().unwrap() = console.agent_addr.clone();
    let reconnects = timeout(Duration::from_secs(120), client)
        .await
        .expect("delivered within 120 s")
        .unwrap()
        .unwrap();
    assert!(reconnects >= 2, "the laptop had to reconnect");

    let (missing, doubled) = count_stored(&data, &ids).unwrap();
    assert_eq!((missing, doubled), (0, 0));
    let rows: i64 = open_db(&data)
        .unwrap()
        .query_row("SELECT COUNT(*) FROM captures", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows as usize, CAPTURES, "no extra rows");
    // Every row's screenshot is on disk and whole.
    let conn = open_db(&data).unwrap();
    let mut stmt = conn.prepare("SELECT image FROM captures").unwrap();
    let keys: Vec<String> = stmt
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    for key in keys {
        let bytes = std::fs::read(data.join("images").join(&key)).unwrap();
        assert_eq!(bytes.len(), 30 * 1024, "{key}");
    }
}
