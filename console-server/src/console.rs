//! The running console: both listeners, the ingest writer, and the
//! housekeeping loops (revocations and policy picked up from the database,
//! offline alerts, retention), wired together and shut down in order.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use protocol::UnixMillis;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use crate::agent_listener::{self, Revoked};
use crate::api::{self, ApiState};
use crate::data_dir::DataDir;
use crate::https::TlsListener;
use crate::ingest;
use crate::storage_health::StorageHealth;
use crate::store::Store;
use crate::store::jobs::JobGate;
use crate::web::{self, WebState};

/// How often revocations and policy changes made by another process (the
/// CLI) are picked up.
const REFRESH: Duration = Duration::from_secs(2);
/// How often devices are checked for silence.
const PRESENCE_EVERY: Duration = Duration::from_secs(30);
/// How often retention runs.
const RETENTION_EVERY: Duration = Duration::from_secs(3600);
/// How long shutdown waits for open agent connections to finish.
const DRAIN: Duration = Duration::from_secs(10);

/// Where to listen, overriding the settings file.
#[derive(Debug, Clone, Default)]
pub struct Listen {
    pub agent: Option<SocketAddr>,
    pub web: Option<SocketAddr>,
}

/// A console that is running.
pub struct Console {
    pub agent_addr: SocketAddr,
    pub web_addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    writer: Option<std::thread::JoinHandle<()>>,
    /// What the other instances sharing the database store, announced here
    /// (PostgreSQL only).
    _live_listener: Option<crate::store::live::Listener>,
    /// This instance's leases on the shared jobs, given up at shutdown.
    jobs: JobGate,
}

/// Why the console could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(
        "cannot listen for {what} on {addr}: {source}; is another console running, or is the port taken?"
    )]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Tls(#[from] protocol::ProtocolError),
    #[error("{0}")]
    WebCertificate(String),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

impl Console {
    /// Starts everything. Returns once both listeners are bound.
    ///
    /// # Errors
    /// If a listener cannot be bound or the TLS setup fails.
    pub async fn start(dir: &DataDir, listen: Listen) -> Result<Console, StartError> {
        let settings = dir.settings.clone();
        // Checked when the settings were read.
        if let Ok(tz) = crate::school_week::parse_zone(&settings.time_zone) {
            crate::school_week::set_zone(tz);
        }
        let store: Arc<dyn Store> = dir.store.clone();
        // The weekly report's totals are counted in the school's zone; a
        // first start, or a new zone, counts them from the hourly totals.
        let zone = crate::school_week::zone();
        if store.ensure_week_totals(&zone)? {
            tracing::info!(
                zone = %crate::store::week_totals::zone_name(&zone),
                "counted the weekly report's totals in the school's zone"
            );
        }
        let (shutdown, shutdown_rx) = watch::channel(false);

        let revoked = Revoked::default();
        revoked.replace(store.revoked_devices()?);
        let policy = Arc::new(crate::policy::ensure_aup(store.as_ref())?);
        let (policy_tx, policy_rx) = watch::channel(policy);
        let (layers_tx, layers_rx) = watch::channel(store.layers_version()?);

        let agent_addr = listen.agent.unwrap_or(settings.agent_listen);
        let agent_tcp = TcpListener::bind(agent_addr)
            .await
            .map_err(|source| StartError::Bind {
                what: "agents",
                addr: agent_addr,
                source,
            })?;
        let web_addr = listen.web.unwrap_or(settings.web_listen);
        let web_tcp = TcpListener::bind(web_addr)
            .await
            .map_err(|source| StartError::Bind {
                what: "the web console",
                addr: web_addr,
                source,
            })?;
        let agent_addr = agent_tcp
            .local_addr()
            .expect("a bound socket has an address");
        let web_addr = web_tcp.local_addr().expect("a bound socket has an address");

        let (live, _) = tokio::sync::broadcast::channel(1024);
        let live_listener = store.listen_live(live.clone());
        // The shared jobs, each run by one instance of those on the store.
        let jobs = JobGate::new(
            store.clone(),
            format!("{}/{}", crate::data_dir::hostname(), uuid::Uuid::now_v7()),
        );
        let health = Arc::new(StorageHealth::new(&dir.path));
        let (ingest, writer) = ingest::start(store.clone(), 4096, live.clone(), health.clone());
        let agent_tls = protocol::tls::server_config_devices(
            dir.authority.cert_pem(),
            &dir.server.cert_pem,
            dir.server.key_pem.expose(),
            revoked.gate(),
        )?;
        let limits = settings.limits.clone();
        let ctx = Arc::new(agent_listener::Context {
            acceptor: TlsAcceptor::from(agent_tls),
            store: store.clone(),
            authority: dir.authority.clone(),
            ingest,
            policy: policy_rx,
            layers: layers_rx,
            layers_cache: Arc::default(),
            revoked: revoked.clone(),
            connections: Arc::new(Semaphore::new(limits.max_connections as usize)),
            // A semaphore holds at most MAX_PERMITS; a larger budget is
            // capped rather than panicking at start.
            budget: Arc::new(Semaphore::new(
                usize::try_from(limits.memory_budget_bytes)
                    .unwrap_or(usize::MAX)
                    .min(Semaphore::MAX_PERMITS),
            )),
            limits,
            shutdown: shutdown_rx.clone(),
        });
        let mut tasks = Vec::new();
        tasks.push(tokio::spawn(agent_listener::run(agent_tcp, ctx, DRAIN)));

        let web_cert = crate::web_certificate::choose(
            &settings.web_certificate,
            &dir.server,
            UnixMillis::now(),
        )
        .map_err(StartError::WebCertificate)?;
        tracing::info!("web certificate: {}", web_cert.source);
        // HTTP/2 where the browser offers it: every console tab holds a live
        // stream open, and over HTTP/1.1 a browser opens at most six
        // connections to one host, so a seventh tab would never load.
        let mut web_tls = (*web_cert.config).clone();
        web_tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let web_tls = Arc::new(web_tls);
        let web = TlsListener::new(web_tcp, TlsAcceptor::from(web_tls));
        let offline_after_ms = i64::from(settings.offline_after_minutes) * 60_000;
        let editor = Arc::new(crate::policy_service::PolicyEditor::new(
            store.clone(),
            policy_tx.clone(),
        ));
        let api = api::router(Arc::new(ApiState {
            store: store.clone(),
            policy: policy_tx.clone(),
            editor: editor.clone(),
            offline_after_ms,
            health: health.clone(),
            token_uses: api::TokenUses::default(),
        }));
        let rule_book = crate::alerts::rule_book::RuleBook {
            file: settings.alerts.clone(),
            // Checked when the settings were read.
            hours: settings.school_hours.parse().unwrap_or_default(),
            smtp_ready: !settings.report.smtp.host.is_empty()
                && !settings.report.smtp.from.is_empty(),
        };
        for warning in rule_book.apply(&store)? {
            tracing::warn!("{warning}");
        }
        let mut web_state = WebState::new(
            store.clone(),
            live.clone(),
            offline_after_ms,
            crate::enrollment::default_address(&settings, agent_addr.port()),
            dir.ca_fingerprint(),
            health.clone(),
            editor,
        );
        web_state.rule_book = rule_book;
        let web_state = Arc::new(web_state);
        let definitions: crate::alerts::sender::Definitions = {
            let web_state = web_state.clone();
            Arc::new(move |category: &str, term: &str| {
                web_state
                    .definitions()
                    .definition(category, term)
                    .map(str::to_owned)
            })
        };
        let link_base = if settings.console_url.is_empty() {
            format!(
                "https://{}:{}",
                crate::data_dir::hostname(),
                web_addr.port()
            )
        } else {
            settings.console_url.trim_end_matches('/').to_owned()
        };
        let alerts = Arc::new(crate::alerts::sender::Sender::new(
            store.clone(),
            settings.report.smtp.clone(),
            link_base,
            definitions,
            web_state.alert_health.clone(),
        ));
        let app = api
            .merge(web::router(web_state))
            .fallback(not_found)
            .layer(axum::middleware::from_fn(web::security_headers))
            .layer(axum::middleware::from_fn_with_state(
                crate::client_address::TrustedProxies(Arc::new(settings.trusted_proxies.clone())),
                crate::client_address::real_client,
            ));
        tasks.push(tokio::spawn(crate::https::serve(
            web,
            app,
            shutdown_rx.clone(),
        )));

        tasks.push(tokio::spawn(refresh(
            store.clone(),
            revoked,
            (policy_tx.clone(), layers_tx),
            shutdown_rx.clone(),
        )));
        let alert_wakes = live.subscribe();
        let offline_after = Duration::from_secs(u64::from(settings.offline_after_minutes) * 60);
        tasks.push(tokio::spawn(presence(
            store.clone(),
            jobs.clone(),
            Presence {
                offline_after,
                silent_after: Duration::from_secs(u64::from(settings.silent_after_seconds)),
                started: UnixMillis::now(),
                live,
            },
            shutdown_rx.clone(),
        )));
        tasks.push(tokio::spawn(crate::weekly_mail::run(
            store.clone(),
            jobs.clone(),
            dir.path.join("reports"),
            settings.report.clone(),
            shutdown_rx.clone(),
        )));
        tasks.push(tokio::spawn(crate::alerts::sender::run(
            alerts,
            jobs.clone(),
            alert_wakes,
            shutdown_rx.clone(),
        )));
        tasks.push(tokio::spawn(crate::storage_health::watch_space(
            health,
            shutdown_rx.clone(),
        )));
        tasks.push(tokio::spawn(retention(
            store.clone(),
            jobs.clone(),
            settings.retention,
            shutdown_rx,
        )));
        tracing::info!(
            "console listening: agents on {agent_addr}, web console and API on https://{web_addr}"
        );
        Ok(Console {
            agent_addr,
            web_addr,
            shutdown,
            tasks,
            writer: Some(writer),
            _live_listener: live_listener,
            jobs,
        })
    }

    /// Stops accepting, lets open agent connections finish what they sent
    /// (stored and acked), then stops the writer once its queue is empty.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
        if let Some(writer) = self.writer.take() {
            let _ = tokio::task::spawn_blocking(move || writer.join()).await;
        }
        let jobs = self.jobs.clone();
        let _ = tokio::task::spawn_blocking(move || jobs.release()).await;
        tracing::info!("console stopped");
    }
}

/// JSON for the API's addresses, a page for the rest.
async fn not_found(uri: axum::http::Uri) -> axum::response::Response {
    use axum::response::IntoResponse;
    if uri.path().starts_with("/api/") {
        api::ApiError::NotFound("no such endpoint".into()).into_response()
    } else {
        web::layout::WebError::NotFound(format!("there is no page {}", uri.path())).into_response()
    }
}

/// Picks up revocations and policy versions written by other processes.
async fn refresh(
    store: Arc<dyn Store>,
    revoked: Revoked,
    (policy, layers): (watch::Sender<Arc<protocol::Policy>>, watch::Sender<u64>),
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = shutdown.wait_for(|s| *s) => return,
            _ = tokio::time::sleep(REFRESH) => {}
        }
        let s = store.clone();
        let read = tokio::task::spawn_blocking(move || {
            Ok::<_, crate::store::StoreError>((
                s.revoked_devices()?,
                s.policy()?,
                s.layers_version()?,
            ))
        })
        .await;
        match read {
            Ok(Ok((set, current, layers_version))) => {
                revoked.replace(set);
                if layers_version != *layers.borrow() {
                    tracing::info!("policy layers version {layers_version} is now in force");
                    layers.send_replace(layers_version);
                }
                if current.version != policy.borrow().version {
                    tracing::info!("policy version {} is now in force", current.version);
                    policy.send_replace(Arc::new(current));
                }
            }
            Ok(Err(e)) => tracing::error!("reading revocations and policy failed: {e}"),
            Err(e) => tracing::error!("reading revocations and policy failed: {e}"),
        }
    }
}

/// What the presence check needs.
struct Presence {
    /// A device not heard from for this long is offline.
    offline_after: Duration,
    /// A device monitoring a logged-in session and not heard from for this
    /// long is silent (a tamper event).
    silent_after: Duration,
    /// When this console started: devices silent since before then are
    /// not judged silent.
    started: UnixMillis,
    /// Where a new tamper event is announced to open inboxes.
    live: tokio::sync::broadcast::Sender<ingest::Live>,
}

/// Raises an event when a device goes quiet for `offline_after`, and when
/// it comes back; a tamper event when a device monitoring a logged-in
/// session goes quiet for `silent_after`, closed with the gap's length
/// when it is heard again.
async fn presence(
    store: Arc<dyn Store>,
    jobs: JobGate,
    p: Presence,
    mut shutdown: watch::Receiver<bool>,
) {
    let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
    let (offline_ms, silent_ms) = (ms(p.offline_after), ms(p.silent_after));
    // Checked often enough that a silent device is found within a third of
    // `silent_after` of its deadline.
    let every = PRESENCE_EVERY
        .min(p.offline_after)
        .min(p.silent_after / 3)
        .max(Duration::from_secs(1));
    let announced = store.announces_live();
    loop {
        let s = store.clone();
        let started = p.started;
        let gate = jobs.clone();
        let lease = (every * 3).max(Duration::from_secs(30));
        let checked = tokio::task::spawn_blocking(move || {
            // One instance of those sharing the store checks for all.
            if !gate.may_run("presence", lease) {
                return Ok((Vec::new(), Vec::new()));
            }
            let now = UnixMillis::now();
            let events = s.update_presence(UnixMillis(now.0.saturating_sub(offline_ms)), now)?;
            // Until the console has run for `silent_after`, a laptop that
            // was talking to it before it started may not have reconnected.
            let silent = if now.0.saturating_sub(started.0) >= silent_ms {
                s.update_silence(
                    UnixMillis(now.0.saturating_sub(silent_ms)),
                    UnixMillis(started.0.saturating_sub(silent_ms)),
                    now,
                )?
            } else {
                Vec::new()
            };
            Ok::<_, crate::store::StoreError>((events, silent))
        })
        .await;
        match checked {
            Ok(Ok((events, silent))) => {
                for e in events {
                    tracing::warn!("{}: {}", e.kind, e.detail);
                }
                for id in silent {
                    tracing::warn!(
                        "a device went silent while a user was logged in (tamper event {id})"
                    );
                    // On PostgreSQL the store announced it to every instance.
                    if !announced {
                        let _ = p.live.send(ingest::Live::Tamper(id));
                    }
                }
            }
            Ok(Err(e)) => tracing::error!("checking device presence failed: {e}"),
            Err(e) => tracing::error!("checking device presence failed: {e}"),
        }
        tokio::select! {
            _ = shutdown.wait_for(|s| *s) => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}

/// Deletes expired captures and site visits at start and then hourly.
async fn retention(
    store: Arc<dyn Store>,
    jobs: JobGate,
    rules: crate::store::Retention,
    mut shutdown: watch::Receiver<bool>,
) {
    // One instance of those sharing the store applies retention for all;
    // the lease outlasts the hour between rounds.
    let lease = RETENTION_EVERY * 2;
    let gate = jobs.clone();
    let mine = tokio::task::spawn_blocking(move || gate.may_run("retention", lease))
        .await
        .unwrap_or(false);
    // Screenshot files no capture names (a stop between deleting a row and
    // its file): swept once at start. Only files an hour old, so an image
    // written just before its row commits is never taken.
    let s = store.clone();
    let swept = tokio::task::spawn_blocking(move || {
        if !mine {
            return Ok(0);
        }
        let before = std::time::SystemTime::now() - Duration::from_secs(3600);
        s.sweep_images(before, UnixMillis::now())
    })
    .await;
    match swept {
        Ok(Ok(0)) => {}
        Ok(Ok(n)) => tracing::info!("removed {n} screenshot files no capture names"),
        Ok(Err(e)) => tracing::error!("sweeping screenshot files failed: {e}"),
        Err(e) => tracing::error!("sweeping screenshot files failed: {e}"),
    }
    loop {
        let gate = jobs.clone();
        if !tokio::task::spawn_blocking(move || gate.may_run("retention", lease))
            .await
            .unwrap_or(false)
        {
            tokio::select! {
                _ = shutdown.wait_for(|s| *s) => return,
                _ = tokio::time::sleep(RETENTION_EVERY) => {}
            }
            continue;
        }
        let s = store.clone();
        match tokio::task::spawn_blocking(move || s.expire_records(&rules, UnixMillis::now())).await
        {
            Ok(Ok(done)) => {
                for (what, n) in done {
                    tracing::info!("retention deleted {n} {what}");
                }
            }
            Ok(Err(e)) => tracing::error!("retention failed: {e}"),
            Err(e) => tracing::error!("retention failed: {e}"),
        }
        let s = store.clone();
        match tokio::task::spawn_blocking(move || s.expire(&rules, UnixMillis::now())).await {
            Ok(Ok(deleted)) if !deleted.is_empty() => {
                tracing::info!("retention deleted {} captures", deleted.len());
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::error!("retention failed: {e}"),
            Err(e) => tracing::error!("retention failed: {e}"),
        }
        if let Some(days) = rules.visit_days {
            let s = store.clone();
            let cutoff = UnixMillis::now().days_before(days);
            match tokio::task::spawn_blocking(move || s.expire_visits(cutoff)).await {
                Ok(Ok(0)) => {}
                Ok(Ok(n)) => tracing::info!("retention deleted {n} site-visit rows"),
                Ok(Err(e)) => tracing::error!("site-visit retention failed: {e}"),
                Err(e) => tracing::error!("site-visit retention failed: {e}"),
            }
        }
        tokio::select! {
            _ = shutdown.wait_for(|s| *s) => return,
            _ = tokio::time::sleep(RETENTION_EVERY) => {}
        }
    }
}
