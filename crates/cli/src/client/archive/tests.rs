//! The archive module against real files in temporary directories, read back by three readers:
//! the `zip` crate, Python's `zipfile`, and our own `extract`.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use tempfile::TempDir;
use zip::ZipArchive;

use super::format::{self, dos_date_time};
use super::scan::archive_order;
use super::writer::CHUNK_LEN;
use super::{Plan, extract};

const NON_ASCII_NAME: &str = "Résumé – 報告.txt";
const ZIP64_END_LOCATOR: &[u8] = b"PK\x06\x07";

/// A folder with each kind of entry: nested directories, an empty file, an empty directory, a
/// non-ASCII name, a file of several chunks, an executable and 1,000 small files.
fn sample_tree(root: &Path) -> PathBuf {
    let top = root.join("project");
    fs::create_dir_all(top.join("docs/deep/deeper")).unwrap();
    fs::write(top.join("docs/deep/deeper/notes.txt"), b"nested\n").unwrap();
    fs::write(top.join("empty.txt"), b"").unwrap();
    fs::create_dir(top.join("nothing-here")).unwrap();
    fs::write(top.join(NON_ASCII_NAME), "Grüße, 世界\n").unwrap();
    let big: Vec<u8> = (0..5 * CHUNK_LEN / 2).map(|i| (i % 251) as u8).collect();
    fs::write(top.join("docs/big.bin"), big).unwrap();
    fs::write(top.join("run.sh"), b"#!/bin/sh\necho hi\n").unwrap();
    set_mode(&top.join("run.sh"), 0o750);
    fs::create_dir(top.join("many")).unwrap();
    for number in 0..1000 {
        let text = format!("file {number}\n").repeat(number % 7);
        fs::write(top.join(format!("many/{number:04}.txt")), text).unwrap();
    }
    top
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

fn mode_of(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Every path below `root` (directories with a trailing `/`) with the contents of the files.
fn tree(root: &Path) -> BTreeMap<String, Option<Vec<u8>>> {
    walkdir::WalkDir::new(root)
        .min_depth(1)
        .into_iter()
        .map(|found| {
            let found = found.unwrap();
            let relative = found.path().strip_prefix(root).unwrap().to_str().unwrap();
            if found.file_type().is_dir() {
                (format!("{relative}/"), None)
            } else {
                (relative.to_owned(), Some(fs::read(found.path()).unwrap()))
            }
        })
        .collect()
}

/// The archive through the blocking reader.
fn archive_bytes(plan: &Plan) -> Vec<u8> {
    let mut bytes = Vec::new();
    plan.reader_from(0).read_to_end(&mut bytes).unwrap();
    bytes
}

fn write_archive(plan: &Plan, path: &Path) {
    let mut file = io::BufWriter::new(File::create(path).unwrap());
    io::copy(&mut plan.reader_from(0), &mut file).unwrap();
    file.flush().unwrap();
}

/// Everything a stream yields, each chunk within the promised bound.
async fn collect(
    stream: impl futures::Stream<Item = io::Result<bytes::Bytes>>,
) -> io::Result<Vec<u8>> {
    let mut stream = std::pin::pin!(stream);
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        assert!(
            !chunk.is_empty() && chunk.len() <= CHUNK_LEN,
            "{}",
            chunk.len()
        );
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

/// Entry names as listed by the plan, in the archive's spelling.
fn planned_names(plan: &Plan) -> Vec<String> {
    plan.listing()
        .into_iter()
        .map(|entry| {
            if entry.is_dir {
                format!("{}/", entry.path)
            } else {
                entry.path
            }
        })
        .collect()
}

/// What the `zip` crate reads, after checking local headers against the central directory:
/// each name with its data (`None` for directories), CRC-32s checked by reading to the end.
fn read_with_zip_crate(path: &Path) -> Vec<(String, Option<Vec<u8>>)> {
    let mut archive = ZipArchive::new(File::open(path).unwrap()).unwrap();
    archive.validate_header_consistency().unwrap();
    (0..archive.len())
        .map(|index| {
            let mut entry = archive.by_index(index).unwrap();
            let name = entry.name().unwrap().into_owned();
            if entry.is_dir() {
                return (name, None);
            }
            let mut data = Vec::new();
            entry.read_to_end(&mut data).unwrap();
            (name, Some(data))
        })
        .collect()
}

/// What Python's `zipfile` makes of the archive.
#[derive(Debug, serde::Deserialize)]
struct PythonView {
    /// `testzip()`: the first entry whose CRC-32 or header is bad, if any.
    bad: Option<String>,
    entries: Vec<PythonEntry>,
}

#[derive(Debug, serde::Deserialize)]
struct PythonEntry {
    name: String,
    size: u64,
    header_offset: u64,
    utf8_flag: bool,
    /// The central directory record has a ZIP64 extra field.
    zip64: bool,
}

fn read_with_python(path: &Path) -> PythonView {
    const SCRIPT: &str = r#"
import json, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as archive:
    bad = archive.testzip()
    entries = [
        {
            "name": i.filename,
            "size": i.file_size,
            "header_offset": i.header_offset,
            "utf8_flag": bool(i.flag_bits & 0x800),
            "zip64": i.extra[:2] == b"\x01\x00",
        }
        for i in archive.infolist()
    ]
print(json.dumps({"bad": bad, "entries": entries}))
"#;
    let output = Command::new("python3")
        .arg("-c")
        .arg(SCRIPT)
        .arg(path)
        .output()
        .expect("python3 runs");
    assert!(
        output.status.success(),
        "python3 zipfile failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// The error and its causes on one line.
fn error_text(error: anyhow::Error) -> String {
    format!("{error:#}")
}

#[tokio::test]
async fn a_tree_round_trips_through_the_zip_crate_python_and_extract() {
    let work = TempDir::new().unwrap();
    let top = sample_tree(work.path());
    let loose = work.path().join("loose.txt");
    fs::write(&loose, b"beside the folder\n").unwrap();
    let plan = Plan::scan(&[top.clone(), loose.clone()]).unwrap();

    let streamed = collect(plan.stream()).await.unwrap();
    assert_eq!(streamed.len() as u64, plan.archive_size());
    assert_eq!(streamed, archive_bytes(&plan), "stream and reader agree");
    let archive = work.path().join("sent.zip");
    fs::write(&archive, &streamed).unwrap();

    let names = planned_names(&plan);
    assert_eq!(
        names.len(),
        1 + 6 + 1005,
        "loose.txt, 6 directories, 1,005 files in them"
    );
    assert_eq!(names[0], "loose.txt");
    assert_eq!(names[1], "project/");
    assert!(
        names.is_sorted_by(|a, b| archive_order(a, b).is_lt()),
        "{names:?}"
    );
    let docs = names
        .iter()
        .position(|name| name == "project/docs/")
        .unwrap();
    assert_eq!(
        names[docs + 1],
        "project/docs/big.bin",
        "a folder's contents follow it"
    );

    let from_zip_crate = read_with_zip_crate(&archive);
    assert_eq!(
        from_zip_crate
            .iter()
            .map(|(name, _)| name)
            .collect::<Vec<_>>(),
        names.iter().collect::<Vec<_>>()
    );
    for (name, data) in &from_zip_crate {
        let source = work.path().join(name);
        match data {
            None => assert!(source.is_dir(), "{name}"),
            Some(data) => assert_eq!(data, &fs::read(&source).unwrap(), "{name}"),
        }
    }

    let python = read_with_python(&archive);
    assert_eq!(python.bad, None);
    let python_names: Vec<&String> = python.entries.iter().map(|entry| &entry.name).collect();
    assert_eq!(python_names, names.iter().collect::<Vec<_>>());
    assert!(
        python.entries.iter().all(|entry| entry.utf8_flag),
        "every name is flagged UTF-8"
    );
    assert!(
        python.entries.iter().all(|entry| !entry.zip64),
        "no ZIP64 needed here"
    );
    let listed_sizes: Vec<u64> = plan.listing().iter().map(|entry| entry.size).collect();
    let python_sizes: Vec<u64> = python.entries.iter().map(|entry| entry.size).collect();
    assert_eq!(python_sizes, listed_sizes);

    let into = work.path().join("received");
    let report = extract(&archive, &into).unwrap();
    assert_eq!((report.files, report.directories), (1006, 6));
    assert_eq!(
        report.bytes,
        plan.listing().iter().map(|entry| entry.size).sum::<u64>()
    );
    assert_eq!(tree(&into.join("project")), tree(&top));
    assert_eq!(
        fs::read(into.join("loose.txt")).unwrap(),
        fs::read(&loose).unwrap()
    );
    assert_eq!(mode_of(&into.join("project/run.sh")), 0o750);
    for name in ["project/docs/deep/deeper/notes.txt", "project/nothing-here"] {
        let sent = fs::metadata(work.path().join(name))
            .unwrap()
            .modified()
            .unwrap();
        let received = fs::metadata(into.join(name)).unwrap().modified().unwrap();
        assert_eq!(
            format::unix_seconds(received),
            format::unix_seconds(sent),
            "{name}"
        );
    }
}

#[tokio::test]
async fn archive_size_is_the_number_of_bytes_streamed() {
    let work = TempDir::new().unwrap();
    let top = sample_tree(work.path());
    let empty_file = work.path().join("empty");
    fs::write(&empty_file, b"").unwrap();
    let empty_dir = work.path().join("hollow");
    fs::create_dir(&empty_dir).unwrap();
    let full = Plan::scan(std::slice::from_ref(&top)).unwrap();
    let plans = [
        Plan::scan(std::slice::from_ref(&empty_file)).unwrap(),
        Plan::scan(std::slice::from_ref(&empty_dir)).unwrap(),
        Plan::scan(&[empty_file.clone(), empty_dir.clone(), top.join("docs")]).unwrap(),
        full.with_zip64_threshold(0),
        full.with_zip64_threshold(100_000),
        full,
    ];
    for plan in plans {
        let streamed = collect(plan.stream()).await.unwrap();
        assert_eq!(
            streamed.len() as u64,
            plan.archive_size(),
            "{:?}",
            plan.listing()[0]
        );
        let archive = work.path().join("sized.zip");
        fs::write(&archive, &streamed).unwrap();
        assert_eq!(read_with_zip_crate(&archive).len(), plan.listing().len());
    }
}

#[test]
fn the_same_inputs_give_the_same_bytes_every_time() {
    let work = TempDir::new().unwrap();
    let top = sample_tree(work.path());
    let first = Plan::scan(std::slice::from_ref(&top)).unwrap();
    let second = Plan::scan(std::slice::from_ref(&top)).unwrap();
    let bytes = archive_bytes(&first);
    assert_eq!(bytes, archive_bytes(&first), "the same plan twice");
    assert_eq!(bytes, archive_bytes(&second), "a fresh scan");
    assert_eq!(first.fingerprint(), second.fingerprint());

    fs::write(top.join("empty.txt"), b"no longer empty").unwrap();
    let changed = Plan::scan(std::slice::from_ref(&top)).unwrap();
    assert_ne!(
        first.fingerprint(),
        changed.fingerprint(),
        "a changed size shows"
    );
}

#[tokio::test]
async fn streaming_from_an_offset_gives_the_rest_of_the_same_bytes() {
    let work = TempDir::new().unwrap();
    let top = sample_tree(work.path());
    fs::remove_dir_all(top.join("many")).unwrap();
    for plan in [
        Plan::scan(std::slice::from_ref(&top)).unwrap(),
        Plan::scan(std::slice::from_ref(&top))
            .unwrap()
            .with_zip64_threshold(0),
    ] {
        let full = archive_bytes(&plan);
        let size = plan.archive_size();
        let big = plan
            .entries
            .iter()
            .find(|entry| entry.name.ends_with("big.bin"))
            .unwrap();
        let offsets = [
            0,
            1,
            big.header_offset,
            big.header_offset + 40,
            big.header_offset + 3 * CHUNK_LEN as u64 / 2,
            plan.central_directory_offset - 1,
            plan.central_directory_offset,
            plan.central_directory_offset + 50,
            size - 22,
            size - 1,
            size,
            size + 10,
        ];
        for offset in offsets {
            let rest = collect(plan.stream_from(offset)).await.unwrap();
            let expected = &full[usize::try_from(offset).unwrap().min(full.len())..];
            assert!(
                rest == expected,
                "from {offset}: {} bytes, not {}",
                rest.len(),
                expected.len()
            );
        }
    }
}

/// Memory-backed where Linux offers it: creating 66,000 files there takes a tenth of the time
/// it takes on a disk.
fn temp_dir_for_many_files() -> TempDir {
    TempDir::new_in("/dev/shm")
        .or_else(|_| TempDir::new())
        .unwrap()
}

#[test]
fn more_than_65535_entries_are_listed_by_both_readers() {
    let work = temp_dir_for_many_files();
    let top = work.path().join("crowd");
    for folder in 0..66 {
        let folder = top.join(format!("{folder:02}"));
        fs::create_dir_all(&folder).unwrap();
        for number in 0..1000 {
            File::create(folder.join(format!("{number:03}"))).unwrap();
        }
    }
    let plan = Plan::scan(std::slice::from_ref(&top)).unwrap();
    let entry_count = 66_000 + 66 + 1;
    assert_eq!(plan.listing().len(), entry_count);
    let archive = work.path().join("crowd.zip");
    write_archive(&plan, &archive);
    let bytes = fs::read(&archive).unwrap();
    assert_eq!(bytes.len() as u64, plan.archive_size());
    assert_eq!(
        &bytes[bytes.len() - 42..bytes.len() - 38],
        ZIP64_END_LOCATOR
    );

    let archive_read = ZipArchive::new(File::open(&archive).unwrap()).unwrap();
    assert_eq!(archive_read.len(), entry_count);
    let python = read_with_python(&archive);
    assert_eq!(python.bad, None);
    assert_eq!(python.entries.len(), entry_count);
    assert_eq!(python.entries.last().unwrap().name, "crowd/65/999");
}

#[test]
fn forced_zip64_records_are_accepted_by_both_readers_and_extract() {
    let work = TempDir::new().unwrap();
    let top = sample_tree(work.path());
    let plan = Plan::scan(std::slice::from_ref(&top)).unwrap();
    // 0: every size, offset and count is ZIP64; 100,000: only big.bin's sizes and the offsets
    // past it, as for a real archive with one file over 4 GiB.
    for threshold in [0, 100_000] {
        let plan = plan.with_zip64_threshold(threshold);
        let archive = work.path().join(format!("zip64-{threshold}.zip"));
        write_archive(&plan, &archive);
        let bytes = fs::read(&archive).unwrap();
        assert_eq!(
            &bytes[bytes.len() - 42..bytes.len() - 38],
            ZIP64_END_LOCATOR
        );

        let from_zip_crate = read_with_zip_crate(&archive);
        assert_eq!(from_zip_crate.len(), plan.listing().len());
        let python = read_with_python(&archive);
        assert_eq!(python.bad, None, "threshold {threshold}");
        let zip64_seen: Vec<(u64, bool)> = python
            .entries
            .iter()
            .map(|entry| (entry.header_offset, entry.zip64))
            .collect();
        let zip64_planned: Vec<(u64, bool)> = plan
            .entries
            .iter()
            .map(|entry| {
                let zip64 = entry.size >= threshold || entry.header_offset >= threshold;
                (entry.header_offset, zip64)
            })
            .collect();
        assert_eq!(zip64_seen, zip64_planned, "threshold {threshold}");

        let into = work.path().join(format!("received-{threshold}"));
        extract(&archive, &into).unwrap();
        assert_eq!(tree(&into.join("project")), tree(&top));
    }
}

/// An archive written by the `zip` crate, as a hostile sender could make it.
fn crafted_archive(path: &Path, names: &[&str], symlink: Option<&str>) {
    use zip::write::SimpleFileOptions;
    let options = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    let mut writer = zip::ZipWriter::new(File::create(path).unwrap());
    for name in names {
        writer.start_file(*name, options).unwrap();
        writer.write_all(b"planted").unwrap();
    }
    if let Some(name) = symlink {
        writer.add_symlink(name, "/etc/passwd", options).unwrap();
    }
    writer.finish().unwrap();
}

#[test]
fn extract_refuses_entries_that_reach_outside_and_writes_nothing() {
    let work = TempDir::new().unwrap();
    let hostile = [
        "../evil",
        "fine/../../evil",
        "/tmp/evil",
        "C:/evil",
        "c:evil",
        "..\\evil",
        "fine\\..\\..\\evil",
        "./evil",
        "fine//evil",
    ];
    for name in hostile {
        let archive = work.path().join("hostile.zip");
        crafted_archive(&archive, &["harmless.txt", name], None);
        let into = work.path().join("into");
        let error = error_text(extract(&archive, &into).unwrap_err());
        assert!(
            error.contains(&name.escape_debug().to_string()),
            "{name}: {error}"
        );
        assert!(
            !into.exists(),
            "{name}: nothing may be written, not even harmless.txt"
        );
        let left: Vec<String> = tree(work.path()).into_keys().collect();
        assert_eq!(left, ["hostile.zip"], "{name}");
    }

    let archive = work.path().join("link.zip");
    crafted_archive(&archive, &["harmless.txt"], Some("passwd"));
    let into = work.path().join("into");
    let error = error_text(extract(&archive, &into).unwrap_err());
    assert!(error.contains("symbolic link"), "{error}");
    assert!(!into.exists());
}

#[test]
fn extract_refuses_to_go_through_a_symbolic_link_already_in_the_target() {
    let work = TempDir::new().unwrap();
    let outside = work.path().join("outside");
    fs::create_dir(&outside).unwrap();
    let into = work.path().join("into");
    fs::create_dir(&into).unwrap();
    std::os::unix::fs::symlink(&outside, into.join("dir")).unwrap();
    let archive = work.path().join("through.zip");
    crafted_archive(&archive, &["dir/planted.txt"], None);

    let error = error_text(extract(&archive, &into).unwrap_err());
    assert!(error.contains("symbolic link"), "{error}");
    assert!(fs::read_dir(&outside).unwrap().next().is_none());
}

#[test]
fn extract_removes_a_file_whose_data_fails_its_crc() {
    let work = TempDir::new().unwrap();
    let sent = work.path().join("letter.txt");
    fs::write(&sent, b"the archive's version").unwrap();
    let plan = Plan::scan(std::slice::from_ref(&sent)).unwrap();
    let mut bytes = archive_bytes(&plan);
    let data_start = format::local_header(&plan.entries[0], plan.zip64).len();
    bytes[data_start] ^= 0x20;
    let archive = work.path().join("damaged.zip");
    fs::write(&archive, &bytes).unwrap();

    let into = work.path().join("into");
    let error = error_text(extract(&archive, &into).unwrap_err());
    assert!(error.contains("letter.txt"), "{error}");
    assert!(
        !into.join("letter.txt").exists(),
        "no half-checked file is left"
    );
}

#[test]
fn extract_refuses_to_overwrite_an_existing_file() {
    let work = TempDir::new().unwrap();
    let sent = work.path().join("letter.txt");
    fs::write(&sent, b"the archive's version").unwrap();
    let archive = work.path().join("letter.zip");
    write_archive(&Plan::scan(std::slice::from_ref(&sent)).unwrap(), &archive);
    let into = work.path().join("into");
    fs::create_dir(&into).unwrap();
    fs::write(into.join("letter.txt"), b"mine").unwrap();

    let error = error_text(extract(&archive, &into).unwrap_err());
    assert!(
        error.contains(&into.join("letter.txt").display().to_string()),
        "{error}"
    );
    assert!(error.contains("already exists"), "{error}");
    assert_eq!(fs::read(into.join("letter.txt")).unwrap(), b"mine");
}

#[test]
fn scan_refuses_links_special_files_and_names_it_cannot_write() {
    use std::os::unix::ffi::OsStrExt;
    let work = TempDir::new().unwrap();
    let target = work.path().join("target.txt");
    fs::write(&target, b"pointed at").unwrap();

    let link = work.path().join("link");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let error = error_text(Plan::scan(std::slice::from_ref(&link)).unwrap_err());
    assert!(
        error.contains(&link.display().to_string()) && error.contains("symbolic link"),
        "{error}"
    );

    let folder = work.path().join("folder");
    fs::create_dir(&folder).unwrap();
    std::os::unix::fs::symlink(&target, folder.join("inner-link")).unwrap();
    let error = error_text(Plan::scan(std::slice::from_ref(&folder)).unwrap_err());
    assert!(
        error.contains("folder/inner-link") && error.contains("symbolic link"),
        "{error}"
    );

    let sockets = work.path().join("sockets");
    fs::create_dir(&sockets).unwrap();
    let _listener = std::os::unix::net::UnixListener::bind(sockets.join("control")).unwrap();
    let error = error_text(Plan::scan(std::slice::from_ref(&sockets)).unwrap_err());
    assert!(
        error.contains("sockets/control") && error.contains("socket"),
        "{error}"
    );

    let latin1 = work
        .path()
        .join(std::ffi::OsStr::from_bytes(b"caf\xe9.txt"));
    fs::write(&latin1, b"").unwrap();
    let error = error_text(Plan::scan(std::slice::from_ref(&latin1)).unwrap_err());
    assert!(
        error.contains("caf") && error.contains("not valid UTF-8"),
        "{error}"
    );

    let backslash = work.path().join("a\\b.txt");
    fs::write(&backslash, b"").unwrap();
    let error = error_text(Plan::scan(std::slice::from_ref(&backslash)).unwrap_err());
    assert!(
        error.contains("a\\b.txt") && error.contains("backslash"),
        "{error}"
    );

    let error = error_text(Plan::scan(&[]).unwrap_err());
    assert!(error.contains("nothing to archive"), "{error}");
}

#[test]
fn scan_refuses_two_inputs_with_the_same_archive_path() {
    let work = TempDir::new().unwrap();
    for folder in ["one", "two"] {
        fs::create_dir(work.path().join(folder)).unwrap();
        fs::write(work.path().join(folder).join("report.txt"), folder).unwrap();
    }
    let first = work.path().join("one/report.txt");
    let second = work.path().join("two/report.txt");
    let error = error_text(Plan::scan(&[first.clone(), second.clone()]).unwrap_err());
    assert!(error.contains(&first.display().to_string()), "{error}");
    assert!(error.contains(&second.display().to_string()), "{error}");
    assert!(error.contains("\"report.txt\""), "{error}");

    // A file and a folder of the same name clash too.
    fs::create_dir(work.path().join("two/one")).unwrap();
    let error = error_text(
        Plan::scan(&[work.path().join("one"), work.path().join("two/one")]).unwrap_err(),
    );
    assert!(error.contains("\"one\""), "{error}");
}

/// A planned archive of one file of `len` bytes, and that file.
fn planned_file(work: &TempDir, len: usize) -> (Plan, PathBuf) {
    let path = work.path().join("moving.bin");
    fs::write(&path, vec![7; len]).unwrap();
    (Plan::scan(std::slice::from_ref(&path)).unwrap(), path)
}

fn append_to(path: &Path) {
    let mut file = fs::OpenOptions::new().append(true).open(path).unwrap();
    file.write_all(b"more").unwrap();
}

fn cut_to_ten_bytes(path: &Path) {
    File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(10)
        .unwrap();
}

/// Rewritten in place at the same size: only the mtime tells.
fn touch_later(path: &Path) {
    let file = File::options().write(true).open(path).unwrap();
    file.set_modified(SystemTime::now() + Duration::from_secs(60))
        .unwrap();
}

#[tokio::test]
async fn a_file_that_changes_after_the_scan_fails_the_stream() {
    let work = TempDir::new().unwrap();
    for (change, expected) in [
        (
            append_to as fn(&Path),
            "changed size from 1000 to 1004 bytes",
        ),
        (cut_to_ten_bytes, "changed size from 1000 to 10 bytes"),
        (touch_later, "was modified"),
    ] {
        let (plan, path) = planned_file(&work, 1000);
        change(&path);
        let error = collect(plan.stream()).await.unwrap_err().to_string();
        assert!(
            error.contains("moving.bin") && error.contains(expected),
            "{error}"
        );
    }
}

#[test]
fn a_file_that_changes_while_it_is_read_fails_the_archive() {
    let work = TempDir::new().unwrap();
    let mut first_chunk = vec![0; CHUNK_LEN];
    for (change, expected) in [
        (append_to as fn(&Path), "grew while it was being read"),
        (cut_to_ten_bytes, "shrank while it was being read"),
        (touch_later, "was modified"),
    ] {
        let (plan, path) = planned_file(&work, 3 * CHUNK_LEN);
        let mut reader = plan.reader_from(0);
        reader.read_exact(&mut first_chunk).unwrap();
        change(&path);
        let error = io::copy(&mut reader, &mut io::sink())
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("moving.bin") && error.contains(expected),
            "{error}"
        );
        let again = reader.read(&mut first_chunk).unwrap_err().to_string();
        assert_eq!(again, error, "a failed archive stays failed");
    }
}

#[test]
fn dos_time_is_utc_in_two_second_steps_clamped_to_its_range() {
    let leap_day = UNIX_EPOCH + Duration::from_secs(1_709_214_359); // 2024-02-29 13:45:59 UTC
    assert_eq!(
        dos_date_time(leap_day),
        ((44 << 9) | (2 << 5) | 29, (13 << 11) | (45 << 5) | 29)
    );
    let earliest = ((1 << 5) | 1, 0);
    assert_eq!(dos_date_time(UNIX_EPOCH), earliest);
    assert_eq!(dos_date_time(UNIX_EPOCH - Duration::from_secs(1)), earliest);
    let year_2200 = UNIX_EPOCH + Duration::from_secs(7_258_118_400);
    assert_eq!(
        dos_date_time(year_2200),
        ((127 << 9) | (12 << 5) | 31, (23 << 11) | (59 << 5) | 29)
    );
    assert_eq!(
        format::unix_seconds(UNIX_EPOCH - Duration::from_millis(1500)),
        -2
    );
}
