//! Test support, shared by this crate's PostgreSQL conformance test and the scale-out tests of
//! the `once` binary: a fresh, uniquely named PostgreSQL database per test, and the one rule
//! for what happens when PostgreSQL cannot be reached.
//!
//! The rule: with `CI` set (to anything but `0`/`false`) or `ONCE_REQUIRE_POSTGRES=1`, an
//! unreachable server fails the test loudly; otherwise the test prints
//! `PostgreSQL suite did NOT run: <reason>` to stderr and passes, so a plain `cargo test` on a
//! laptop without PostgreSQL still runs everything else.
//!
//! Always compiled (like [`crate::conformance`]) rather than behind a cargo feature: a feature
//! enabled only by dev-dependencies would make test builds and normal builds of every crate
//! above `once-meta` differ, and compile them twice.

pub mod faults;
pub mod storms;

use std::str::FromStr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, Executor};

/// Where the tests find a PostgreSQL server (any database on it; the tests create their own).
pub const TEST_DATABASE_URL_VAR: &str = "ONCE_TEST_DATABASE_URL";
pub const DEFAULT_TEST_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// True when an unreachable PostgreSQL must fail the tests instead of skipping them.
pub fn postgres_required() -> bool {
    ci() || std::env::var("ONCE_REQUIRE_POSTGRES").is_ok_and(|value| value.trim() == "1")
}

/// True when `CI` is set to anything but `0`/`false`.
fn ci() -> bool {
    std::env::var("CI")
        .map(|value| !matches!(value.trim(), "" | "0" | "false" | "FALSE" | "False"))
        .unwrap_or(false)
}

/// A database created for one test and dropped (`WITH (FORCE)`) when this value is dropped.
pub struct TestDatabase {
    admin: PgConnectOptions,
    name: String,
    url: String,
}

impl TestDatabase {
    /// Creates a fresh database on the server named by `ONCE_TEST_DATABASE_URL` (default
    /// [`DEFAULT_TEST_DATABASE_URL`]). If that fails: panics when PostgreSQL is required (see
    /// [`postgres_required`]), otherwise prints `PostgreSQL suite did NOT run: <reason>` and
    /// returns `None`; the caller then returns early. `test` names the caller in the message.
    pub async fn create(test: &str) -> Option<Self> {
        let admin_url = std::env::var(TEST_DATABASE_URL_VAR)
            .ok()
            .filter(|url| !url.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_TEST_DATABASE_URL.to_owned());
        match Self::try_create(&admin_url).await {
            Ok(database) => Some(database),
            Err(error) => {
                let reason = format!(
                    "cannot create a test database on {}: {error}",
                    redact(&admin_url)
                );
                if postgres_required() {
                    panic!(
                        "PostgreSQL is required here (CI or ONCE_REQUIRE_POSTGRES=1 is set) \
                         but {reason}; start it (see DEVELOPERS.md) or point \
                         {TEST_DATABASE_URL_VAR} at one"
                    );
                }
                report_skip(&format!(
                    "PostgreSQL suite did NOT run: {reason} (test {test}; start PostgreSQL or set \
                     {TEST_DATABASE_URL_VAR}; CI=true or ONCE_REQUIRE_POSTGRES=1 make this a \
                     failure)"
                ));
                None
            }
        }
    }

    async fn try_create(admin_url: &str) -> Result<Self, sqlx::Error> {
        let admin = PgConnectOptions::from_str(admin_url)?.application_name("once-tests");
        let mut connection = connect(&admin).await?;
        let name = unique_name();
        connection
            .execute(format!("CREATE DATABASE \"{name}\"").as_str())
            .await?;
        let _ = connection.close().await;
        Ok(Self {
            url: with_database(admin_url, &name),
            admin,
            name,
        })
    }

    /// The URL of the fresh database (what `ONCE_DATABASE_URL` should be).
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // Drop runs inside the test's runtime, which may be a single thread busy with this very
        // call: do the cleanup on a thread of its own with a runtime of its own.
        let admin = self.admin.clone();
        let name = self.name.clone();
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|error| error.to_string())?;
            runtime.block_on(async {
                let mut connection = connect(&admin).await.map_err(|e| e.to_string())?;
                connection
                    .execute(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)").as_str())
                    .await
                    .map_err(|e| e.to_string())?;
                let _ = connection.close().await;
                Ok::<(), String>(())
            })
        });
        match cleanup.join() {
            Ok(Ok(())) => {}
            Ok(Err(error)) => report_skip(&format!(
                "warning: could not drop test database {}: {error}",
                self.name
            )),
            Err(_) => report_skip(&format!(
                "warning: dropping test database {} panicked",
                self.name
            )),
        }
    }
}

async fn connect(options: &PgConnectOptions) -> Result<sqlx::PgConnection, sqlx::Error> {
    match tokio::time::timeout(CONNECT_TIMEOUT, options.connect()).await {
        Ok(result) => result,
        Err(_) => Err(sqlx::Error::Io(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("no answer within {CONNECT_TIMEOUT:?}"),
        ))),
    }
}

/// Straight to the process's stderr: `eprintln!` inside a test is captured by the test harness
/// and only shown on failure, and this line must be seen when the test passes.
fn report_skip(line: &str) {
    use std::io::Write;
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(stderr, "{line}");
    let _ = stderr.flush();
}

/// `once_test_<pid>_<time>_<n>`: unique across the processes nextest runs in parallel.
fn unique_name() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_nanos() % 1_000_000_000_000)
        .unwrap_or_default();
    format!(
        "once_test_{}_{nanos}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// `url` with its database (the path) replaced by `name`, keeping credentials and parameters.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |at| at + 3);
    let authority_end = base[authority_start..]
        .find('/')
        .map_or(base.len(), |at| authority_start + at);
    let mut out = format!("{}/{name}", &base[..authority_end]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

/// The URL with any password replaced by `***`, for messages.
pub fn redact(url: &str) -> String {
    let authority_start = url.find("://").map_or(0, |at| at + 3);
    let rest = &url[authority_start..];
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => match rest[..at].split_once(':') {
            Some((user, _password)) => {
                format!("{}{user}:***{}", &url[..authority_start], &rest[at..])
            }
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_is_replaced_and_the_rest_kept() {
        assert_eq!(
            with_database("postgres://u:p@h:5432/test?sslmode=disable", "x"),
            "postgres://u:p@h:5432/x?sslmode=disable"
        );
        assert_eq!(with_database("postgres://h", "x"), "postgres://h/x");
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact("postgres://h/db"), "postgres://h/db");
    }
}
