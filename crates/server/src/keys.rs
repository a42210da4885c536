//! `once keys …`: key administration straight on the metadata store (no HTTP, no key needed),
//! for whoever can read the server's configuration and data directory.

use once_domain::{KeyId, KeyRecord};

use crate::config::ServerArgs;
use crate::startup::{Role, load};

pub async fn create(args: ServerArgs, name: &str) -> anyhow::Result<String> {
    let (_, service) = load(&args, "warn", Role::Maintenance).await?;
    let token = service
        .create_key(name, once_domain::now())
        .await
        .map_err(|error| anyhow::anyhow!("cannot create the key: {error}"))?;
    Ok(token.reveal())
}

pub async fn list(args: ServerArgs) -> anyhow::Result<Vec<KeyRecord>> {
    let (_, service) = load(&args, "warn", Role::Maintenance).await?;
    Ok(service.meta.list_keys().await?)
}

pub async fn revoke(args: ServerArgs, id: &str) -> anyhow::Result<()> {
    let (_, service) = load(&args, "warn", Role::Maintenance).await?;
    let id = KeyId::parse(id)
        .map_err(|_| anyhow::anyhow!("a key id is 16 lowercase hexadecimal characters"))?;
    anyhow::ensure!(
        service.meta.revoke_key(&id, once_domain::now()).await?,
        "no active key {id}"
    );
    println!("revoked {id}");
    Ok(())
}
