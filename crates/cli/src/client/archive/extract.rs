//! Unpacking a received archive into a directory. Every entry's name is checked before anything
//! is written, so an archive that tries to reach outside the directory ("zip slip") or to
//! replace a file leaves no trace; then each entry is streamed to its file in 1 MiB pieces.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Write};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use zip::ZipArchive;
use zip::read::ZipFile;

use super::writer::CHUNK_LEN;

/// What [`extract`] wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct ExtractReport {
    pub(crate) files: u64,
    pub(crate) directories: u64,
    /// Bytes of file data.
    pub(crate) bytes: u64,
}

/// An entry that passed the checks, and where it goes.
struct Target {
    index: usize,
    name: String,
    relative: PathBuf,
    is_dir: bool,
}

/// Unpacks the ZIP archive at `archive` into `into` (created if missing), in constant memory
/// apart from the archive's central directory.
///
/// Refused before anything is written, with the entry's name: absolute paths, `..`, `.` or
/// empty components, drive prefixes, backslashes, NUL bytes, symbolic links, encrypted entries,
/// an entry that would replace an existing file or go through an existing symbolic link, and
/// archives whose local headers disagree with the central directory (duplicate names,
/// overlapping entries, hidden entries). A failure while writing (a CRC-32 mismatch, a full
/// disk) removes the file being written; files written before it stay.
///
/// Modification times are restored (the exact one from the extended timestamp when present,
/// else the MS-DOS time read as UTC, as our writer puts it), and so are file permission bits.
pub(crate) fn extract(archive: &Path, into: &Path) -> Result<ExtractReport> {
    let file = File::open(archive).with_context(|| format!("cannot open {}", archive.display()))?;
    let mut zip = ZipArchive::new(BufReader::new(file))
        .with_context(|| format!("{} is not a readable ZIP archive", archive.display()))?;
    zip.validate_header_consistency()
        .with_context(|| format!("{} is not a well-formed ZIP archive", archive.display()))?;

    let mut targets = Vec::with_capacity(zip.len());
    for index in 0..zip.len() {
        let entry = zip.by_index_data(index)?;
        let name = entry.name()?.into_owned();
        let relative = relative_path(&name).map_err(|reason| {
            anyhow::anyhow!(
                "{} holds the entry \"{}\", which {reason}; nothing was extracted",
                archive.display(),
                name.escape_debug()
            )
        })?;
        if entry.is_symlink() {
            bail!(
                "{} holds \"{name}\", a symbolic link; links are not extracted, so nothing was",
                archive.display()
            );
        }
        if entry.encrypted() {
            bail!(
                "{} holds \"{name}\", which is encrypted; nothing was extracted",
                archive.display()
            );
        }
        let is_dir = entry.is_dir();
        check_target(into, &relative, is_dir)?;
        targets.push(Target {
            index,
            name,
            relative,
            is_dir,
        });
    }

    fs::create_dir_all(into).with_context(|| format!("cannot create {}", into.display()))?;
    let mut report = ExtractReport::default();
    let mut directory_times = Vec::new();
    let mut buffer = vec![0; CHUNK_LEN];
    for target in &targets {
        let mut entry = zip.by_index(target.index)?;
        let path = into.join(&target.relative);
        let modified = modified_time(&entry);
        if target.is_dir {
            fs::create_dir_all(&path)
                .with_context(|| format!("cannot create {}", path.display()))?;
            directory_times.extend(modified.map(|modified| (path, modified)));
            report.directories += 1;
            continue;
        }
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        let mut output = create_new(&path)?;
        let written = match copy_entry(&mut entry, &mut output, &mut buffer) {
            Ok(written) => written,
            Err(error) => {
                drop(output);
                let _ = fs::remove_file(&path);
                return Err(error).with_context(|| {
                    format!("cannot extract \"{}\" to {}", target.name, path.display())
                });
            }
        };
        restore_permissions(&output, entry.unix_mode())
            .with_context(|| format!("cannot set the permissions of {}", path.display()))?;
        if let Some(modified) = modified {
            output
                .set_modified(modified)
                .with_context(|| format!("cannot set the time of {}", path.display()))?;
        }
        report.files += 1;
        report.bytes += written;
    }
    // Last, since writing into a directory moves its mtime.
    for (path, modified) in directory_times {
        set_directory_time(&path, modified)
            .with_context(|| format!("cannot set the time of {}", path.display()))?;
    }
    Ok(report)
}

/// The entry's name as a path below the target directory, or why it cannot be one.
fn relative_path(name: &str) -> Result<PathBuf, &'static str> {
    if name.is_empty() {
        return Err("has an empty name");
    }
    if name.contains('\\') {
        return Err("holds a backslash (a separator on Windows)");
    }
    if name.contains('\0') {
        return Err("holds a NUL byte");
    }
    if name.starts_with('/') {
        return Err("is an absolute path");
    }
    let components: Vec<&str> = name.strip_suffix('/').unwrap_or(name).split('/').collect();
    if has_drive_prefix(components[0]) {
        return Err("starts with a drive letter");
    }
    for component in &components {
        match *component {
            "" | "." => return Err("has an empty or `.` path component"),
            ".." => return Err("climbs out with `..`"),
            _ if cfg!(windows) && component.contains(':') => {
                return Err("holds a `:` (a drive or stream on Windows)");
            }
            _ => {}
        }
    }
    let relative: PathBuf = components.iter().collect();
    // The platform's own reading of the path must agree that it stays below the target.
    if !relative
        .components()
        .all(|component| matches!(component, Component::Normal(_)))
    {
        return Err("is not a plain relative path here");
    }
    Ok(relative)
}

fn has_drive_prefix(component: &str) -> bool {
    let bytes = component.as_bytes();
    bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':'
}

/// Refuses an entry that would replace an existing file, or reach it through an existing
/// symbolic link (which could point anywhere). Existing directories are used as they are.
fn check_target(into: &Path, relative: &Path, is_dir: bool) -> Result<()> {
    let mut path = into.to_path_buf();
    let mut components = relative.components().peekable();
    while let Some(component) = components.next() {
        path.push(component);
        let is_last = components.peek().is_none();
        let metadata = match fs::symlink_metadata(&path) {
            Ok(metadata) => metadata,
            // Nothing below a missing directory can exist.
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(error) => {
                return Err(error).with_context(|| format!("cannot check {}", path.display()));
            }
        };
        if metadata.is_symlink() {
            bail!(
                "{} is a symbolic link, and extracting through it could write outside {}; \
                 nothing was extracted",
                path.display(),
                into.display()
            );
        }
        if is_last && !is_dir {
            bail!(
                "{} already exists, and extracting does not overwrite files; \
                 nothing was extracted",
                path.display()
            );
        }
        if !metadata.is_dir() {
            bail!(
                "{} already exists and is not a directory; nothing was extracted",
                path.display()
            );
        }
    }
    Ok(())
}

fn create_new(path: &Path) -> Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|error| {
            if error.kind() == io::ErrorKind::AlreadyExists {
                anyhow::anyhow!(
                    "{} already exists (the archive names it twice?); not overwriting it",
                    path.display()
                )
            } else {
                anyhow::Error::new(error).context(format!("cannot create {}", path.display()))
            }
        })
}

/// Copies one entry's data; the `zip` reader checks the CRC-32 when it reaches the end.
fn copy_entry<R: Read>(
    entry: &mut ZipFile<'_, R>,
    output: &mut File,
    buffer: &mut [u8],
) -> io::Result<u64> {
    let mut written = 0;
    loop {
        let read = match entry.read(buffer) {
            Ok(0) => return Ok(written),
            Ok(read) => read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        };
        output.write_all(&buffer[..read])?;
        written += read as u64;
    }
}

fn modified_time<R: Read>(entry: &ZipFile<'_, R>) -> Option<SystemTime> {
    let extended = entry.extra_data_fields().find_map(|field| match field {
        zip::ExtraField::ExtendedTimestamp(timestamp) => timestamp.mod_time(),
        _ => None,
    });
    if let Some(seconds) = extended {
        return Some(UNIX_EPOCH + Duration::from_secs(seconds.into()));
    }
    let dos = entry.last_modified()?;
    let month = time::Month::try_from(dos.month()).ok()?;
    let date = time::Date::from_calendar_date(i32::from(dos.year()), month, dos.day()).ok()?;
    let time_of_day = time::Time::from_hms(dos.hour(), dos.minute(), dos.second()).ok()?;
    let seconds = time::PrimitiveDateTime::new(date, time_of_day)
        .assume_utc()
        .unix_timestamp();
    Some(UNIX_EPOCH + Duration::from_secs(u64::try_from(seconds).ok()?))
}

#[cfg(unix)]
fn restore_permissions(file: &File, unix_mode: Option<u32>) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let Some(mode) = unix_mode else {
        return Ok(());
    };
    // Permission bits only: set-user-ID and friends from a stranger's archive are not wanted.
    file.set_permissions(fs::Permissions::from_mode(mode & 0o777))
}

#[cfg(not(unix))]
fn restore_permissions(_file: &File, _unix_mode: Option<u32>) -> io::Result<()> {
    Ok(())
}

#[cfg(unix)]
fn set_directory_time(path: &Path, modified: SystemTime) -> io::Result<()> {
    File::open(path)?.set_modified(modified)
}

#[cfg(not(unix))]
fn set_directory_time(_path: &Path, _modified: SystemTime) -> io::Result<()> {
    Ok(())
}
