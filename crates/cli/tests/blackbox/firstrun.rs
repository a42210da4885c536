//! The first run, where a mistake used to fail later and elsewhere: `once keys …` pointed at a
//! data directory no server uses, a key the server does not know, `once login` saving what it
//! never checked, and a server URL without its scheme.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::harness::*;
use once_domain::{ApiToken, KeySecret};
use once_meta::testing::TestDatabase;

/// `once ARGS` in `dir` with nothing from the test's environment but what is given.
fn once_in(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env_clear()
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("run once")
}

/// A client with its own home and config directory and no `ONCE_SERVER`/`ONCE_KEY`, so only
/// what `once login` saved (or the flags) can point it anywhere.
struct Person {
    home: tempfile::TempDir,
}

impl Person {
    fn new() -> Self {
        Self {
            home: tempfile::tempdir().unwrap(),
        }
    }

    fn config_file(&self) -> PathBuf {
        self.home
            .path()
            .join("xdg")
            .join("once")
            .join("client.toml")
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(BIN);
        command
            .args(args)
            .current_dir(self.home.path())
            .env_clear()
            .env("HOME", self.home.path())
            .env("XDG_CONFIG_HOME", self.home.path().join("xdg"))
            .stdin(Stdio::null());
        command
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run once")
    }

    /// `once ARGS` with `input` on standard input (not a terminal, so no prompt).
    fn run_with_input(&self, args: &[&str], input: &str) -> Output {
        use std::io::Write;
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run once");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }
}

// ---- 1. `once keys …` never creates a store -----------------------------------------------

#[test]
fn keys_against_a_missing_data_dir_refuse_with_a_hint_and_create_nothing() {
    let work = tempfile::tempdir().unwrap();
    let missing = work.path().join("not-the-server");
    let missing_arg = missing.to_str().unwrap();
    for args in [
        vec!["keys", "list", "--data-dir", missing_arg],
        vec!["keys", "create", "--name", "me", "--data-dir", missing_arg],
        vec![
            "keys",
            "revoke",
            "0123456789abcdef",
            "--data-dir",
            missing_arg,
        ],
        // The default, `./once-data`, in a directory where no server ever ran.
        vec!["keys", "create", "--name", "me"],
    ] {
        let output = once_in(work.path(), &args, &[]);
        assert!(!output.status.success(), "{args:?} succeeded");
        let message = stderr(&output);
        let named = if args.contains(&"--data-dir") {
            missing.clone()
        } else {
            work.path().join("once-data")
        };
        assert!(
            message.contains(&format!("{}:", named.display())),
            "{args:?}: {message}"
        );
        assert!(
            message.contains("does not exist")
                && message.contains("--data-dir")
                && message.contains("`once serve`"),
            "{args:?}: {message}"
        );
        assert!(
            std::fs::read_dir(work.path()).unwrap().next().is_none(),
            "{args:?} left something in {}",
            work.path().display()
        );
    }
}

#[test]
fn keys_in_a_directory_without_a_database_refuse_and_leave_it_empty() {
    let work = tempfile::tempdir().unwrap();
    let empty = work.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let output = once_in(
        work.path(),
        &["keys", "create", "--name", "me", "--data-dir", "empty"],
        &[],
    );
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains(&format!("{}: it has no once.db", empty.display())),
        "{}",
        stderr(&output)
    );
    assert!(std::fs::read_dir(&empty).unwrap().next().is_none());

    // After `once migrate` the database is there, and with no key sealed yet the master secret
    // is made where `once serve` would make it, so the key works once the server runs.
    assert!(
        once_in(work.path(), &["migrate", "--data-dir", "empty"], &[])
            .status
            .success()
    );
    let created = once_in(
        work.path(),
        &["keys", "create", "--name", "me", "--data-dir", "empty"],
        &[],
    );
    assert!(created.status.success(), "{}", stderr(&created));
    assert!(empty.join("master.key").is_file());
}

#[tokio::test]
async fn keys_on_postgres_need_no_data_dir_but_a_new_key_needs_the_servers_master_secret() {
    let Some(database) = TestDatabase::create("keys_on_postgres_need_no_data_dir").await else {
        return;
    };
    let master_secret = "5a".repeat(32);
    let server = Server::start_with(&[
        ("ONCE_DATABASE_URL", database.url()),
        ("ONCE_MASTER_SECRET", &master_secret),
    ]);
    let work = tempfile::tempdir().unwrap();
    let nowhere = work.path().join("no-data-dir");
    let nowhere = nowhere.to_str().unwrap();
    let on_postgres = [("ONCE_DATABASE_URL", database.url())];

    // Listing reads only the database.
    let listed = once_in(
        work.path(),
        &["keys", "list", "--data-dir", nowhere],
        &on_postgres,
    );
    let (bootstrap_id, _) = server.token.split_once('.').unwrap();
    assert!(String::from_utf8_lossy(&listed.stdout).contains(bootstrap_id));

    // A new key's secret is sealed under the master secret; a fresh one made here would
    // leave the key unable to sign requests, so it is refused.
    let refused = once_in(
        work.path(),
        &["keys", "create", "--name", "ops", "--data-dir", nowhere],
        &on_postgres,
    );
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("master secret") && stderr(&refused).contains("--master-secret"),
        "{}",
        stderr(&refused)
    );
    assert!(
        std::fs::read_dir(work.path()).unwrap().next().is_none(),
        "something was created"
    );

    // With the server's master secret the key is complete: it signs requests.
    let created = once_in(
        work.path(),
        &["keys", "create", "--name", "ops", "--data-dir", nowhere],
        &[
            ("ONCE_DATABASE_URL", database.url()),
            ("ONCE_MASTER_SECRET", &master_secret),
        ],
    );
    let token = ApiToken::parse(stdout(&created).trim()).unwrap();
    let timestamp = time::OffsetDateTime::now_utc().unix_timestamp();
    let path = "/api/v1/shares?limit=1";
    let signature = once_domain::signing::request_signature(
        &token.secret,
        "GET",
        path,
        timestamp,
        &sha256_hex(b""),
    );
    let response = client()
        .get(server.url(path))
        .header("X-Once-Key", token.id.as_str())
        .header("X-Once-Timestamp", timestamp.to_string())
        .header("X-Once-Signature", signature)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

// ---- 2. a refused key says where keys come from ---------------------------------------------

#[tokio::test]
async fn an_unknown_key_id_and_a_wrong_secret_get_the_same_401_that_says_where_keys_come_from() {
    let server = Server::start();
    let unknown_id = ApiToken::generate().reveal();
    let (known_id, _) = server.token.split_once('.').unwrap();
    let wrong_secret = format!("{known_id}.{}", KeySecret::generate().expose());
    let mut messages = Vec::new();
    for token in [&unknown_id, &wrong_secret] {
        let response = client()
            .get(server.url("/api/v1/shares"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401);
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "invalid_credentials");
        messages.push(body["error"]["message"].as_str().unwrap().to_owned());
    }
    assert_eq!(
        messages[0], messages[1],
        "the message tells the cases apart"
    );
    assert!(
        messages[0].contains("keys are made on the server with `once keys create`"),
        "{}",
        messages[0]
    );

    // The CLI shows it as it came.
    let work = tempfile::tempdir().unwrap();
    let output = once_in(
        work.path(),
        &["list"],
        &[
            ("ONCE_SERVER", &server.base),
            ("ONCE_KEY", &unknown_id),
            ("HOME", work.path().to_str().unwrap()),
        ],
    );
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("`once keys create`")
            && stderr(&output).contains("invalid_credentials, HTTP 401"),
        "{}",
        stderr(&output)
    );
}

// ---- 3. `once login` -------------------------------------------------------------------------

#[tokio::test]
async fn login_checks_the_key_then_saves_server_and_key_for_its_owner_only() {
    let server = Server::start();
    let person = Person::new();
    let output = person.run_with_input(&["login", &server.base], &format!("{}\n", server.token));
    let said = stdout(&output);
    let file = person.config_file();
    assert!(said.contains(&file.display().to_string()), "{said}");
    let saved = std::fs::read_to_string(&file).unwrap();
    assert!(
        saved.contains(&format!("server = \"{}\"", server.base))
            && saved.contains(&format!("key = \"{}\"", server.token)),
        "{saved}"
    );
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&file).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600, "config file mode {mode:o}");

    // From now on the file alone points the client at the server.
    let work = person.home.path().join("a.txt");
    std::fs::write(&work, b"saved by login").unwrap();
    let link = stdout(&person.run(&["send", "a.txt", "-q", "--no-encrypt"]));
    assert!(
        link.trim().starts_with(&format!("{}/s/", server.base)),
        "{link}"
    );
    assert_eq!(download(link.trim()).await.1, b"saved by login");
}

#[test]
fn login_with_a_wrong_key_fails_and_writes_nothing() {
    let server = Server::start();
    let person = Person::new();
    let wrong = ApiToken::generate().reveal();
    let output = person.run(&["login", &server.base, "--key", &wrong]);
    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(
        message.contains("does not accept this key; nothing was saved")
            && message.contains("invalid_credentials"),
        "{message}"
    );
    assert!(
        !person.home.path().join("xdg").exists(),
        "login created the config directory"
    );

    // A working login stays as it was when a later one fails.
    stdout(&person.run(&["login", &server.base, "--key", &server.token]));
    let before = std::fs::read(person.config_file()).unwrap();
    let output = person.run_with_input(&["login", &server.base], &format!("{wrong}\n"));
    assert!(!output.status.success());
    let malformed = person.run(&["login", &server.base, "--key", "not-a-key"]);
    assert!(
        stderr(&malformed).contains("malformed"),
        "{}",
        stderr(&malformed)
    );
    assert_eq!(std::fs::read(person.config_file()).unwrap(), before);
}

#[test]
fn flags_beat_the_environment_which_beats_what_login_saved() {
    let server = Server::start();
    let person = Person::new();
    stdout(&person.run(&["login", &server.base, "--key", &server.token]));
    let wrong = ApiToken::generate().reveal();

    let by_env = person
        .command(&["list"])
        .env("ONCE_KEY", &wrong)
        .output()
        .unwrap();
    assert!(!by_env.status.success(), "the saved key beat ONCE_KEY");
    assert!(
        stderr(&by_env).contains("invalid_credentials"),
        "{}",
        stderr(&by_env)
    );

    let by_flag = person
        .command(&["list", "--key", &server.token])
        .env("ONCE_KEY", &wrong)
        .output()
        .unwrap();
    stdout(&by_flag);

    // ONCE_SERVER beats the saved server too: here it points where nothing listens.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let nowhere = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let elsewhere = person
        .command(&["list"])
        .env("ONCE_SERVER", &nowhere)
        .output()
        .unwrap();
    assert!(
        stderr(&elsewhere).contains(&format!("cannot reach the once server at {nowhere}")),
        "{}",
        stderr(&elsewhere)
    );
}

// ---- 4. a server URL needs its scheme --------------------------------------------------------

#[test]
fn a_server_without_a_scheme_gets_the_url_it_probably_meant() {
    let person = Person::new();
    std::fs::write(person.home.path().join("x"), b"x").unwrap();
    let key = ApiToken::generate().reveal();
    let hint = "did you mean https://files.example.org?";

    let send = person.run(&["send", "x", "--server", "files.example.org", "--key", &key]);
    assert!(!send.status.success());
    assert!(stderr(&send).contains(hint), "{}", stderr(&send));

    let login = person.run(&["login", "files.example.org", "--key", &key]);
    assert!(!login.status.success());
    assert!(stderr(&login).contains(hint), "{}", stderr(&login));
    assert!(!person.config_file().exists());

    let file = person.config_file();
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, "server = \"files.example.org\"\n").unwrap();
    let list = person.run(&["list", "--key", &key]);
    assert!(!list.status.success());
    let message = stderr(&list);
    assert!(
        message.contains(&file.display().to_string()) && message.contains(hint),
        "{message}"
    );

    // A local server gets the http:// it most likely has.
    let local = person.run(&["list", "--server", "localhost:8080", "--key", &key]);
    assert!(
        stderr(&local).contains("did you mean http://localhost:8080?"),
        "{}",
        stderr(&local)
    );
}
