//! `once login SERVER`: checks a key against the server with one authenticated call and only
//! then saves server and key in the client config file, so the file never holds a pair that
//! does not work.

use std::io::{BufRead, IsTerminal};

use anyhow::{Context, Result, bail};
use once_api::ShareList;
use reqwest::{Method, StatusCode};

use super::config::{Client, Settings, config_path, error_from_response, write_config};
use super::link::parse_server;
use crate::LoginArgs;

pub async fn run(args: LoginArgs) -> Result<()> {
    let server = parse_server(&args.server)?;
    let path = config_path(args.client_config.as_deref())?;
    let key = match args.key {
        Some(key) => key,
        None => read_key()?,
    };
    let key = key.trim().to_owned();
    once_domain::ApiToken::parse(&key).map_err(|_| {
        anyhow::anyhow!(
            "the API key is malformed: expected KEYID.SECRET (keys are made on the server with \
             `once keys create`)"
        )
    })?;
    let client = Client::new(Settings {
        server: server.clone(),
        key: Some(key.clone()),
        config_path: Some(path.clone()),
    })?;
    // The cheapest call that needs a valid key; its JSON shape also shows this is a once
    // server and not some other site that answers 200.
    let check = client.api(
        Method::GET,
        &format!("{}?limit=1", once_api::routes::SHARES),
    )?;
    let response = client.send(check).await?;
    let status = response.status();
    if !status.is_success() {
        let what = if status == StatusCode::UNAUTHORIZED {
            format!("{server} does not accept this key; nothing was saved")
        } else {
            format!("cannot check the key on {server}; nothing was saved")
        };
        return Err(error_from_response(response).await.context(what));
    }
    response.json::<ShareList>().await.with_context(|| {
        format!("{server} answered, but not as a once server does; nothing was saved")
    })?;
    write_config(&path, &server, &key)?;
    let key_id = key.split_once('.').map_or(key.as_str(), |(id, _)| id);
    println!(
        "key {key_id} works on {server}; saved both to {} (readable by you only)",
        path.display()
    );
    // Flags and the environment come before the file: say so if they would hide what was
    // just saved.
    for variable in ["ONCE_SERVER", "ONCE_KEY"] {
        if std::env::var_os(variable).is_some_and(|value| !value.is_empty()) {
            eprintln!(
                "note: {variable} is set and takes precedence over {}",
                path.display()
            );
        }
    }
    Ok(())
}

/// The key from a prompt without echo when a person is at the terminal, else the first line of
/// standard input (`once login URL < key.txt`, or piped from a password manager). Keeping it
/// off the command line keeps it out of `ps` and the shell history.
fn read_key() -> Result<String> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        return rpassword::prompt_password("API key (KEYID.SECRET, not shown): ")
            .context("cannot read the key from the terminal");
    }
    let mut line = String::new();
    stdin
        .lock()
        .read_line(&mut line)
        .context("cannot read the key from standard input")?;
    if line.trim().is_empty() {
        bail!("no API key: pass --key, or give it on standard input or at the prompt");
    }
    Ok(line)
}
