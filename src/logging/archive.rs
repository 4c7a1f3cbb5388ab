//! The files of one log on disk, and the moves between them: shifting numbered backups at
//! rotation, gzip archival, and the retention sweep.
//!
//! For a log named `dreamos.jsonl` the directory holds:
//! - `dreamos.jsonl` — the current file, the only one ever written to;
//! - `dreamos.jsonl.1` … `dreamos.jsonl.<keep>` — numbered backups, `.1` the newest;
//! - `dreamos.jsonl.<YYYYMMDDTHHMMSS.mmmZ>[-n].gz` — archives, named by the time of their
//!   newest line (the backup's modification time, which the archive keeps as its own);
//! - `*.gz.tmp` — an archive being written; renamed into place only when complete, so a
//!   crash never leaves a half archive under a final name.
//!
//! A backup pushed past `keep` is archived, never deleted, which is why rotation loses no
//! line. Only archives are ever deleted, and only once older than `delete_after`.

use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use flate2::write::GzEncoder;
use flate2::Compression;

/// Serialises every rename, archive and delete in log directories within this process, so
/// a sweep never archives a backup that a rotation is moving at the same moment. Writers
/// take it only while rotating, after their own lock (always in that order).
static DIR_LOCK: Mutex<()> = Mutex::new(());

pub(crate) fn dir_lock() -> MutexGuard<'static, ()> {
    // A panic while holding `()` leaves nothing inconsistent; keep going.
    DIR_LOCK
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A `*.gz.tmp` older than this is left over from a crash (an archive takes seconds).
const STALE_TMP: Duration = Duration::from_secs(3600);

/// How one file in a log directory relates to the log named `name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LogFileKind {
    Current,
    Backup(u32),
    Archive,
    Temp,
}

pub(crate) fn classify(name: &str, file_name: &str) -> Option<LogFileKind> {
    if file_name == name {
        return Some(LogFileKind::Current);
    }
    let rest = file_name.strip_prefix(name)?.strip_prefix('.')?;
    if !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit()) {
        return rest.parse().ok().map(LogFileKind::Backup);
    }
    if rest.ends_with(".gz.tmp") {
        return Some(LogFileKind::Temp);
    }
    rest.ends_with(".gz").then_some(LogFileKind::Archive)
}

/// One file of a log, with what a sweep or a search needs to know about it.
#[derive(Debug, Clone)]
pub(crate) struct LogFile {
    pub path: PathBuf,
    pub kind: LogFileKind,
    pub modified: SystemTime,
}

/// Lists the files of log `name` in `dir`, oldest content first: archives by time, then
/// backups from highest number to `.1`, then the current file. A missing directory is an
/// empty log.
pub(crate) fn list(dir: &Path, name: &str) -> io::Result<Vec<LogFile>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry?;
        let file_name = entry.file_name();
        let Some(kind) = file_name.to_str().and_then(|f| classify(name, f)) else {
            continue;
        };
        // A file rotated away between listing and stat is simply no longer ours to list.
        let Ok(meta) = entry.metadata() else { continue };
        let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
        files.push(LogFile {
            path: entry.path(),
            kind,
            modified,
        });
    }
    files.sort_by(|a, b| {
        let rank = |f: &LogFile| match f.kind {
            LogFileKind::Temp => (0, 0),
            LogFileKind::Archive => (1, 0),
            LogFileKind::Backup(n) => (2, u32::MAX - n),
            LogFileKind::Current => (3, 0),
        };
        (rank(a), a.modified, &a.path).cmp(&(rank(b), b.modified, &b.path))
    });
    Ok(files)
}

pub(crate) fn backup_path(dir: &Path, name: &str, n: usize) -> PathBuf {
    dir.join(format!("{name}.{n}"))
}

/// Rotation's file moves; the caller holds its writer lock and [`dir_lock`] and has closed
/// the current file. `.keep` is archived, each `.n` becomes `.n+1`, the current file
/// becomes `.1` (with `keep == 0` the current file is archived directly).
///
/// A rename never replaces an existing file: if a destination is still there (say its
/// archive failed) rotation stops with an error and the writer keeps appending to the
/// current file, over size but complete.
pub(crate) fn shift_backups(dir: &Path, name: &str, keep: usize) -> io::Result<()> {
    let current = dir.join(name);
    if keep == 0 {
        return archive_file(&current, dir, name).map(|_| ());
    }
    let last = backup_path(dir, name, keep);
    if last.exists() {
        archive_file(&last, dir, name)?;
    }
    for n in (1..keep).rev() {
        let from = backup_path(dir, name, n);
        if from.exists() {
            rename_new(&from, &backup_path(dir, name, n + 1))?;
        }
    }
    rename_new(&current, &backup_path(dir, name, 1))
}

fn rename_new(from: &Path, to: &Path) -> io::Result<()> {
    if to.exists() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} already exists; not overwriting it", to.display()),
        ));
    }
    fs::rename(from, to)
}

/// Compresses `src` to a new archive of log `name` and removes `src`. The archive is
/// written to `<final>.tmp`, synced, then renamed; it carries `src`'s modification time so
/// retention counts from its newest line, not from when it was compressed.
pub(crate) fn archive_file(src: &Path, dir: &Path, name: &str) -> io::Result<PathBuf> {
    let modified = fs::metadata(src)?.modified()?;
    let stamp = DateTime::<Utc>::from(modified).format("%Y%m%dT%H%M%S%.3fZ");
    let mut target = dir.join(format!("{name}.{stamp}.gz"));
    let mut n = 1;
    while target.exists() {
        target = dir.join(format!("{name}.{stamp}-{n}.gz"));
        n += 1;
    }
    let tmp = target.with_extension("gz.tmp");
    let result = (|| {
        let mut input = BufReader::new(File::open(src)?);
        // Fast compression: this runs under the writers' lock, and log text compresses
        // well at any level.
        let out = crate::private_fs::options()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        let mut gz = GzEncoder::new(BufWriter::new(out), Compression::fast());
        io::copy(&mut input, &mut gz)?;
        let file = gz.finish()?.into_inner().map_err(|e| e.into_error())?;
        file.set_modified(modified)?;
        file.sync_all()?;
        fs::rename(&tmp, &target)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    fs::remove_file(src)?;
    Ok(target)
}

/// What a sweep did, for the caller to log or assert on.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SweepReport {
    /// Archives created (from backups past `keep` or older than `archive_after`).
    pub archived: Vec<PathBuf>,
    /// Archives (and stale temporary files) deleted.
    pub deleted: Vec<PathBuf>,
}

/// Retention settings, copied out of `LogSettings` so writers need not hold all of it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Retention {
    pub keep: usize,
    pub archive_after: Duration,
    pub delete_after: Duration,
}

/// Sweeps log `name` in `dir` as of `now`; the caller holds [`dir_lock`]. Keeps going past
/// a file it cannot handle and returns the first error after doing the rest.
pub(crate) fn sweep_log(
    dir: &Path,
    name: &str,
    retention: Retention,
    now: SystemTime,
    report: &mut SweepReport,
) -> io::Result<()> {
    let age = |file: &LogFile| now.duration_since(file.modified).unwrap_or(Duration::ZERO);
    let mut first_error = None;
    for file in list(dir, name)? {
        let result = match file.kind {
            LogFileKind::Backup(n)
                if n as usize > retention.keep || age(&file) >= retention.archive_after =>
            {
                archive_file(&file.path, dir, name).map(|gz| report.archived.push(gz))
            }
            LogFileKind::Archive if age(&file) >= retention.delete_after => {
                fs::remove_file(&file.path).map(|()| report.deleted.push(file.path.clone()))
            }
            LogFileKind::Temp if age(&file) >= STALE_TMP => {
                fs::remove_file(&file.path).map(|()| report.deleted.push(file.path.clone()))
            }
            _ => Ok(()),
        };
        match result {
            Err(e) if e.kind() != io::ErrorKind::NotFound && first_error.is_none() => {
                first_error = Some(e)
            }
            _ => {}
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// Writes `bytes` as a file with the given modification time (tests build aged logs).
#[cfg(test)]
pub(crate) fn write_aged(path: &Path, bytes: &[u8], modified: SystemTime) -> io::Result<()> {
    use std::io::Write;
    let mut file = File::create(path)?;
    file.write_all(bytes)?;
    file.set_modified(modified)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logging::testdir::TestDir;
    use flate2::read::MultiGzDecoder;
    use std::io::Read;

    const DAY: Duration = Duration::from_secs(86_400);

    fn retention() -> Retention {
        Retention {
            keep: 2,
            archive_after: 7 * DAY,
            delete_after: 30 * DAY,
        }
    }

    fn gunzip(path: &Path) -> String {
        let mut text = String::new();
        MultiGzDecoder::new(File::open(path).expect("open archive"))
            .read_to_string(&mut text)
            .expect("gunzip");
        text
    }

    #[test]
    fn classifies_only_this_logs_files() {
        let c = |f| classify("dreamos.jsonl", f);
        assert_eq!(c("dreamos.jsonl"), Some(LogFileKind::Current));
        assert_eq!(c("dreamos.jsonl.12"), Some(LogFileKind::Backup(12)));
        assert_eq!(
            c("dreamos.jsonl.20250101T000000.000Z-3.gz"),
            Some(LogFileKind::Archive)
        );
        assert_eq!(c("dreamos.jsonl.x.gz.tmp"), Some(LogFileKind::Temp));
        assert_eq!(c("devlog.jsonl.1"), None);
        assert_eq!(c("dreamos.jsonl.old"), None);
        assert_eq!(c("dreamos.jsonl."), None);
    }

    #[test]
    fn shift_archives_the_oldest_backup_and_renumbers_the_rest() {
        let dir = TestDir::new();
        for (file, text) in [("l", "now\n"), ("l.1", "one\n"), ("l.2", "two\n")] {
            fs::write(dir.join(file), text).expect("write");
        }
        shift_backups(dir.path(), "l", 2).expect("shift");
        assert!(!dir.join("l").exists());
        assert_eq!(fs::read_to_string(dir.join("l.1")).expect("l.1"), "now\n");
        assert_eq!(fs::read_to_string(dir.join("l.2")).expect("l.2"), "one\n");
        let archives: Vec<_> = list(dir.path(), "l")
            .expect("list")
            .into_iter()
            .filter(|f| f.kind == LogFileKind::Archive)
            .collect();
        assert_eq!(archives.len(), 1);
        assert_eq!(gunzip(&archives[0].path), "two\n");
    }

    #[test]
    fn sweep_archives_old_backups_then_deletes_old_archives() {
        let dir = TestDir::new();
        let now = SystemTime::now();
        write_aged(&dir.join("l.1"), b"fresh\n", now - DAY).expect("l.1");
        write_aged(&dir.join("l.2"), b"old\n", now - 8 * DAY).expect("l.2");
        write_aged(&dir.join("l.3"), b"past keep\n", now).expect("l.3");
        write_aged(&dir.join("l.x.gz.tmp"), b"crash", now - 2 * DAY).expect("tmp");
        let mut report = SweepReport::default();
        sweep_log(dir.path(), "l", retention(), now, &mut report).expect("sweep");
        assert_eq!(report.archived.len(), 2, "{report:?}");
        assert_eq!(report.deleted, vec![dir.join("l.x.gz.tmp")]);
        assert!(dir.join("l.1").exists());
        let texts: Vec<String> = report.archived.iter().map(|p| gunzip(p)).collect();
        assert!(texts.contains(&"old\n".to_owned()) && texts.contains(&"past keep\n".to_owned()));
        // The archives keep their backups' ages: 31 days on both are deleted, and the
        // once-fresh .1 has been archived in the meantime.
        let mut later = SweepReport::default();
        sweep_log(dir.path(), "l", retention(), now + 31 * DAY, &mut later).expect("sweep");
        assert_eq!(later.archived.len(), 1);
        assert_eq!(later.deleted.len(), 2);
        let left = list(dir.path(), "l").expect("list");
        assert_eq!(left.len(), 1);
        assert_eq!(gunzip(&left[0].path), "fresh\n");
    }

    #[test]
    fn rename_never_overwrites() {
        let dir = TestDir::new();
        fs::write(dir.join("l"), "a\n").expect("write");
        fs::write(dir.join("l.1"), "b\n").expect("write");
        assert!(rename_new(&dir.join("l"), &dir.join("l.1")).is_err());
        assert_eq!(fs::read_to_string(dir.join("l.1")).expect("read"), "b\n");
    }
}
