//! How "first upload wins" is kept on a bucket where a presigned `PUT` can be replayed until
//! it expires: conditional writes (`If-None-Match: *`) or versioning, probed and settled at
//! start-up. Versioning also decides how an object is deleted: every version of it.

use reqwest::StatusCode;
use rusty_s3::Method;

use super::S3BlobStore;
use super::calls::{
    LISTING_CALL, SHORT_CALL, call_text, call_text_if_implemented, call_unless_missing, check,
    send, storage_error,
};
use super::xml::{ListVersionsEntry, ListVersionsResult, VersioningConfiguration};
use crate::BlobResult;
use rusty_s3::S3Action;

/// How the bucket keeps a ticket's first upload from being replaced by a replayed URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WriteGuard {
    /// Probe at start-up: conditional writes when the bucket refuses an overwrite, else
    /// versioning when it is enabled on the bucket, else refuse to start.
    #[default]
    Auto,
    /// The bucket refuses a second `PUT` under `If-None-Match: *`; trusted without probing.
    ConditionalWrites,
    /// The bucket keeps every version; the server records the first complete version of each
    /// object and serves only that one. Checked at start-up.
    Versioning,
}

/// One entry of `ListObjectVersions`, in the bucket's order (per key, newest first).
#[derive(Debug, Clone)]
struct ObjectVersion {
    version_id: String,
    delete_marker: bool,
}

impl S3BlobStore {
    /// Checks the bucket for the `requested` guard and puts the one in force; refuses when
    /// the bucket offers none.
    pub(super) async fn settle_write_guard(
        &mut self,
        requested: WriteGuard,
        bucket: &str,
    ) -> BlobResult<()> {
        let status = self.versioning_status().await?;
        let versioning_enabled = status.as_deref() == Some("Enabled");
        // A suspended bucket still holds old versions: deletes must remove them too.
        self.bucket_versioned = status.is_some();
        self.versioning = match requested {
            WriteGuard::ConditionalWrites => false,
            WriteGuard::Versioning => {
                if !versioning_enabled {
                    return Err(storage_error(format!(
                        "ONCE_S3_WRITE_GUARD=versioning, but versioning is not enabled on bucket \
                         {bucket:?}; enable it (PutBucketVersioning Status=Enabled) or use a \
                         store that honours If-None-Match"
                    )));
                }
                true
            }
            WriteGuard::Auto => {
                if self.refuses_overwrites().await? {
                    false
                } else if versioning_enabled {
                    true
                } else {
                    return Err(storage_error(format!(
                        "bucket {bucket:?} accepted a second PUT with If-None-Match: * and has \
                         no versioning, so a replayed upload URL could replace a file after it \
                         was published. Use a store that refuses overwrites (AWS S3, MinIO, \
                         R2, Ceph RGW, …) or enable versioning on the bucket \
                         (ONCE_S3_WRITE_GUARD=versioning)."
                    )));
                }
            }
        };
        Ok(())
    }

    /// The guard in force after start-up checks: never `Auto`.
    pub fn write_guard(&self) -> WriteGuard {
        if self.versioning {
            WriteGuard::Versioning
        } else {
            WriteGuard::ConditionalWrites
        }
    }

    /// The headers that make a write refused when the object exists, where that is the guard.
    pub(super) fn conditional_write_headers(&self) -> Vec<(&'static str, String)> {
        if self.versioning {
            Vec::new()
        } else {
            vec![("if-none-match", "*".to_owned())]
        }
    }

    /// The bucket's versioning status: `Enabled`, `Suspended` (versions written before are
    /// kept), or None for a bucket that never had versioning.
    async fn versioning_status(&self) -> BlobResult<Option<String>> {
        let request = self.signed_bucket(Method::Get, &[("versioning", "")]);
        // Stores without versioning may not know the call at all.
        let Some(text) =
            call_text_if_implemented(request, SHORT_CALL, "GetBucketVersioning").await?
        else {
            return Ok(None);
        };
        let parsed: VersioningConfiguration =
            quick_xml::de::from_str(&text).map_err(storage_error)?;
        Ok(parsed.status)
    }

    /// Every version and delete marker of exactly `object`, newest first.
    async fn list_versions(&self, object: &str) -> BlobResult<Vec<ObjectVersion>> {
        let mut found = Vec::new();
        let mut markers: Option<(String, String)> = None;
        loop {
            let mut query = vec![("versions", ""), ("prefix", object)];
            if let Some((key, version)) = &markers {
                query.push(("key-marker", key));
                query.push(("version-id-marker", version));
            }
            let request = self.signed_bucket(Method::Get, &query);
            let text = call_text(request, LISTING_CALL, "ListObjectVersions").await?;
            let listed: ListVersionsResult =
                quick_xml::de::from_str(&text).map_err(storage_error)?;
            for entry in listed.entries {
                let (entry, delete_marker) = match entry {
                    ListVersionsEntry::Version(entry) => (entry, false),
                    ListVersionsEntry::DeleteMarker(entry) => (entry, true),
                    ListVersionsEntry::Other => continue,
                };
                // The prefix also matches longer keys; only this object counts.
                if entry.key == object {
                    found.push(ObjectVersion {
                        version_id: entry.version_id,
                        delete_marker,
                    });
                }
            }
            match (
                listed.is_truncated,
                listed.next_key_marker,
                listed.next_version_id_marker,
            ) {
                (true, Some(key), Some(version)) => markers = Some((key, version)),
                _ => break,
            }
        }
        Ok(found)
    }

    /// The first complete version of `object`: the oldest one that is not a delete marker.
    pub(super) async fn first_version(&self, object: &str) -> BlobResult<Option<String>> {
        Ok(self
            .list_versions(object)
            .await?
            .into_iter()
            .rev()
            .find(|version| !version.delete_marker)
            .map(|version| version.version_id))
    }

    /// Writes a probe object twice under `If-None-Match: *`: true when the second is refused.
    async fn refuses_overwrites(&self) -> BlobResult<bool> {
        let probe = format!(
            "{}.once-probe-{}",
            self.prefix,
            once_domain::ShareId::generate()
        );
        let put = || {
            let mut action = self.bucket.put_object(Some(&self.credentials), &probe);
            let request = self.signed(&mut action, &[("if-none-match", "*".to_owned())]);
            send(request.body("probe"), SHORT_CALL)
        };
        check(put().await?, "probe PUT").await?;
        let second = put().await?.status();
        // On a versioned bucket both writes left versions: this removes them all.
        let _ = self.remove_object(&probe).await;
        Ok(second == StatusCode::PRECONDITION_FAILED)
    }

    /// Deletes `object`: on a versioned bucket every version and delete marker of it (a plain
    /// DELETE would only hide the bytes behind a new marker).
    pub(super) async fn remove_object(&self, object: &str) -> BlobResult<()> {
        if self.bucket_versioned {
            self.delete_every_version(object).await
        } else {
            self.delete_object(object, None).await
        }
    }

    /// Deletes every version and delete marker of `object`.
    async fn delete_every_version(&self, object: &str) -> BlobResult<()> {
        for version in self.list_versions(object).await? {
            self.delete_object(object, Some(&version.version_id))
                .await?;
        }
        Ok(())
    }

    async fn delete_object(&self, object: &str, version: Option<&str>) -> BlobResult<()> {
        let mut action = self.bucket.delete_object(Some(&self.credentials), object);
        if let Some(version) = version {
            action.query_mut().insert("versionId", version.to_owned());
        }
        call_unless_missing(self.signed(&mut action, &[]), SHORT_CALL, "DELETE")
            .await
            .map(|_| ())
    }
}
