//! `console-server`: see docs/interfaces.md for the commands.

use std::io::Read;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use console_server::console::{Console, Listen};
use console_server::data_dir::DataDir;
use console_server::enrollment::{mint_api_token, mint_enroll_token, parse_ttl};
use console_server::store::AuditAction;
use console_server::store::register::RegisterStore;
use console_server::store::scope::ScopeStore;
use console_server::store::visits::VisitStore;
use console_server::store::{AuditEntry, AuditStore, DeviceStore, PolicyStore, Role, UserStore};
use protocol::UnixMillis;

#[derive(Parser)]
#[command(
    name = "console-server",
    version,
    about = "The school's safeguarding console"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// The store in a PostgreSQL database (postgres://USER@HOST:PORT/DB),
    /// which several console instances may share, instead of SQLite in the
    /// data directory; overrides `database` in DIR/console.toml.
    #[arg(long, global = true, value_name = "URL")]
    database: Option<String>,
}

/// `--database`, for every command that opens the store.
static DATABASE: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();

/// The data directory at `data`, its store where `--database` or its
/// settings say.
fn open_dir(data: &std::path::Path) -> anyhow::Result<DataDir> {
    let database = DATABASE.get().and_then(Option::as_deref);
    Ok(DataDir::open_with(data, database)?)
}

/// What a console built for a school says when asked for the demo.
#[cfg(not(feature = "demo"))]
const WITHOUT_DEMO: &str = "this console-server was built without the demo (`--no-default-features`, as a school's console is); run the demo from a build with default features: `cargo run -p console-server -- demo`";

#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
struct EnrollTokenArgs {
    #[command(subcommand)]
    command: Option<EnrollTokenCommand>,
    #[arg(long, default_value = "./data")]
    data: PathBuf,
    /// How long the token may be used: 30m, 24h, 7d (at most 7 days).
    #[arg(long, default_value = "24h")]
    ttl: String,
    /// The HOST:PORT laptops reach the agent listener at (default: the
    /// settings' public_address, else this host and the agent port).
    #[arg(long)]
    address: Option<String>,
    /// The school of the trust the laptop is for (needed once the console
    /// has schools: `console-server school list`).
    #[arg(long, value_name = "ID")]
    school: Option<String>,
}

#[derive(Subcommand)]
enum EnrollTokenCommand {
    /// The tokens that could still enroll a laptop (not used, revoked or
    /// expired).
    List {
        #[arg(long, default_value = "./data")]
        data: PathBuf,
    },
    /// Revokes an unused token by the id `list` shows.
    Revoke {
        #[arg(long, default_value = "./data")]
        data: PathBuf,
        id: String,
    },
}

#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
struct ApiTokenArgs {
    #[command(subcommand)]
    command: Option<ApiTokenCommand>,
    #[arg(long, default_value = "./data")]
    data: PathBuf,
    #[arg(long, required = true)]
    name: Option<String>,
    #[arg(long, value_parser = parse_role, required = true)]
    role: Option<Role>,
    /// The staff account the token acts for: it stops working when that
    /// account is disabled or loses the role. Default: the account called
    /// NAME, if there is one; otherwise nobody's (a script's token).
    #[arg(long)]
    owner: Option<String>,
    /// For a token with no owner: the school whose records it serves
    /// (default: every school, the trust's). A token with an owner serves
    /// the owner's school.
    #[arg(long, value_name = "ID")]
    school: Option<String>,
    /// How long it works: 30d, 24h (at most 365 days).
    #[arg(long, default_value = "90d")]
    ttl: String,
}

#[derive(Subcommand)]
enum ApiTokenCommand {
    /// Every API token: name, role, owner, expiry, last use, state.
    List {
        #[arg(long, default_value = "./data")]
        data: PathBuf,
    },
    /// Revokes every live token called NAME (or the one with --id).
    Revoke {
        #[arg(long, default_value = "./data")]
        data: PathBuf,
        #[arg(long, required_unless_present = "id", conflicts_with = "id")]
        name: Option<String>,
        /// The id `list` shows.
        #[arg(long)]
        id: Option<String>,
    },
}

#[derive(Subcommand)]
enum Command {
    /// Runs the console (agent listener, web console and JSON API).
    Serve {
        #[arg(long, default_value = "./data")]
        data: PathBuf,
        /// Overrides agent_listen in DIR/console.toml (default 0.0.0.0:9443).
        #[arg(long)]
        agent_listen: Option<SocketAddr>,
        /// Overrides web_listen in DIR/console.toml (default 0.0.0.0:8443).
        #[arg(long)]
        web_listen: Option<SocketAddr>,
    },
    /// Prints a one-time enrollment token for one laptop, on the last line
    /// (`list` and `revoke` for those not yet used).
    #[command(alias = "enrol-token")]
    EnrollToken(EnrollTokenArgs),
    /// Staff accounts.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// The schools of a trust: each laptop, staff account, register and
    /// audit line belongs to one, and a school's staff see only theirs.
    /// A console of one school needs none.
    School {
        #[command(subcommand)]
        command: SchoolCommand,
    },
    /// Prints a bearer token for the JSON API, on the last line (`list`
    /// and `revoke` for those made).
    ApiToken(ApiTokenArgs),
    /// Laptops.
    Device {
        #[command(subcommand)]
        command: DeviceCommand,
    },
    /// The demo agent's AUP window (its session helper starts it).
    #[command(hide = true)]
    AupWindow,
    /// The demo agent's concern window.
    #[command(hide = true)]
    ConcernWindow,
    /// The register of users: the MIS import.
    Register {
        #[command(subcommand)]
        command: RegisterCommand,
    },
    /// Policies per group: a group's layer, and what applies to whom.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Named groups of accounts (`accounts:NAME`) and of laptops
    /// (`devices:NAME`), for policy layers.
    Group {
        #[command(subcommand)]
        command: GroupCommand,
    },
    /// Website categories for the weekly report.
    Domains {
        #[command(subcommand)]
        command: DomainsCommand,
    },
    /// Copies the data directory to a new folder while the console runs
    /// (a consistent database snapshot, the screenshots, reports, keys and
    /// settings), then checks the copy.
    Backup {
        #[arg(long, default_value = "./data")]
        data: PathBuf,
        /// A new (or empty) folder for the copy.
        #[arg(long)]
        to: PathBuf,
    },
    /// Copies a school's SQLite console (its data directory) into a trust's
    /// PostgreSQL database, then checks the copy (every table's rows,
    /// every screenshot byte for byte). The laptops keep their enrollment:
    /// give the trust's instances this directory's certificates.
    Migrate {
        #[arg(long, default_value = "./data")]
        data: PathBuf,
        /// The trust's database: postgres://USER@HOST:PORT/DATABASE (empty
        /// of any console's records).
        #[arg(long, value_name = "URL")]
        to: String,
    },
    /// Exports everything held about one user (a subject-access request)
    /// into a new folder: captures, reviews, screenshots, site visits, AUP
    /// answers, the register entry. The export is written to the audit log.
    SubjectExport {
        #[arg(long, default_value = "./data")]
        data: PathBuf,
        /// The account name, as the laptops report it.
        #[arg(long)]
        user: String,
        /// A new folder for the export.
        #[arg(long)]
        out: PathBuf,
    },
    /// A console and a real agent on this machine, ready to try.
    Demo {
        #[arg(long, default_value = "./demo-data")]
        data: PathBuf,
        /// Keep the agent off this desktop (it then watches only fed text
        /// and browser history, and captures have no screenshot).
        #[arg(long)]
        no_desktop: bool,
        #[arg(long, default_value = "127.0.0.1:9443")]
        agent_listen: SocketAddr,
        #[arg(long, default_value = "127.0.0.1:8443")]
        web_listen: SocketAddr,
    },
}

#[derive(Subcommand)]
enum SchoolCommand {
    /// Adds a school to the trust's console.
    Add {
        #[arg(long, default_value = "./data")]
        data: PathBuf,
        /// Short and fixed: 1 to 40 of a-z, 0-9 and '-' (north-academy).
        #[arg(long)]
        id: String,
        /// As staff read it: "North Academy".
        #[arg(long)]
        name: String,
    },
    /// Every school: id, name, laptops, staff.
    List {
        #[arg(long, default_value = "./data")]
        data: PathBuf,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Creates a staff account; the password is read from standard input.
    Add {
        #[arg(long, default_value = "./data")]
        data: PathBuf,
        #[arg(long)]
        name: String,
        #[arg(long, value_parser = parse_role)]
        role: Role,
        /// The school whose staff they are: they see that school only.
        /// Without it, on a trust's console, they are the trust's and see
        /// every school.
        #[arg(long, value_name = "ID")]
        school: Option<String>,
    },
    /// Limits a reviewer to the captures of groups (a head of year to her
    /// year groups), or gives her the whole school again; prints what she
    /// then sees.
    Scope {
        #[arg(long, default_value = "./data")]
        data: PathBuf,
        #[arg(long)]
        name: String,
        /// A group: year:NAME, role:pupil, accounts:NAME or devices:NAME
        /// (repeat for several).
        #[arg(long = "group", required_unless_present = "whole_school")]
        groups: Vec<String>,
        /// Every capture of the school (the safeguarding lead).
        #[arg(long, conflicts_with = "groups")]
        whole_school: bool,
    },
}

#[derive(Subcommand)]
enum DeviceCommand {
    /// Lists enrolled laptops.
    List {
        #[arg(long, default_value = "./data")]
        data: PathBuf,
    },
    /// Revokes a laptop: its certificate is refused from now on (a running
    /// console picks this up within seconds).
    Revoke {
        #[arg(long, default_value = "./data")]
        data: PathBuf,
        id: uuid::Uuid,
        #[arg(long, default_value = "revoked by the IT technician")]
        reason: String,
    },
}

#[derive(Subcommand)]
enum RegisterCommand {
    /// Imports the school's MIS export (CSV with a header naming account,
    /// name, year group and role). A file with any bad line is refused whole,
    /// each bad line named. Staff accounts then see the staff AUP.
    Import {
        #[arg(long, default_value = "./data")]
        data: PathBuf,
        /// The CSV file, or - for standard input.
        file: PathBuf,
        /// The school whose register this is (on a trust's console).
        #[arg(long, value_name = "ID")]
        school: Option<String>,
    },
    /// Every account: name, year group, role, last seen.
    List {
        #[arg(long, default_value = "./data")]
        data: PathBuf,
    },
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Sets a group's policy layer: a group is role:pupil, role:staff,
    /// year:NAME (as the register has it), accounts:NAME or devices:NAME.
    /// Only what is given changes (--reset starts from nothing); a layer
    /// that ties with another of its rank is refused. A running console
    /// sends it to the laptops within seconds.
    SetGroup {
        #[arg(long, default_value = "./data")]
        data: PathBuf,
        #[arg(long)]
        group: String,
        #[arg(long)]
        min_severity: Option<u8>,
        #[arg(long)]
        disable_category: Vec<String>,
        #[arg(long)]
        enable_category: Vec<String>,
        /// When the group is monitored, such as "Mon-Fri 08:00-16:00"
        /// (the school's time zone), with ", term time" after it for the
        /// school's terms only (see `policy terms`).
        #[arg(long)]
        hours: Option<String>,
        /// Outside the hours: nothing, or gravest (severity 5 only).
        #[arg(long)]
        outside_hours: Option<String>,
        /// Screenshots on or off for the group.
        #[arg(long)]
        screenshots: Option<bool>,
        #[arg(long)]
        reset: bool,
        /// Removes the group's layer.
        #[arg(long, conflicts_with_all = ["min_severity", "disable_category", "enable_category", "hours", "outside_hours", "screenshots", "reset"])]
        remove: bool,
    },
    /// Prints what applies to a user (on a laptop, at a moment) as JSON.
    Effective {
        #[arg(long, default_value = "./data")]
        data: PathBuf,
        #[arg(long)]
        user: String,
        /// The laptop's id (its device groups apply).
        #[arg(long)]
        device: Option<String>,
        /// RFC 3339; default now.
        #[arg(long)]
        at: Option<String>,
    },
    /// Every group's layer, as JSON.
    Layers {
        #[arg(long, default_value = "./data")]
        data: PathBuf,
    },
    /// The school's terms, for hours in term time only: prints them, or
    /// replaces them with those given (--term 2026-09-03..2026-12-18,
    /// repeated) or none (--clear: every day is term time). A running
    /// console sends them to the laptops within seconds.
    Terms {
        #[arg(long, default_value = "./data")]
        data: PathBuf,
        #[arg(long = "term")]
        terms: Vec<String>,
        #[arg(long, conflicts_with = "terms")]
        clear: bool,
    },
}

#[derive(Subcommand)]
enum GroupCommand {
    /// Sets the members of an accounts:NAME group (account names) or a
    /// devices:NAME group (laptop ids), replacing what it had.
    Set {
        #[arg(long, default_value = "./data")]
        data: PathBuf,
        #[arg(long)]
        group: String,
        #[arg(long = "member")]
        members: Vec<String>,
    },
    /// The members of a group.
    Show {
        #[arg(long, default_value = "./data")]
        data: PathBuf,
        #[arg(long)]
        group: String,
    },
}

#[derive(Subcommand)]
enum DomainsCommand {
    /// Loads a published list (plain domains, a hosts file, Adblock rules
    /// or addresses, one a line) as a category, replacing an earlier import
    /// of the same category. Subdomains inherit it.
    Import {
        #[arg(long, default_value = "./data")]
        data: PathBuf,
        /// Lower-case letters, digits and '-'; the same name as a built-in
        /// category adds to it.
        #[arg(long)]
        category: String,
        #[arg(long, default_value_t = 3)]
        severity: u8,
        #[arg(long, default_value = "")]
        definition: String,
        /// The list, or - for standard input.
        file: PathBuf,
    },
    /// The built-in categories and the imported lists, with their sizes.
    List {
        #[arg(long, default_value = "./data")]
        data: PathBuf,
    },
}

fn parse_role(s: &str) -> Result<Role, String> {
    Role::parse(s).ok_or_else(|| format!("{s:?} is not a role: admin, reviewer or auditor"))
}

/// Who the audit log names for a change made on the command line.
fn cli_actor() -> String {
    let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    format!("{user} (command line)")
}

/// `enroll-token`: mints one, or lists or revokes the unused ones.
fn enroll_token(args: EnrollTokenArgs) -> anyhow::Result<()> {
    use console_server::store::tokens::TokenStore;
    let now = UnixMillis::now();
    match args.command {
        Some(EnrollTokenCommand::List { data }) => {
            let dir = open_dir(&data)?;
            let tokens = dir.store.enroll_tokens(now)?;
            if tokens.is_empty() {
                println!("no enrollment token can be used now");
            }
            for t in tokens {
                match &t.school {
                    Some(school) => println!(
                        "{}  made {}  usable until {}  school {school}",
                        t.id, t.created, t.expires
                    ),
                    None => println!("{}  made {}  usable until {}", t.id, t.created, t.expires),
                }
            }
        }
        Some(EnrollTokenCommand::Revoke { data, id }) => {
            let dir = open_dir(&data)?;
            if !dir.store.revoke_enroll_token(&id, now)? {
                bail!(
                    "no unused enrollment token has the id {id:?}; `console-server enroll-token list` shows them"
                );
            }
            audit_cli(&dir, AuditAction::RevokeEnrollToken, &id, "")?;
            println!("revoked enrollment token {id}");
        }
        None => {
            let ttl = parse_ttl(&args.ttl).map_err(anyhow::Error::msg)?;
            let dir = open_dir(&args.data)?;
            let (text, token) =
                mint_enroll_token(&dir, ttl, args.address.as_deref(), args.school.as_deref())?;
            audit_cli(
                &dir,
                AuditAction::MintEnrollToken,
                "",
                &format!(
                    "for {} until {}",
                    token.address,
                    console_server::store::rfc3339(UnixMillis(token.expires))
                ),
            )?;
            println!(
                "One laptop can enroll with this token until {} (console {}, CA {}):",
                console_server::store::rfc3339(UnixMillis(token.expires)),
                token.address,
                token.ca_fingerprint
            );
            println!("{text}");
        }
    }
    Ok(())
}

/// `api-token`: mints one, or lists or revokes them.
fn api_token(args: ApiTokenArgs) -> anyhow::Result<()> {
    use console_server::store::tokens::TokenStore;
    let now = UnixMillis::now();
    match args.command {
        Some(ApiTokenCommand::List { data }) => {
            let dir = open_dir(&data)?;
            println!(
                "id            name                 role      owner        expires                   last used                 state"
            );
            for t in dir.store.api_tokens(now)? {
                let state = match (&t.revoked, t.live) {
                    (Some(at), _) => format!("revoked {at}"),
                    (None, true) => "live".to_owned(),
                    (None, false) => "expired".to_owned(),
                };
                println!(
                    "{:<13} {:<20} {:<9} {:<12} {:<25} {:<25} {state}",
                    t.id,
                    t.name,
                    t.role.as_str(),
                    t.owner.as_deref().unwrap_or("-"),
                    t.expires,
                    t.last_used.as_deref().unwrap_or("never"),
                );
            }
        }
        Some(ApiTokenCommand::Revoke { data, name, id }) => {
            let dir = open_dir(&data)?;
            let n = dir
                .store
                .revoke_api_tokens(name.as_deref(), id.as_deref(), now)?;
            let which = name.or(id).unwrap_or_default();
            if n == 0 {
                bail!(
                    "no live API token is called or has the id {which:?}; `console-server api-token list` shows them"
                );
            }
            audit_cli(
                &dir,
                AuditAction::RevokeApiToken,
                &which,
                &format!("{n} revoked"),
            )?;
            println!("revoked {n} API token(s): {which}");
        }
        None => {
            let (Some(name), Some(role)) = (args.name, args.role) else {
                bail!("--name and --role are needed to make a token");
            };
            let ttl = parse_ttl(&args.ttl).map_err(anyhow::Error::msg)?;
            let dir = open_dir(&args.data)?;
            let token = mint_api_token(
                dir.store.as_ref(),
                &name,
                role,
                args.owner.as_deref(),
                args.school.as_deref(),
                ttl,
            )?;
            audit_cli(&dir, AuditAction::MintApiToken, &name, role.as_str())?;
            println!(
                "API token for {name} ({}), valid for {}; keep it secret:",
                role.as_str(),
                args.ttl
            );
            println!("{token}");
        }
    }
    Ok(())
}

fn audit_cli(dir: &DataDir, action: AuditAction, target: &str, detail: &str) -> anyhow::Result<()> {
    dir.store
        .audit(&AuditEntry {
            time: UnixMillis::now(),
            actor: &cli_actor(),
            action,
            target,
            detail,
            origin: "cli",
        })
        .context("cannot write the audit log")
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let _ = DATABASE.set(cli.database.clone());
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    match cli.command {
        #[cfg(feature = "demo")]
        Command::AupWindow => agent::window::child_main("aup-window")?,
        #[cfg(feature = "demo")]
        Command::ConcernWindow => agent::window::child_main("concern-window")?,
        #[cfg(not(feature = "demo"))]
        Command::AupWindow | Command::ConcernWindow => bail!(WITHOUT_DEMO),
        Command::Serve {
            data,
            agent_listen,
            web_listen,
        } => serve(&runtime, data, agent_listen, web_listen)?,
        Command::EnrollToken(args) => enroll_token(args)?,
        Command::User {
            command:
                UserCommand::Add {
                    data,
                    name,
                    role,
                    school,
                },
        } => user_add(data, name, role, school)?,
        Command::School { command } => school_command(command)?,
        Command::User {
            command:
                UserCommand::Scope {
                    data,
                    name,
                    groups,
                    whole_school: _,
                },
        } => user_scope(data, name, groups)?,
        Command::ApiToken(args) => api_token(args)?,
        Command::Device {
            command: DeviceCommand::List { data },
        } => device_list(data)?,
        Command::Device {
            command: DeviceCommand::Revoke { data, id, reason },
        } => device_revoke(data, id, reason)?,
        Command::Domains {
            command:
                DomainsCommand::Import {
                    data,
                    category,
                    severity,
                    definition,
                    file,
                },
        } => domains_import(data, category, severity, definition, file)?,
        Command::Backup { data, to } => backup(data, to)?,
        Command::Migrate { data, to } => migrate(&data, &to)?,
        Command::SubjectExport { data, user, out } => subject_export(data, user, out)?,
        Command::Register {
            command: RegisterCommand::Import { data, file, school },
        } => register_import(data, file, school)?,
        Command::Register {
            command: RegisterCommand::List { data },
        } => register_list(data)?,
        Command::Domains {
            command: DomainsCommand::List { data },
        } => domains_list(data)?,
        Command::Policy { command } => policy_command(command)?,
        Command::Group { command } => group_command(command)?,
        #[cfg(feature = "demo")]
        Command::Demo {
            data,
            no_desktop,
            agent_listen,
            web_listen,
        } => runtime.block_on(console_server::demo::run(
            &data,
            Listen {
                agent: Some(agent_listen),
                web: Some(web_listen),
            },
            !no_desktop,
        ))?,
        #[cfg(not(feature = "demo"))]
        Command::Demo { .. } => bail!(WITHOUT_DEMO),
    }
    Ok(())
}

/// Ctrl-C or SIGTERM.
async fn wait_for_stop() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM can be handled");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// `serve`: the console until Ctrl-C or SIGTERM.
fn serve(
    runtime: &tokio::runtime::Runtime,
    data: PathBuf,
    agent_listen: Option<SocketAddr>,
    web_listen: Option<SocketAddr>,
) -> anyhow::Result<()> {
    let dir = open_dir(&data)?;
    println!(
        "data directory {} (CA fingerprint {})",
        data.display(),
        dir.ca_fingerprint()
    );
    match dir.store.postgres_url() {
        Some(url) => println!("store: PostgreSQL at {url}"),
        None => println!("store: SQLite in {}", data.join("console.db").display()),
    }
    for rule in &dir.settings.alerts {
        for school in &rule.schools {
            console_server::store::schools::require_school(dir.store.as_ref(), school)
                .map_err(|e| anyhow::anyhow!("console.toml: alerts rule {:?}: {e}", rule.name))?;
        }
    }
    for report in &dir.settings.report.schools {
        console_server::store::schools::require_school(dir.store.as_ref(), &report.school)
            .map_err(|e| anyhow::anyhow!("console.toml: [[report.schools]]: {e}"))?;
    }
    runtime.block_on(async {
        let console = Console::start(
            &dir,
            Listen {
                agent: agent_listen,
                web: web_listen,
            },
        )
        .await?;
        println!(
            "listening: agents on {}, web console and API on https://{}",
            console.agent_addr, console.web_addr
        );
        wait_for_stop().await;
        println!("stopping: finishing what agents already sent");
        console.shutdown().await;
        anyhow::Ok(())
    })?;
    Ok(())
}

/// `user add`: a staff account, its password from standard input.
fn user_add(data: PathBuf, name: String, role: Role, school: Option<String>) -> anyhow::Result<()> {
    let mut password = String::new();
    std::io::stdin()
        .read_to_string(&mut password)
        .context("cannot read the password from standard input")?;
    let password = password.trim_end_matches(['\n', '\r']);
    if password.chars().count() < 12 {
        bail!("the password must be at least 12 characters");
    }
    let hash = console_server::secret::hash_password(password)?;
    let dir = open_dir(&data)?;
    dir.store
        .add_user(&name, role, &hash, school.as_deref(), UnixMillis::now())?;
    audit_cli(&dir, AuditAction::AddStaff, &name, role.as_str())?;
    match school {
        Some(school) => println!("added {} user {name} of {school}", role.as_str()),
        None => println!("added {} user {name}", role.as_str()),
    }
    Ok(())
}

/// `school add` and `school list`.
fn school_command(command: SchoolCommand) -> anyhow::Result<()> {
    use console_server::store::schools::SchoolStore;
    match command {
        SchoolCommand::Add { data, id, name } => {
            let dir = open_dir(&data)?;
            dir.store
                .add_school(&id, &name, (&cli_actor(), "cli"), UnixMillis::now())?;
            println!("added school {id} ({})", name.trim());
        }
        SchoolCommand::List { data } => {
            let dir = open_dir(&data)?;
            let schools = dir.store.schools()?;
            if schools.is_empty() {
                println!("no schools: this console serves one school");
            }
            for s in schools {
                println!(
                    "{}  {}  {} laptop(s)  {} staff account(s)",
                    s.id, s.name, s.devices, s.staff
                );
            }
        }
    }
    Ok(())
}

/// `user scope`: the groups a reviewer is limited to.
fn user_scope(data: PathBuf, name: String, groups: Vec<String>) -> anyhow::Result<()> {
    let scope = console_server::store::scope::Scope::of(&groups).map_err(anyhow::Error::msg)?;
    let dir = open_dir(&data)?;
    dir.store
        .set_staff_scope(&name, &scope, (&cli_actor(), "cli"), UnixMillis::now())?;
    match dir.store.scope_accounts(&scope)? {
        None => println!("{name} sees the whole school"),
        Some(accounts) => println!(
            "{name} sees the captures of {} ({} account{} now; a running console applies it at the next request)",
            scope.describe(),
            accounts.len(),
            if accounts.len() == 1 { "" } else { "s" }
        ),
    }
    Ok(())
}

/// `device list`.
fn device_list(data: PathBuf) -> anyhow::Result<()> {
    let dir = open_dir(&data)?;
    let minutes = i64::from(dir.settings.offline_after_minutes);
    let since = UnixMillis(UnixMillis::now().0 - minutes * 60_000);
    for d in dir.store.devices(since)? {
        println!(
            "{}  {:<20} {:<10} last seen {}{}",
            d.id,
            d.hostname,
            if d.online { "online" } else { "offline" },
            d.last_seen.as_deref().unwrap_or("never"),
            d.revoked
                .map(|r| format!("  REVOKED {r}"))
                .unwrap_or_default()
        );
    }
    Ok(())
}

/// `device revoke`.
fn device_revoke(data: PathBuf, id: uuid::Uuid, reason: String) -> anyhow::Result<()> {
    let dir = open_dir(&data)?;
    if !dir.store.revoke_device(id, &reason, UnixMillis::now())? {
        bail!("no device {id}; `console-server device list` shows them");
    }
    audit_cli(&dir, AuditAction::RevokeDevice, &id.to_string(), &reason)?;
    println!("revoked {id}");
    Ok(())
}

/// `domains import`: one of the school's domain lists.
fn domains_import(
    data: PathBuf,
    category: String,
    severity: u8,
    definition: String,
    file: PathBuf,
) -> anyhow::Result<()> {
    if !wordlists::domains::valid_category(&category) {
        bail!("category {category:?}: use lower-case letters, digits and '-'");
    }
    if !(1..=5).contains(&severity) {
        bail!("severity {severity} is not 1 to 5");
    }
    let mut text = String::new();
    if file.as_os_str() == "-" {
        std::io::stdin().read_to_string(&mut text)?;
    } else {
        let bytes =
            std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
        text = String::from_utf8_lossy(&bytes).into_owned();
    }
    let got = wordlists::domains::import(&text);
    if got.domains.is_empty() {
        bail!(
            "{} holds no domain names ({} lines skipped); nothing imported",
            file.display(),
            got.skipped.len()
        );
    }
    let dir = open_dir(&data)?;
    let info = console_server::store::visits::DomainListInfo {
        category: category.clone(),
        severity,
        definition,
        domains: 0,
        imported: UnixMillis::now(),
        source: file.display().to_string(),
    };
    let n = dir.store.import_domain_list(&info, &got.domains)?;
    audit_cli(
        &dir,
        AuditAction::ImportDomainList,
        &category,
        &format!("{n} domains from {}", file.display()),
    )?;
    println!("imported {n} domains into {category}");
    if !got.skipped.is_empty() {
        println!("skipped {} lines:", got.skipped.len());
        for (line, why) in got.skipped.iter().take(10) {
            println!("  line {line}: {why}");
        }
        if got.skipped.len() > 10 {
            println!("  …");
        }
    }
    Ok(())
}

/// `backup`: a checked copy of a running console.
fn backup(data: PathBuf, to: PathBuf) -> anyhow::Result<()> {
    if let Some(url) = open_dir(&data)?.store.postgres_url() {
        bail!(
            "the store is in PostgreSQL ({url}), not in {}: back it up with PostgreSQL's own tools (pg_dump, or a streaming replica and base backups; see docs/trust.md), and keep a copy of {} for its certificates",
            data.display(),
            data.display()
        );
    }
    let got = console_server::backup::backup(&data, &to)?;
    println!(
        "backed up {} to {}: {} captures, {} screenshots, {} weekly reports, {:.1} MB; the copy passed its integrity check",
        data.display(),
        to.display(),
        got.captures,
        got.images,
        got.reports,
        got.bytes as f64 / 1_048_576.0
    );
    Ok(())
}

/// `migrate`: a school's SQLite console into a trust's PostgreSQL database.
fn migrate(data: &std::path::Path, to: &str) -> anyhow::Result<()> {
    let copied = console_server::migrate::to_postgres(data, to)?;
    let total: u64 = copied.rows.values().sum();
    println!(
        "copied {} into {}: {total} rows in {} tables, {} screenshots ({:.1} MB); the copy was checked (row counts, screenshots byte for byte)",
        data.display(),
        console_server::store::postgres::shown_url(to),
        copied.rows.len(),
        copied.images,
        copied.image_bytes as f64 / 1_048_576.0
    );
    for (table, n) in &copied.rows {
        println!("  {table}: {n}");
    }
    println!(
        "next: put `database = \"{}\"` in {}/console.toml (or run with --database), and give every instance this directory's ca.pem, ca-key.pem, server.pem and server-key.pem; the laptops need not enroll again",
        console_server::store::postgres::shown_url(to),
        data.display()
    );
    Ok(())
}

/// `subject-export`: everything held about one account.
fn subject_export(data: PathBuf, user: String, out: PathBuf) -> anyhow::Result<()> {
    let dir = open_dir(&data)?;
    let got = console_server::subject_access::export(&dir.store, &user, &out)?;
    audit_cli(
        &dir,
        AuditAction::SubjectExport,
        &user,
        &format!("to {}", out.display()),
    )?;
    let counts: Vec<String> = got
        .files
        .iter()
        .map(|(file, n)| format!("{file} {n}"))
        .collect();
    println!(
        "exported {user:?} to {}: {}, screenshots {}",
        out.display(),
        counts.join(", "),
        got.screenshots
    );
    Ok(())
}

/// `register import`: the MIS export, all or nothing; staff accounts go into the policy.
fn register_import(data: PathBuf, file: PathBuf, school: Option<String>) -> anyhow::Result<()> {
    let mut bytes = Vec::new();
    if file.as_os_str() == "-" {
        std::io::stdin().read_to_end(&mut bytes)?;
    } else {
        bytes = std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
    }
    let people = console_server::mis_import::parse(&bytes)
        .map_err(|refused| anyhow::anyhow!("{}: {refused}", file.display()))?;
    let dir = open_dir(&data)?;
    let actor = cli_actor();
    let counts = dir.store.import_people(
        &people,
        school.as_deref(),
        &AuditEntry {
            time: UnixMillis::now(),
            actor: &actor,
            action: AuditAction::ImportRegister,
            target: "",
            detail: &format!("{} people from {}", people.len(), file.display()),
            origin: "cli",
        },
    )?;
    println!(
        "{} people read: {} new, {} updated, {} unchanged",
        people.len(),
        counts.added,
        counts.updated,
        counts.unchanged
    );
    let policy = dir.store.policy()?;
    if let Some(changed) =
        console_server::policy::with_staff_accounts(&policy, dir.store.mis_staff_accounts()?)
    {
        use console_server::policy_service::{Author, ChangeNote, change_policy};
        let n = changed.staff_accounts.len();
        let saved = change_policy::<std::convert::Infallible>(
            dir.store.as_ref(),
            &Author {
                name: cli_actor(),
                origin: "cli".into(),
                aup_label: format!("{} (command line)", cli_actor()),
            },
            &ChangeNote {
                action: AuditAction::SetStaffAccounts,
                target: String::new(),
                detail: format!("{n} staff accounts from the MIS import"),
            },
            &mut |p| {
                p.staff_accounts = changed.staff_accounts.clone();
                Ok(())
            },
        )
        .map_err(|e| anyhow::anyhow!("the policy was not changed: {e}"))?;
        println!(
            "policy version {}: {n} staff accounts (a running console sends it to the laptops within seconds)",
            saved.version
        );
    }
    Ok(())
}

/// `register list`.
fn register_list(data: PathBuf) -> anyhow::Result<()> {
    let dir = open_dir(&data)?;
    for a in dir.store.accounts()? {
        println!(
            "{:<24} {:<30} {:<10} {:<6} last seen {}",
            a.account,
            a.name.as_deref().unwrap_or("-"),
            a.year_group.as_deref().unwrap_or("-"),
            a.role.map_or("-", |r| r.as_str()),
            a.last_seen
                .map_or("never".into(), console_server::store::rfc3339)
        );
    }
    Ok(())
}

/// `policy set-group`, `policy effective`, `policy layers`.
fn policy_command(command: PolicyCommand) -> anyhow::Result<()> {
    use console_server::group_policy::{GroupChange, categories, changed, effective};
    use console_server::store::groups::GroupStore;
    match command {
        PolicyCommand::SetGroup {
            data,
            group,
            min_severity,
            disable_category,
            enable_category,
            hours,
            outside_hours,
            screenshots,
            reset,
            remove,
        } => {
            let dir = open_dir(&data)?;
            if remove {
                dir.store
                    .set_layer(&group, None, ("console-server", "cli"), UnixMillis::now())?;
                println!(
                    "{group}: layer removed (a running console sends the change within seconds)"
                );
                return Ok(());
            }
            let current = dir
                .store
                .layers()?
                .into_iter()
                .find(|l| l.group == group)
                .map(|l| l.overrides);
            let known = categories(&dir.store.policy()?)?;
            let layer = changed(
                current,
                &GroupChange {
                    min_severity,
                    disable: disable_category,
                    enable: enable_category,
                    hours,
                    outside_hours,
                    screenshots,
                    reset,
                },
                &known,
            )?;
            dir.store.set_layer(
                &group,
                Some(&layer),
                ("console-server", "cli"),
                UnixMillis::now(),
            )?;
            println!(
                "{group}: {} (a running console sends it to the laptops within seconds)",
                serde_json::to_string(&layer)?
            );
        }
        PolicyCommand::Effective {
            data,
            user,
            device,
            at,
        } => {
            let dir = open_dir(&data)?;
            if let Ok(tz) = console_server::school_week::parse_zone(&dir.settings.time_zone) {
                console_server::school_week::set_zone(tz);
            }
            let at = match at {
                Some(t) => {
                    let ts: jiff::Timestamp = t.parse().map_err(|e| {
                        anyhow::anyhow!(
                            "--at {t:?} is not an RFC 3339 time such as 2026-12-07T10:00:00Z: {e}"
                        )
                    })?;
                    UnixMillis(ts.as_millisecond())
                }
                None => UnixMillis::now(),
            };
            let e = effective(dir.store.as_ref(), &user, device.as_deref(), at)?;
            println!("{}", serde_json::to_string_pretty(&e)?);
        }
        PolicyCommand::Layers { data } => {
            let dir = open_dir(&data)?;
            let layers: Vec<serde_json::Value> = dir
                .store
                .layers()?
                .into_iter()
                .map(|l| serde_json::json!({ "group": l.group, "overrides": l.overrides }))
                .collect();
            println!("{}", serde_json::to_string_pretty(&layers)?);
        }
        PolicyCommand::Terms { data, terms, clear } => {
            let dir = open_dir(&data)?;
            if clear || !terms.is_empty() {
                let terms = terms
                    .iter()
                    .map(|t| protocol::layers::Term::parse(t))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(anyhow::Error::msg)?;
                dir.store
                    .set_terms(&terms, (&cli_actor(), "cli"), UnixMillis::now())?;
            }
            let terms = dir.store.terms()?;
            if terms.is_empty() {
                println!("no terms set: hours in term time hold every week");
            }
            for t in terms {
                println!("{t}");
            }
        }
    }
    Ok(())
}

/// `group set`, `group show`.
fn group_command(command: GroupCommand) -> anyhow::Result<()> {
    use console_server::store::groups::GroupStore;
    match command {
        GroupCommand::Set {
            data,
            group,
            members,
        } => {
            let dir = open_dir(&data)?;
            dir.store.set_group_members(
                &group,
                &members,
                ("console-server", "cli"),
                UnixMillis::now(),
            )?;
            println!("{group}: {} members", members.len());
        }
        GroupCommand::Show { data, group } => {
            let dir = open_dir(&data)?;
            for m in dir.store.group_members(&group)? {
                println!("{m}");
            }
        }
    }
    Ok(())
}

/// `domains list`.
fn domains_list(data: PathBuf) -> anyhow::Result<()> {
    let dir = open_dir(&data)?;
    let builtin = console_server::site_report::builtin_categories();
    for c in &builtin.categories {
        println!("built-in  {:<20} severity {}", c.name, c.severity);
    }
    for l in dir.store.domain_lists()? {
        println!(
            "imported  {:<20} severity {}  {} domains from {}",
            l.category, l.severity, l.domains, l.source
        );
    }
    Ok(())
}
