//! PostgreSQL for the console's tests: a fresh database on the cluster
//! named by `POSTGRES_TEST_URL` (see `console_server::test_database`), and
//! a cluster of a test's own that takes TLS only.

pub use console_server::test_database::TestDatabase;

/// A PostgreSQL cluster of its own that takes connections over TLS only
/// (`hostssl` in `pg_hba.conf`, nothing else from the network), with a
/// server certificate from a CA made for it; stopped on drop.
pub struct TlsCluster {
    dir: tempfile::TempDir,
    bin: std::path::PathBuf,
    /// `postgres://postgres@127.0.0.1:PORT/postgres`, no TLS options.
    pub base: String,
    /// The CA that signed the server's certificate, PEM.
    pub ca: std::path::PathBuf,
    /// Another CA, which signed nothing the server has.
    pub other_ca: std::path::PathBuf,
}

fn as_postgres(bin: &std::path::Path, args: &[&str]) -> std::process::Output {
    let root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    let mut cmd = if root {
        let mut c = std::process::Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin);
        c
    } else {
        std::process::Command::new(bin)
    };
    cmd.args(args).output().expect("run a PostgreSQL program")
}

impl TlsCluster {
    pub fn start() -> TlsCluster {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL's programs in /usr/lib/postgresql (apt-get install postgresql; tests/run does)")
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|b| b.join("initdb").exists())
            .max()
            .expect("initdb under /usr/lib/postgresql/*/bin (apt-get install postgresql)");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path();
        let authority = protocol::pki::Authority::generate("test database CA").unwrap();
        let server = authority.issue_server(&["localhost", "127.0.0.1"]).unwrap();
        std::fs::write(path.join("server.crt"), &server.cert_pem).unwrap();
        std::fs::write(path.join("server.key"), server.key_pem.expose()).unwrap();
        let ca = path.join("ca.pem");
        std::fs::write(&ca, authority.cert_pem()).unwrap();
        let other = protocol::pki::Authority::generate("another CA").unwrap();
        let other_ca = path.join("other-ca.pem");
        std::fs::write(&other_ca, other.cert_pem()).unwrap();
        let _ = std::process::Command::new("chown")
            .args(["-R", "postgres:"])
            .arg(path)
            .status();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            path.join("server.key"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        let data = path.join("data");
        let out = as_postgres(
            &bin.join("initdb"),
            &[
                "-D",
                data.to_str().unwrap(),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
            ],
        );
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\nhostssl all all 127.0.0.1/32 trust\n",
        )
        .unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {port} -k {} -c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
            path.display(),
            path.join("server.crt").display(),
            path.join("server.key").display()
        );
        let log = path.join("server.log");
        let out = as_postgres(
            &bin.join("pg_ctl"),
            &[
                "-D",
                data.to_str().unwrap(),
                "-l",
                log.to_str().unwrap(),
                "-w",
                "-t",
                "60",
                "-o",
                &options,
                "start",
            ],
        );
        assert!(
            out.status.success(),
            "pg_ctl start: {}{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        TlsCluster {
            base: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
            dir,
            bin,
            ca,
            other_ca,
        }
    }
}

impl Drop for TlsCluster {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let _ = as_postgres(
            &self.bin.join("pg_ctl"),
            &["-D", data.to_str().unwrap(), "-m", "immediate", "stop"],
        );
    }
}
