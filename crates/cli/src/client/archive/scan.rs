//! Turning the paths given to `once send` into archive entries: what each is, its name in the
//! archive, and the metadata the headers need. Only metadata is read here, never file data.

use std::cmp::Ordering;
use std::fs::{self, File, Metadata};
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result, bail};

use super::Entry;

/// A header's name length field has 16 bits.
const LONGEST_NAME: usize = u16::MAX as usize;

/// Every entry the inputs make, sorted so that a directory comes just before its contents.
pub(super) fn entries(inputs: &[PathBuf]) -> Result<Vec<Entry>> {
    if inputs.is_empty() {
        bail!("nothing to archive: no files or directories were given");
    }
    let mut entries = Vec::new();
    for input in inputs {
        add_input(input, &mut entries)?;
    }
    entries.sort_by(|a, b| archive_order(&a.name, &b.name));
    if let Some(pair) = entries
        .windows(2)
        .find(|pair| archive_order(&pair[0].name, &pair[1].name) == Ordering::Equal)
    {
        bail!(
            "{} and {} would both be \"{}\" in the archive; rename one or send them separately",
            pair[0].source.display(),
            pair[1].source.display(),
            pair[0].name.trim_end_matches('/'),
        );
    }
    Ok(entries)
}

fn add_input(input: &Path, entries: &mut Vec<Entry>) -> Result<()> {
    let metadata =
        fs::symlink_metadata(input).with_context(|| format!("cannot read {}", input.display()))?;
    let top_name = top_level_name(input)?;
    if !metadata.is_dir() {
        entries.push(entry(input, top_name, &metadata)?);
        return Ok(());
    }
    for found in walkdir::WalkDir::new(input).follow_links(false) {
        let found = found.with_context(|| format!("cannot read inside {}", input.display()))?;
        let relative = found
            .path()
            .strip_prefix(input)
            .expect("walkdir yields paths under its root");
        let mut name = top_name.clone();
        for component in relative.components() {
            name.push('/');
            name.push_str(&name_part(found.path(), component.as_os_str())?);
        }
        let metadata = found
            .metadata()
            .with_context(|| format!("cannot read {}", found.path().display()))?;
        entries.push(entry(found.path(), name, &metadata)?);
    }
    Ok(())
}

/// The input's own name is the top of its part of the archive, as `zip -r` does; `.` and `..`
/// take the name of the directory they stand for.
fn top_level_name(input: &Path) -> Result<String> {
    let named = match input.components().next_back() {
        Some(Component::Normal(_)) => input.to_path_buf(),
        _ => fs::canonicalize(input)
            .with_context(|| format!("cannot resolve {}", input.display()))?,
    };
    let Some(name) = named.file_name() else {
        bail!(
            "{} has no name to put in the archive; name the files inside it instead",
            input.display()
        );
    };
    name_part(input, name)
}

/// One path component as it goes into the archive: UTF-8 (the headers say so) and without the
/// backslash that Windows tools, and our own extraction, take for a separator.
fn name_part(path: &Path, part: &std::ffi::OsStr) -> Result<String> {
    let Some(part) = part.to_str() else {
        bail!(
            "{} has a name that is not valid UTF-8; rename it to send it",
            path.display()
        );
    };
    if part.contains('\\') {
        bail!(
            "{} has a backslash in its name, which unpacks as a folder separator on Windows; \
             rename it to send it",
            path.display()
        );
    }
    Ok(part.to_owned())
}

fn entry(source: &Path, mut name: String, metadata: &Metadata) -> Result<Entry> {
    let file_type = metadata.file_type();
    if file_type.is_symlink() {
        bail!(
            "{} is a symbolic link; links are not followed, so send what it points to instead",
            source.display()
        );
    }
    let is_dir = file_type.is_dir();
    if !is_dir && !file_type.is_file() {
        bail!(
            "{} is a {}; only regular files and directories can be archived",
            source.display(),
            special_kind(metadata)
        );
    }
    if is_dir {
        name.push('/');
    } else {
        // Found now rather than halfway through an upload.
        File::open(source).with_context(|| format!("cannot read {}", source.display()))?;
    }
    if name.len() > LONGEST_NAME {
        bail!(
            "{} makes a name of {} bytes in the archive, more than ZIP allows ({LONGEST_NAME})",
            source.display(),
            name.len()
        );
    }
    Ok(Entry {
        name,
        source: source.to_path_buf(),
        is_dir,
        size: if is_dir { 0 } else { metadata.len() },
        modified: metadata.modified().with_context(|| {
            format!("cannot read the modification time of {}", source.display())
        })?,
        unix_mode: unix_mode(metadata),
        header_offset: 0,
    })
}

/// Component by component, so `a/` and everything in it come before `a.txt` (plain string order
/// would put `a.txt` first, since `.` sorts before `/`).
pub(super) fn archive_order(a: &str, b: &str) -> Ordering {
    let a = a.trim_end_matches('/').split('/');
    let b = b.trim_end_matches('/').split('/');
    a.cmp(b)
}

#[cfg(unix)]
fn unix_mode(metadata: &Metadata) -> u32 {
    use std::os::unix::fs::MetadataExt;
    metadata.mode()
}

#[cfg(not(unix))]
fn unix_mode(metadata: &Metadata) -> u32 {
    if metadata.is_dir() {
        0o040_755
    } else {
        0o100_644
    }
}

#[cfg(unix)]
fn special_kind(metadata: &Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let file_type = metadata.file_type();
    if file_type.is_fifo() {
        "named pipe (FIFO)"
    } else if file_type.is_socket() {
        "socket"
    } else if file_type.is_block_device() || file_type.is_char_device() {
        "device"
    } else {
        "special file"
    }
}

#[cfg(not(unix))]
fn special_kind(_metadata: &Metadata) -> &'static str {
    "special file"
}
