//! Where a download lands: the sender's file name (re-validated), made unique the way
//! browsers do, and the `.part` / `.part.once` names beside it.

use std::path::{Path, PathBuf};

use once_domain::Filename;
use reqwest::Response;
use reqwest::header::CONTENT_DISPOSITION;

use super::record::SIDECAR_SUFFIX;

/// The sender's file name from `Content-Disposition`, re-validated so a server can never
/// choose a path.
pub(super) fn name_from_response(response: &Response) -> Option<Filename> {
    response
        .headers()
        .get(CONTENT_DISPOSITION)
        .and_then(|value| value.to_str().ok())
        .and_then(Filename::from_content_disposition)
}

/// `name`, or the first of `name (1).ext`, `name (2).ext`, … (as browsers do) for which
/// neither the file nor an unfinished download of it exists.
pub(super) fn free_path(dir: Option<&Path>, name: &str) -> PathBuf {
    let at = |name: &str| dir.map_or_else(|| PathBuf::from(name), |dir| dir.join(name));
    let taken = |path: &Path| {
        [
            path.to_owned(),
            with_suffix(path, ".part"),
            with_suffix(path, SIDECAR_SUFFIX),
        ]
        .iter()
        .any(|p| p.symlink_metadata().is_ok())
    };
    let first = at(name);
    if !taken(&first) {
        return first;
    }
    (1u32..)
        .map(|n| at(&numbered(name, n)))
        .find(|path| !taken(path))
        .expect("some numbered name is free")
}

/// `report (2).pdf`; compound archive extensions stay together: `data (2).tar.gz`.
fn numbered(name: &str, n: u32) -> String {
    let lower = name.to_ascii_lowercase();
    let compound = [".tar.gz", ".tar.bz2", ".tar.xz", ".tar.zst"]
        .iter()
        .find(|ext| lower.ends_with(*ext) && lower.len() > ext.len());
    let split = match compound {
        Some(ext) => Some(name.len() - ext.len()),
        // A leading dot is a hidden file, not an extension.
        None => name.rfind('.').filter(|&i| i > 0),
    };
    match split {
        Some(i) => format!("{} ({n}){}", &name[..i], &name[i..]),
        None => format!("{name} ({n})"),
    }
}

pub(super) fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut text = path.as_os_str().to_owned();
    text.push(suffix);
    PathBuf::from(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbered_names_keep_the_extension() {
        assert_eq!(numbered("report.pdf", 1), "report (1).pdf");
        assert_eq!(numbered("data.tar.gz", 2), "data (2).tar.gz");
        assert_eq!(numbered("README", 3), "README (3)");
        assert_eq!(numbered(".bashrc", 1), ".bashrc (1)");
        assert_eq!(numbered("a.b.c", 1), "a.b (1).c");
    }

    #[test]
    fn free_path_skips_existing_files_and_unfinished_downloads() {
        let dir = std::env::temp_dir().join(format!("once-get-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert_eq!(free_path(Some(&dir), "f.txt"), dir.join("f.txt"));
        std::fs::write(dir.join("f.txt"), b"").unwrap();
        std::fs::write(dir.join("f (1).txt.part"), b"").unwrap();
        assert_eq!(free_path(Some(&dir), "f.txt"), dir.join("f (2).txt"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
