//! The `once` binary: the server (`serve`, `reap`, `keys`) and the client (`login`, `send`,
//! `get`, `request`, `requests`, `status`, `revoke`, `audit`) in one executable, which also writes its
//! own manual pages and shell completions (`man`, `completions`).

mod client;
mod manual;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, CommandFactory, Parser, Subcommand};
use once_server::config::ServerArgs;

#[derive(Parser)]
#[command(
    name = "once",
    version,
    about = "Share a file once: one-time links on signed, expiring URLs",
    after_long_help = "Server settings (serve, reap, migrate, keys) come from flags, then \
        ONCE_* environment variables (ONCE_BIND for --bind, and so on), then the TOML file \
        named by --config or ONCE_CONFIG. The client commands read --server and --key, then \
        ONCE_SERVER and ONCE_KEY, then ~/.config/once/client.toml. Every setting is described \
        in docs/configuration.md, in /usr/share/doc/once/ where the Debian package is installed."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Where the client finds the server and its key: flags > `ONCE_SERVER`/`ONCE_KEY` > the client
/// config file (`$XDG_CONFIG_HOME/once/client.toml` or `~/.config/once/client.toml`, which
/// `once login` writes).
#[derive(Args, Debug, Clone)]
pub struct ClientArgs {
    /// Base URL of the once server, with its scheme: `https://host[:port][/path]` (or
    /// `http://` for a server without TLS) [default: http://127.0.0.1:8080]
    #[arg(long, env = "ONCE_SERVER", global = true)]
    pub server: Option<String>,
    /// API key, `KEYID.SECRET`
    #[arg(long, env = "ONCE_KEY", global = true, hide_env_values = true)]
    pub key: Option<String>,
    /// Client config file (TOML with `server` and `key`)
    #[arg(long, env = "ONCE_CLIENT_CONFIG", global = true)]
    pub client_config: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server
    Serve(ServerArgs),
    /// Delete served, expired, revoked and abandoned data once, then exit (for cron)
    Reap(ServerArgs),
    /// Apply pending database migrations, then exit (`serve` also applies them at start-up)
    Migrate(ServerArgs),
    /// Manage API keys (talks to the metadata store directly)
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Check an API key against a server, then save both in the client config file
    Login(LoginArgs),
    /// Upload a file and print its one-time link
    Send(SendArgs),
    /// Download a one-time link (resumes an interrupted download within the lease)
    Get(GetArgs),
    /// Create a one-time upload URL for someone else
    Request(RequestArgs),
    /// List your upload requests and the links of files uploaded to them
    Requests(ClientOnly),
    /// List your shares, newest first
    List(ListArgs),
    /// Show the owner's view of a share
    Status(ShareRef),
    /// Revoke a share now
    Revoke(ShareRef),
    /// Show the audit log of your shares, upload requests and key, oldest first
    ///
    /// One line per event: time, kind (share.created, upload.completed, share.claimed,
    /// share.consumed, claim.refused, …), client address, user agent, then the share, request
    /// or key it concerns and a detail such as an error code.
    Audit(AuditArgs),
    /// Print a shell completion script to standard output
    ///
    /// For example `once completions bash > ~/.local/share/bash-completion/completions/once`,
    /// or `once completions zsh > ~/.zfunc/_once`. The Debian package installs them already.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write the manual pages (`once.1`, `once-serve.1`, ...) into a folder; packages run it
    /// at build time, so the pages always match this binary
    #[command(hide = true)]
    Man {
        #[arg(long, value_name = "DIR")]
        out_dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create a key and print it (it is shown only once)
    Create {
        #[arg(long)]
        name: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// List keys (ids and names, never secrets)
    List {
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Revoke a key by id
    Revoke {
        id: String,
        #[command(flatten)]
        server: ServerArgs,
    },
}

#[derive(Args, Debug, Clone)]
pub struct ClientOnly {
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Args, Debug, Clone)]
pub struct LoginArgs {
    /// Base URL of the once server, e.g. `https://files.example.org`
    pub server: String,
    /// The API key, `KEYID.SECRET` [default: asked for without echo, or the first line of
    /// standard input when it is not a terminal; either keeps the key out of `ps`]
    #[arg(long)]
    pub key: Option<String>,
    /// Client config file to write [default: `$XDG_CONFIG_HOME/once/client.toml`, else
    /// `~/.config/once/client.toml`]
    #[arg(long, env = "ONCE_CLIENT_CONFIG")]
    pub client_config: Option<PathBuf>,
}

#[derive(Args, Debug, Clone)]
pub struct SendArgs {
    /// What to share: a file; several files or folders (sent as one ZIP archive); or `-` for
    /// standard input
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Upload to someone's one-time upload URL (`https://host/r/ID`) instead of creating a
    /// share of your own; needs no key
    #[arg(long, value_name = "URL")]
    pub to: Option<String>,
    /// How many recipients may download it
    #[arg(long, short = 'n', default_value_t = 1)]
    pub downloads: u32,
    /// How long the link lives, e.g. `1h`, `2d` [default: the server's]
    #[arg(long, value_parser = humantime::parse_duration)]
    pub expires: Option<Duration>,
    /// Name shown to the recipient [default: the file's name]
    #[arg(long)]
    pub name: Option<String>,
    /// A message for the recipient, shown on the link's landing page (up to 1000 characters;
    /// newlines and tabs allowed)
    #[arg(long, value_name = "TEXT")]
    pub note: Option<String>,
    /// Also print the link as a QR code
    #[arg(long)]
    pub qr: bool,
    /// No progress bar
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// Send the file as it is instead of encrypting it end to end: the server (and whoever
    /// runs or reads its storage) can then read the file, its name and the note, and the link
    /// works with curl
    #[arg(long)]
    pub no_encrypt: bool,
    /// Make a password part of the key, asked for without echo (twice); the recipient needs
    /// the link and the password
    #[arg(long, conflicts_with = "password_file")]
    pub password: bool,
    /// Like --password, with the password read from the first line of PATH (`-` reads
    /// standard input); for scripts
    #[arg(long, value_name = "PATH")]
    pub password_file: Option<PathBuf>,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Args, Debug, Clone)]
pub struct GetArgs {
    /// The link (`https://host/s/ID#KEY`, quotes and `<…>` around it are fine) or a bare share
    /// id; an encrypted share's link needs its `#KEY` part, except a file uploaded to your own
    /// encrypted request, which opens with the key `once request` kept
    pub link: String,
    /// Where to write the file [default: the sender's file name in the current directory;
    /// `-` for standard output]
    #[arg(long, short = 'o')]
    pub output: Option<PathBuf>,
    /// Unpack a ZIP archive (what `once send DIR` or `once send A B` makes) into the output
    /// folder [default: the current directory] instead of keeping the archive
    #[arg(long, short = 'x')]
    pub extract: bool,
    /// The password of a password-protected share, from the first line of PATH (`-` reads
    /// standard input) [default: asked for without echo when the share has one]
    #[arg(long, value_name = "PATH")]
    pub password_file: Option<PathBuf>,
    /// No progress bar
    #[arg(long, short = 'q')]
    pub quiet: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Args, Debug, Clone)]
pub struct RequestArgs {
    /// Largest file accepted, with its unit: `100MB`, `2GiB` (a bare number is refused)
    /// [default: the server's limit]
    #[arg(long, value_parser = client::units::parse_size)]
    pub max_size: Option<bytesize::ByteSize>,
    /// How long the upload URL stays open, e.g. `1d`
    #[arg(long, value_parser = humantime::parse_duration)]
    pub expires: Option<Duration>,
    /// Fix the file name of the upload (a plain request only: with encryption the name
    /// travels sealed, so use it with --no-encrypt)
    #[arg(long)]
    pub filename: Option<String>,
    /// How many downloads the resulting share allows
    #[arg(long, short = 'n')]
    pub downloads: Option<u32>,
    /// A message for the uploader, shown on the upload page (up to 1000 characters)
    #[arg(long, value_name = "TEXT")]
    pub note: Option<String>,
    /// Who asks, shown to the uploader (one line, up to 100 characters)
    #[arg(long, value_name = "NAME")]
    pub from: Option<String>,
    /// Also print the URL as a QR code
    #[arg(long)]
    pub qr: bool,
    /// Accept a plain upload (`curl -T` works, and the server can read the file) instead of
    /// one encrypted end to end to a key only this machine holds
    #[arg(long)]
    pub no_encrypt: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Args, Debug, Clone)]
pub struct ListArgs {
    /// Every share, not only the newest 100
    #[arg(long)]
    pub all: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Args, Debug, Clone)]
pub struct AuditArgs {
    /// Only the events of this share (its id or link)
    // A share id may begin with `-`.
    #[arg(long, value_name = "ID|LINK", allow_hyphen_values = true)]
    pub share: Option<String>,
    /// Only the events of this upload request (its id or upload link)
    // A request id may begin with `-` too.
    #[arg(long, value_name = "ID|LINK", allow_hyphen_values = true)]
    pub request: Option<String>,
    /// Only events since then: a duration back from now (`1h`, `7d`) or an RFC 3339 time
    #[arg(long, value_name = "WHEN")]
    pub since: Option<String>,
    /// Print one JSON array of the events (the API's objects) instead of lines
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Args, Debug, Clone)]
pub struct ShareRef {
    /// Share id or link
    pub share: String,
    #[command(flatten)]
    pub client: ClientArgs,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let result = runtime.block_on(run(cli.command));
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("once: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve(args) => once_server::serve(args).await,
        Command::Reap(args) => once_server::reap_once(args).await,
        Command::Migrate(args) => once_server::migrate(args).await,
        Command::Keys { command } => match command {
            KeysCommand::Create { name, server } => {
                let token = once_server::keys::create(server, &name).await?;
                println!("{token}");
                eprintln!("Store this key now: it is not shown again.");
                Ok(())
            }
            KeysCommand::List { server } => {
                for key in once_server::keys::list(server).await? {
                    let revoked = key
                        .revoked_at
                        .map(|at| format!("  revoked {at}"))
                        .unwrap_or_default();
                    println!(
                        "{}  {}  created {}{}",
                        key.id, key.name, key.created_at, revoked
                    );
                }
                Ok(())
            }
            KeysCommand::Revoke { id, server } => once_server::keys::revoke(server, &id).await,
        },
        Command::Login(args) => client::login::run(args).await,
        Command::Send(args) => client::send::run(args).await,
        Command::Get(args) => client::get::run(args).await,
        Command::Request(args) => client::request::run(args).await,
        Command::Requests(args) => client::request::list(args).await,
        Command::List(args) => client::share::list(args).await,
        Command::Status(args) => client::share::status(args).await,
        Command::Revoke(args) => client::share::revoke(args).await,
        Command::Audit(args) => client::audit::run(args).await,
        Command::Completions { shell } => {
            manual::write_completions(Cli::command(), shell, &mut std::io::stdout().lock())
        }
        Command::Man { out_dir } => manual::write_man_pages(Cli::command(), &out_dir),
    }
}
