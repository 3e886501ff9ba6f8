//! The database schema, as numbered migrations. `PRAGMA user_version` holds
//! the number of the last one applied; each runs in its own transaction, so
//! a crash mid-upgrade leaves the previous version intact. Migrations are
//! only ever appended.

/// Migration `n` is `MIGRATIONS[n - 1]`.
pub const MIGRATIONS: &[&str] = &[
    // 1: the first schema.
    r#"
CREATE TABLE devices (
    id            TEXT PRIMARY KEY,
    hostname      TEXT NOT NULL DEFAULT '',
    os            TEXT NOT NULL DEFAULT '',
    agent_version TEXT NOT NULL DEFAULT '',
    user          TEXT,
    enrolled      INTEGER,
    first_seen    INTEGER NOT NULL,
    last_seen     INTEGER,
    online        INTEGER NOT NULL DEFAULT 0,
    revoked       INTEGER,
    revoked_reason TEXT,
    heartbeat     TEXT
) STRICT;

CREATE TABLE captures (
    id            TEXT PRIMARY KEY,
    device        TEXT NOT NULL,
    time          INTEGER NOT NULL,
    received      INTEGER NOT NULL,
    user          TEXT NOT NULL,
    source        TEXT NOT NULL,
    app           TEXT NOT NULL,
    window_title  TEXT NOT NULL,
    url           TEXT,
    term          TEXT NOT NULL,
    category      TEXT NOT NULL,
    severity      INTEGER NOT NULL,
    context       TEXT NOT NULL,
    match_start   INTEGER NOT NULL,
    match_end     INTEGER NOT NULL,
    image         TEXT,
    image_missing TEXT,
    status        TEXT NOT NULL DEFAULT 'new',
    status_time   INTEGER
) STRICT;
CREATE INDEX captures_by_status ON captures (status, id);
CREATE INDEX captures_by_device ON captures (device, id);

CREATE TABLE triage (
    seq      INTEGER PRIMARY KEY,
    capture  TEXT NOT NULL,
    time     INTEGER NOT NULL,
    actor    TEXT NOT NULL,
    status   TEXT NOT NULL,
    note     TEXT NOT NULL,
    action   TEXT
) STRICT;
CREATE INDEX triage_by_capture ON triage (capture, seq);

CREATE TABLE visit_batches (
    id       TEXT PRIMARY KEY,
    device   TEXT NOT NULL,
    received INTEGER NOT NULL
) STRICT;

CREATE TABLE site_visits (
    batch          TEXT NOT NULL,
    device         TEXT NOT NULL,
    user           TEXT NOT NULL,
    browser        TEXT NOT NULL,
    url            TEXT NOT NULL,
    domain         TEXT NOT NULL,
    title          TEXT NOT NULL,
    start          INTEGER NOT NULL,
    end            INTEGER NOT NULL,
    active_seconds INTEGER NOT NULL,
    visits         INTEGER NOT NULL
) STRICT;
CREATE INDEX site_visits_by_start ON site_visits (start);

CREATE TABLE aup_decisions (
    id       TEXT PRIMARY KEY,
    device   TEXT NOT NULL,
    time     INTEGER NOT NULL,
    user     TEXT NOT NULL,
    audience TEXT NOT NULL,
    version  INTEGER NOT NULL,
    decision TEXT NOT NULL
) STRICT;

CREATE TABLE concerns (
    id            TEXT PRIMARY KEY,
    device        TEXT NOT NULL,
    time          INTEGER NOT NULL,
    user          TEXT NOT NULL,
    text          TEXT NOT NULL,
    app           TEXT NOT NULL,
    window_title  TEXT NOT NULL,
    url           TEXT,
    page_title    TEXT,
    image         TEXT,
    image_missing TEXT,
    status        TEXT NOT NULL DEFAULT 'new'
) STRICT;

CREATE TABLE tamper_events (
    id     TEXT PRIMARY KEY,
    device TEXT NOT NULL,
    time   INTEGER NOT NULL,
    user   TEXT,
    kind   TEXT NOT NULL,
    detail TEXT NOT NULL
) STRICT;

CREATE TABLE events (
    id     INTEGER PRIMARY KEY,
    time   INTEGER NOT NULL,
    kind   TEXT NOT NULL,
    device TEXT,
    detail TEXT NOT NULL
) STRICT;

CREATE TABLE audit (
    seq    INTEGER PRIMARY KEY,
    time   INTEGER NOT NULL,
    actor  TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    detail TEXT NOT NULL,
    origin TEXT NOT NULL
) STRICT;
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;

CREATE TABLE users (
    name          TEXT PRIMARY KEY,
    role          TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created       INTEGER NOT NULL,
    disabled      INTEGER
) STRICT;

CREATE TABLE api_tokens (
    hash    TEXT PRIMARY KEY,
    name    TEXT NOT NULL,
    role    TEXT NOT NULL,
    created INTEGER NOT NULL,
    revoked INTEGER
) STRICT;

CREATE TABLE enroll_tokens (
    hash    TEXT PRIMARY KEY,
    created INTEGER NOT NULL,
    expires INTEGER NOT NULL,
    used    INTEGER,
    device  TEXT
) STRICT;

CREATE TABLE policies (
    version INTEGER PRIMARY KEY,
    created INTEGER NOT NULL,
    body    TEXT NOT NULL
) STRICT;
"#,
    // 2: the web console: login sessions, and indexes for the inbox filters
    // and the audit log's.
    r#"
CREATE TABLE web_sessions (
    id_hash   TEXT PRIMARY KEY,
    user      TEXT NOT NULL,
    csrf      TEXT NOT NULL,
    created   INTEGER NOT NULL,
    last_seen INTEGER NOT NULL,
    origin    TEXT NOT NULL,
    agent     TEXT NOT NULL
) STRICT;
CREATE INDEX web_sessions_by_user ON web_sessions (user);
CREATE INDEX captures_by_user ON captures (user, id);
CREATE INDEX captures_by_category ON captures (category, id);
CREATE INDEX captures_by_time ON captures (time);
CREATE INDEX audit_by_actor ON audit (actor, seq);
"#,
    // 3: the weekly site-visit report: hourly totals kept at ingest (the
    // report reads them, not every visit row), the first sighting of each
    // domain, the school's imported domain lists, sign-offs and the
    // reports made on schedule.
    r#"
CREATE TABLE visit_hours (
    hour           INTEGER NOT NULL,
    domain         TEXT NOT NULL,
    user           TEXT NOT NULL,
    device         TEXT NOT NULL,
    visits         INTEGER NOT NULL,
    active_seconds INTEGER NOT NULL,
    first          INTEGER NOT NULL,
    last           INTEGER NOT NULL,
    PRIMARY KEY (hour, domain, user, device)
) STRICT, WITHOUT ROWID;
INSERT INTO visit_hours
    SELECT start / 3600000, domain, user, device, SUM(visits), SUM(active_seconds), MIN(start), MAX(end)
    FROM site_visits GROUP BY start / 3600000, domain, user, device;

CREATE TABLE domains_seen (
    domain     TEXT PRIMARY KEY,
    first_seen INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
INSERT INTO domains_seen SELECT domain, MIN(start) FROM site_visits GROUP BY domain;

CREATE INDEX visit_batches_by_received ON visit_batches (received);

CREATE TABLE domain_lists (
    category   TEXT PRIMARY KEY,
    severity   INTEGER NOT NULL,
    definition TEXT NOT NULL,
    imported   INTEGER NOT NULL,
    source     TEXT NOT NULL
) STRICT;
CREATE TABLE domain_categories (
    domain   TEXT NOT NULL,
    category TEXT NOT NULL REFERENCES domain_lists (category) ON DELETE CASCADE,
    PRIMARY KEY (domain, category)
) STRICT, WITHOUT ROWID;

CREATE TABLE week_signoffs (
    week  TEXT PRIMARY KEY,
    staff TEXT NOT NULL,
    time  INTEGER NOT NULL,
    notes TEXT NOT NULL
) STRICT;

CREATE TABLE weekly_reports (
    week        TEXT PRIMARY KEY,
    generated   INTEGER NOT NULL,
    emailed     INTEGER,
    email_error TEXT
) STRICT;
"#,
    // 4: the AUP's published versions, the register of users (everyone
    // seen on a laptop, and the school's MIS import), and pupils' concerns
    // as captures of source `concern` (one inbox, one triage).
    r#"
CREATE TABLE aup_versions (
    audience  TEXT NOT NULL,
    version   INTEGER NOT NULL,
    markdown  TEXT NOT NULL,
    published INTEGER NOT NULL,
    staff     TEXT NOT NULL,
    PRIMARY KEY (audience, version)
) STRICT;
CREATE INDEX aup_decisions_by_user ON aup_decisions (user, time);

CREATE TABLE accounts (
    account    TEXT PRIMARY KEY,
    name       TEXT,
    year_group TEXT,
    role       TEXT,
    imported   INTEGER,
    first_seen INTEGER,
    last_seen  INTEGER
) STRICT;
CREATE TABLE account_devices (
    account    TEXT NOT NULL,
    device     TEXT NOT NULL,
    first_seen INTEGER NOT NULL,
    last_seen  INTEGER NOT NULL,
    PRIMARY KEY (account, device)
) STRICT, WITHOUT ROWID;
INSERT INTO account_devices
    SELECT user, device, MIN(time), MAX(time) FROM (
        SELECT user, device, time FROM captures
        UNION ALL SELECT user, device, time FROM aup_decisions
        UNION ALL SELECT user, device, time FROM concerns
        UNION ALL SELECT user, device, first FROM visit_hours
    ) WHERE user != '' GROUP BY user, device;
INSERT INTO accounts (account, first_seen, last_seen)
    SELECT account, MIN(first_seen), MAX(last_seen) FROM account_devices GROUP BY account;

INSERT OR IGNORE INTO captures (id, device, time, received, user, source, app, window_title,
        url, term, category, severity, context, match_start, match_end, image, image_missing,
        status)
    SELECT id, device, time, time, user, 'concern', app, window_title,
        url, 'Report a concern', 'concern', 5, text, 0, 0, image, image_missing, status
    FROM concerns;
DROP TABLE concerns;
"#,
    // 5: tamper events can be acknowledged by staff, and are listed by time.
    r#"
ALTER TABLE tamper_events ADD COLUMN ack_by TEXT;
ALTER TABLE tamper_events ADD COLUMN ack_time INTEGER;
ALTER TABLE tamper_events ADD COLUMN ack_note TEXT;
CREATE INDEX tamper_events_by_time ON tamper_events (time);
"#,
    // 6: what monitors each laptop's sessions (the agent's latest health).
    r#"
ALTER TABLE devices ADD COLUMN health TEXT;
"#,
    // 7: a laptop gone silent while a user was logged in (the gap's start
    // and the tamper event that reports it, while open).
    r#"
ALTER TABLE devices ADD COLUMN silent_since INTEGER;
ALTER TABLE devices ADD COLUMN silent_event TEXT;
"#,
    // 8: exceptions suggested in triage, waiting for an admin.
    r#"
CREATE TABLE exception_suggestions (
    id           INTEGER PRIMARY KEY,
    time         INTEGER NOT NULL,
    category     TEXT NOT NULL,
    phrase       TEXT NOT NULL,
    suggested_by TEXT NOT NULL,
    capture      TEXT,
    status       TEXT NOT NULL,
    decided_by   TEXT,
    decided_time INTEGER
) STRICT;
CREATE INDEX exception_suggestions_by_status ON exception_suggestions (status, id);
"#,
    // 9: API tokens get an owner, an expiry (a year for those made before)
    // and a last use; enrollment tokens can be revoked.
    r#"
ALTER TABLE api_tokens ADD COLUMN owner TEXT;
ALTER TABLE api_tokens ADD COLUMN expires INTEGER NOT NULL DEFAULT 0;
ALTER TABLE api_tokens ADD COLUMN last_used INTEGER;
UPDATE api_tokens SET expires = created + 365 * 86400000;
ALTER TABLE enroll_tokens ADD COLUMN revoked INTEGER;
"#,
    // 10: the weekly report's totals per school week, kept at ingest (see
    // `store::week_totals`); empty here, counted from `visit_hours` at the
    // first start, once the school's zone is known (`week_zone` empty).
    r#"
CREATE TABLE week_pairs (
    week           TEXT NOT NULL,
    domain         TEXT NOT NULL,
    user           TEXT NOT NULL,
    visits         INTEGER NOT NULL,
    active_seconds INTEGER NOT NULL,
    first          INTEGER NOT NULL,
    last           INTEGER NOT NULL,
    PRIMARY KEY (week, domain, user)
) STRICT, WITHOUT ROWID;
CREATE TABLE week_domains (
    week           TEXT NOT NULL,
    domain         TEXT NOT NULL,
    visits         INTEGER NOT NULL,
    active_seconds INTEGER NOT NULL,
    users          INTEGER NOT NULL,
    PRIMARY KEY (week, domain)
) STRICT, WITHOUT ROWID;
CREATE TABLE week_users (
    week           TEXT NOT NULL,
    user           TEXT NOT NULL,
    visits         INTEGER NOT NULL,
    active_seconds INTEGER NOT NULL,
    sites          INTEGER NOT NULL,
    PRIMARY KEY (week, user)
) STRICT, WITHOUT ROWID;
CREATE TABLE week_device_users (
    week   TEXT NOT NULL,
    device TEXT NOT NULL,
    user   TEXT NOT NULL,
    PRIMARY KEY (week, device, user)
) STRICT, WITHOUT ROWID;
CREATE TABLE week_devices (
    week           TEXT NOT NULL,
    device         TEXT NOT NULL,
    visits         INTEGER NOT NULL,
    active_seconds INTEGER NOT NULL,
    users          INTEGER NOT NULL,
    PRIMARY KEY (week, device)
) STRICT, WITHOUT ROWID;
CREATE TABLE week_zone (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    zone TEXT NOT NULL
) STRICT;
"#,
    // 11: alerts to send, written in the transaction of the record that
    // raised them, and what became of each (see `store::alerts`).
    r#"
CREATE TABLE alerts (
    id           INTEGER PRIMARY KEY,
    rule         TEXT NOT NULL,
    event        TEXT NOT NULL,
    record       TEXT NOT NULL,
    channel      TEXT NOT NULL,
    target       TEXT NOT NULL,
    status       TEXT NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    next_attempt INTEGER NOT NULL,
    last_error   TEXT,
    created      INTEGER NOT NULL,
    sent         INTEGER,
    UNIQUE (rule, event, record, channel, target)
) STRICT;
CREATE INDEX alerts_due ON alerts (status, next_attempt);
"#,
    // 12: alerts held for school hours (sent as one digest when they
    // begin), and the alert rules made on the Settings page.
    r#"
ALTER TABLE alerts ADD COLUMN held_until INTEGER;
CREATE TABLE alert_rules (
    name       TEXT PRIMARY KEY,
    rule       TEXT NOT NULL,
    changed    INTEGER NOT NULL,
    changed_by TEXT NOT NULL
) STRICT;
"#,
    // 13: groups of accounts and laptops, and each group's policy layer
    // (`store::groups`); `layers_version` is raised at every change.
    r#"
CREATE TABLE group_members (
    grp    TEXT NOT NULL,
    member TEXT NOT NULL,
    PRIMARY KEY (grp, member)
) STRICT, WITHOUT ROWID;
CREATE INDEX group_members_by_member ON group_members (member);
CREATE TABLE policy_layers (
    grp        TEXT PRIMARY KEY,
    overrides  TEXT NOT NULL,
    changed    INTEGER NOT NULL,
    changed_by TEXT NOT NULL
) STRICT;
CREATE TABLE layers_version (version INTEGER NOT NULL) STRICT;
INSERT INTO layers_version VALUES (0);
"#,
    // 14: reviewers limited to groups (`store::scope`); no rows, the
    // whole school.
    r#"
CREATE TABLE staff_scopes (
    staff TEXT NOT NULL,
    grp   TEXT NOT NULL,
    PRIMARY KEY (staff, grp)
) STRICT, WITHOUT ROWID;
"#,
    // 15: the school's terms, for monitoring hours in term time only
    // (`protocol::layers::Term`: days since 1970-01-01).
    r#"
CREATE TABLE school_terms (
    first INTEGER PRIMARY KEY,
    last  INTEGER NOT NULL
) STRICT;
"#,
    // 16: leases on the work one console instance does for all (the
    // Monday report, retention, alert delivery, presence): see
    // `store::jobs`.
    r#"
CREATE TABLE job_leases (
    job    TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    until  INTEGER NOT NULL
) STRICT;
"#,
    // 17: schools within a trust (`store::schools`). A laptop belongs to
    // the school its enrolment token named, and every record made on it
    // with it; staff, API tokens, the register's accounts and audit lines
    // name their school. NULL everywhere on a console of one school (and
    // for the trust's own staff): nothing changes until a school is added.
    r#"
CREATE TABLE schools (
    id      TEXT PRIMARY KEY,
    name    TEXT NOT NULL,
    created INTEGER NOT NULL
) STRICT;
ALTER TABLE devices ADD COLUMN school TEXT;
ALTER TABLE enroll_tokens ADD COLUMN school TEXT;
ALTER TABLE users ADD COLUMN school TEXT;
ALTER TABLE api_tokens ADD COLUMN school TEXT;
ALTER TABLE accounts ADD COLUMN school TEXT;
ALTER TABLE audit ADD COLUMN school TEXT;
CREATE INDEX devices_by_school ON devices (school);
CREATE INDEX audit_by_school ON audit (school, seq);
"#,
];

/// The same schema for PostgreSQL, as its own numbered migrations (kept
/// in the `schema_version` table). The first is SQLite's first fifteen at
/// once; from then on, a migration appended to [`MIGRATIONS`] gets its
/// PostgreSQL form appended here (PostgreSQL's `n` is SQLite's `n + 14`).
///
/// Differences, all invisible to the SQL the store runs: integers are
/// `BIGINT`, an `INTEGER PRIMARY KEY` is an identity column, bytes are
/// `BYTEA`, the audit log's guard is a trigger function, and the columns
/// `user` and `end` (reserved words in PostgreSQL) are quoted here and by
/// [`super::sql`] in every statement. Screenshots live in the `images`
/// table (see [`super::images`]), so that every console instance sees them.
pub const POSTGRES_MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE devices (
    id            TEXT PRIMARY KEY,
    hostname      TEXT NOT NULL DEFAULT '',
    os            TEXT NOT NULL DEFAULT '',
    agent_version TEXT NOT NULL DEFAULT '',
    "user"        TEXT,
    enrolled      BIGINT,
    first_seen    BIGINT NOT NULL,
    last_seen     BIGINT,
    online        BIGINT NOT NULL DEFAULT 0,
    revoked       BIGINT,
    revoked_reason TEXT,
    heartbeat     TEXT,
    health        TEXT,
    silent_since  BIGINT,
    silent_event  TEXT
);

CREATE TABLE captures (
    id            TEXT PRIMARY KEY,
    device        TEXT NOT NULL,
    time          BIGINT NOT NULL,
    received      BIGINT NOT NULL,
    "user"        TEXT NOT NULL,
    source        TEXT NOT NULL,
    app           TEXT NOT NULL,
    window_title  TEXT NOT NULL,
    url           TEXT,
    term          TEXT NOT NULL,
    category      TEXT NOT NULL,
    severity      BIGINT NOT NULL,
    context       TEXT NOT NULL,
    match_start   BIGINT NOT NULL,
    match_end     BIGINT NOT NULL,
    image         TEXT,
    image_missing TEXT,
    status        TEXT NOT NULL DEFAULT 'new',
    status_time   BIGINT
);
CREATE INDEX captures_by_status ON captures (status, id);
CREATE INDEX captures_by_device ON captures (device, id);
CREATE INDEX captures_by_user ON captures ("user", id);
CREATE INDEX captures_by_category ON captures (category, id);
CREATE INDEX captures_by_time ON captures (time);

CREATE TABLE triage (
    seq      BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    capture  TEXT NOT NULL,
    time     BIGINT NOT NULL,
    actor    TEXT NOT NULL,
    status   TEXT NOT NULL,
    note     TEXT NOT NULL,
    action   TEXT
);
CREATE INDEX triage_by_capture ON triage (capture, seq);

CREATE TABLE visit_batches (
    id       TEXT PRIMARY KEY,
    device   TEXT NOT NULL,
    received BIGINT NOT NULL
);
CREATE INDEX visit_batches_by_received ON visit_batches (received);

CREATE TABLE site_visits (
    batch          TEXT NOT NULL,
    device         TEXT NOT NULL,
    "user"         TEXT NOT NULL,
    browser        TEXT NOT NULL,
    url            TEXT NOT NULL,
    domain         TEXT NOT NULL,
    title          TEXT NOT NULL,
    start          BIGINT NOT NULL,
    "end"          BIGINT NOT NULL,
    active_seconds BIGINT NOT NULL,
    visits         BIGINT NOT NULL
);
CREATE INDEX site_visits_by_start ON site_visits (start);

CREATE TABLE aup_decisions (
    id       TEXT PRIMARY KEY,
    device   TEXT NOT NULL,
    time     BIGINT NOT NULL,
    "user"   TEXT NOT NULL,
    audience TEXT NOT NULL,
    version  BIGINT NOT NULL,
    decision TEXT NOT NULL
);
CREATE INDEX aup_decisions_by_user ON aup_decisions ("user", time);

CREATE TABLE tamper_events (
    id       TEXT PRIMARY KEY,
    device   TEXT NOT NULL,
    time     BIGINT NOT NULL,
    "user"   TEXT,
    kind     TEXT NOT NULL,
    detail   TEXT NOT NULL,
    ack_by   TEXT,
    ack_time BIGINT,
    ack_note TEXT
);
CREATE INDEX tamper_events_by_time ON tamper_events (time);

CREATE TABLE events (
    id     BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    time   BIGINT NOT NULL,
    kind   TEXT NOT NULL,
    device TEXT,
    detail TEXT NOT NULL
);

CREATE TABLE audit (
    seq    BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    time   BIGINT NOT NULL,
    actor  TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    detail TEXT NOT NULL,
    origin TEXT NOT NULL
);
CREATE INDEX audit_by_actor ON audit (actor, seq);
CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only';
END
$$;
CREATE TRIGGER audit_no_update BEFORE UPDATE OR DELETE ON audit
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();

CREATE TABLE users (
    name          TEXT PRIMARY KEY,
    role          TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created       BIGINT NOT NULL,
    disabled      BIGINT
);

CREATE TABLE api_tokens (
    hash      TEXT PRIMARY KEY,
    name      TEXT NOT NULL,
    role      TEXT NOT NULL,
    created   BIGINT NOT NULL,
    revoked   BIGINT,
    owner     TEXT,
    expires   BIGINT NOT NULL DEFAULT 0,
    last_used BIGINT
);

CREATE TABLE enroll_tokens (
    hash    TEXT PRIMARY KEY,
    created BIGINT NOT NULL,
    expires BIGINT NOT NULL,
    used    BIGINT,
    device  TEXT,
    revoked BIGINT
);

CREATE TABLE policies (
    version BIGINT PRIMARY KEY,
    created BIGINT NOT NULL,
    body    TEXT NOT NULL
);

CREATE TABLE web_sessions (
    id_hash   TEXT PRIMARY KEY,
    "user"    TEXT NOT NULL,
    csrf      TEXT NOT NULL,
    created   BIGINT NOT NULL,
    last_seen BIGINT NOT NULL,
    origin    TEXT NOT NULL,
    agent     TEXT NOT NULL
);
CREATE INDEX web_sessions_by_user ON web_sessions ("user");

CREATE TABLE visit_hours (
    hour           BIGINT NOT NULL,
    domain         TEXT NOT NULL,
    "user"         TEXT NOT NULL,
    device         TEXT NOT NULL,
    visits         BIGINT NOT NULL,
    active_seconds BIGINT NOT NULL,
    first          BIGINT NOT NULL,
    last           BIGINT NOT NULL,
    PRIMARY KEY (hour, domain, "user", device)
);

CREATE TABLE domains_seen (
    domain     TEXT PRIMARY KEY,
    first_seen BIGINT NOT NULL
);

CREATE TABLE domain_lists (
    category   TEXT PRIMARY KEY,
    severity   BIGINT NOT NULL,
    definition TEXT NOT NULL,
    imported   BIGINT NOT NULL,
    source     TEXT NOT NULL
);
CREATE TABLE domain_categories (
    domain   TEXT NOT NULL,
    category TEXT NOT NULL REFERENCES domain_lists (category) ON DELETE CASCADE,
    PRIMARY KEY (domain, category)
);

CREATE TABLE week_signoffs (
    week  TEXT PRIMARY KEY,
    staff TEXT NOT NULL,
    time  BIGINT NOT NULL,
    notes TEXT NOT NULL
);

CREATE TABLE weekly_reports (
    week        TEXT PRIMARY KEY,
    generated   BIGINT NOT NULL,
    emailed     BIGINT,
    email_error TEXT
);

CREATE TABLE aup_versions (
    audience  TEXT NOT NULL,
    version   BIGINT NOT NULL,
    markdown  TEXT NOT NULL,
    published BIGINT NOT NULL,
    staff     TEXT NOT NULL,
    PRIMARY KEY (audience, version)
);

CREATE TABLE accounts (
    account    TEXT PRIMARY KEY,
    name       TEXT,
    year_group TEXT,
    role       TEXT,
    imported   BIGINT,
    first_seen BIGINT,
    last_seen  BIGINT
);
CREATE TABLE account_devices (
    account    TEXT NOT NULL,
    device     TEXT NOT NULL,
    first_seen BIGINT NOT NULL,
    last_seen  BIGINT NOT NULL,
    PRIMARY KEY (account, device)
);

CREATE TABLE exception_suggestions (
    id           BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    time         BIGINT NOT NULL,
    category     TEXT NOT NULL,
    phrase       TEXT NOT NULL,
    suggested_by TEXT NOT NULL,
    capture      TEXT,
    status       TEXT NOT NULL,
    decided_by   TEXT,
    decided_time BIGINT
);
CREATE INDEX exception_suggestions_by_status ON exception_suggestions (status, id);

CREATE TABLE week_pairs (
    week           TEXT NOT NULL,
    domain         TEXT NOT NULL,
    "user"         TEXT NOT NULL,
    visits         BIGINT NOT NULL,
    active_seconds BIGINT NOT NULL,
    first          BIGINT NOT NULL,
    last           BIGINT NOT NULL,
    PRIMARY KEY (week, domain, "user")
);
CREATE TABLE week_domains (
    week           TEXT NOT NULL,
    domain         TEXT NOT NULL,
    visits         BIGINT NOT NULL,
    active_seconds BIGINT NOT NULL,
    users          BIGINT NOT NULL,
    PRIMARY KEY (week, domain)
);
CREATE TABLE week_users (
    week           TEXT NOT NULL,
    "user"         TEXT NOT NULL,
    visits         BIGINT NOT NULL,
    active_seconds BIGINT NOT NULL,
    sites          BIGINT NOT NULL,
    PRIMARY KEY (week, "user")
);
CREATE TABLE week_device_users (
    week   TEXT NOT NULL,
    device TEXT NOT NULL,
    "user" TEXT NOT NULL,
    PRIMARY KEY (week, device, "user")
);
CREATE TABLE week_devices (
    week           TEXT NOT NULL,
    device         TEXT NOT NULL,
    visits         BIGINT NOT NULL,
    active_seconds BIGINT NOT NULL,
    users          BIGINT NOT NULL,
    PRIMARY KEY (week, device)
);
CREATE TABLE week_zone (
    id   BIGINT PRIMARY KEY CHECK (id = 1),
    zone TEXT NOT NULL
);

CREATE TABLE alerts (
    id           BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    rule         TEXT NOT NULL,
    event        TEXT NOT NULL,
    record       TEXT NOT NULL,
    channel      TEXT NOT NULL,
    target       TEXT NOT NULL,
    status       TEXT NOT NULL,
    attempts     BIGINT NOT NULL DEFAULT 0,
    next_attempt BIGINT NOT NULL,
    last_error   TEXT,
    created      BIGINT NOT NULL,
    sent         BIGINT,
    held_until   BIGINT,
    UNIQUE (rule, event, record, channel, target)
);
CREATE INDEX alerts_due ON alerts (status, next_attempt);
CREATE TABLE alert_rules (
    name       TEXT PRIMARY KEY,
    rule       TEXT NOT NULL,
    changed    BIGINT NOT NULL,
    changed_by TEXT NOT NULL
);

CREATE TABLE group_members (
    grp    TEXT NOT NULL,
    member TEXT NOT NULL,
    PRIMARY KEY (grp, member)
);
CREATE INDEX group_members_by_member ON group_members (member);
CREATE TABLE policy_layers (
    grp        TEXT PRIMARY KEY,
    overrides  TEXT NOT NULL,
    changed    BIGINT NOT NULL,
    changed_by TEXT NOT NULL
);
CREATE TABLE layers_version (version BIGINT NOT NULL);
INSERT INTO layers_version VALUES (0);

CREATE TABLE staff_scopes (
    staff TEXT NOT NULL,
    grp   TEXT NOT NULL,
    PRIMARY KEY (staff, grp)
);

CREATE TABLE school_terms (
    first BIGINT PRIMARY KEY,
    last  BIGINT NOT NULL
);

-- Screenshots, so that every console instance sees every one; written
-- and committed before the row that names them.
CREATE TABLE images (
    key     TEXT PRIMARY KEY,
    written BIGINT NOT NULL,
    bytes   BYTEA NOT NULL
);
CREATE INDEX images_by_written ON images (written);

-- SQLite's instr(), which the store's searches use.
CREATE FUNCTION instr(haystack TEXT, needle TEXT) RETURNS INTEGER
    LANGUAGE SQL IMMUTABLE STRICT AS $$ SELECT strpos(haystack, needle) $$;
"#,
    // 2 (SQLite's 16): leases on the work one instance does for all.
    r#"
CREATE TABLE job_leases (
    job    TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    until  BIGINT NOT NULL
);
"#,
    // 3 (SQLite's 17): schools within a trust.
    r#"
CREATE TABLE schools (
    id      TEXT PRIMARY KEY,
    name    TEXT NOT NULL,
    created BIGINT NOT NULL
);
ALTER TABLE devices ADD COLUMN school TEXT;
ALTER TABLE enroll_tokens ADD COLUMN school TEXT;
ALTER TABLE users ADD COLUMN school TEXT;
ALTER TABLE api_tokens ADD COLUMN school TEXT;
ALTER TABLE accounts ADD COLUMN school TEXT;
ALTER TABLE audit ADD COLUMN school TEXT;
CREATE INDEX devices_by_school ON devices (school);
CREATE INDEX audit_by_school ON audit (school, seq);
"#,
];
