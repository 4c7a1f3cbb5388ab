//! A log file that rotates by size: the sink behind the JSON file log and the devlog.
//!
//! Every line is appended with one `write` on a file opened in append mode, under one
//! mutex; rotation runs under the same mutex. So a line is either wholly in the file that
//! was current when it was written or not written at all, and the rotation that follows
//! moves that whole file: no line is lost or split, however many threads write.
//!
//! Nothing is opened until the first line: a one-shot script that never logs to the file
//! never touches the disk, and creating the sink costs no system call.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::SystemTime;

use super::archive::{self, Retention, SweepReport};
use super::LogSettings;

/// A size-rotated, append-only JSON-lines file (see the module docs).
#[derive(Debug)]
pub struct RotatingFile {
    dir: PathBuf,
    /// File name inside `dir`, e.g. `dreamos.jsonl`; backups and archives extend it.
    name: String,
    /// Rotate before a line that would take the file past this many bytes (0: never).
    max_size: u64,
    retention: Retention,
    /// The open file and its size; `None` until the first line, and after a rotation or a
    /// failed write (the next line reopens, so a deleted directory is recreated).
    state: Mutex<Option<OpenFile>>,
    /// Set after a failure has been reported, cleared by the next success: one message on
    /// stderr per outage rather than one per line.
    reported: AtomicBool,
}

#[derive(Debug)]
struct OpenFile {
    file: File,
    /// Bytes in the file, counted rather than asked for so a write costs one system call.
    size: u64,
}

impl RotatingFile {
    /// Describes the sink; touches nothing on disk.
    pub fn new(dir: impl Into<PathBuf>, name: &str, settings: &LogSettings) -> RotatingFile {
        RotatingFile {
            dir: dir.into(),
            name: name.to_owned(),
            max_size: settings.max_size,
            retention: Retention {
                keep: settings.keep,
                archive_after: settings.archive_after,
                delete_after: settings.delete_after,
            },
            state: Mutex::new(None),
            reported: AtomicBool::new(false),
        }
    }

    /// The directory this sink writes to (for callers that sweep or search it).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The current file's path.
    pub fn path(&self) -> PathBuf {
        self.dir.join(&self.name)
    }

    /// Appends one line (which must end in `\n`), rotating first if it would not fit.
    /// A failure is reported once on stderr and returned; it never panics.
    pub fn write_line(&self, line: &str) -> io::Result<()> {
        let result = self.append(line.as_bytes());
        match &result {
            Ok(()) => self.reported.store(false, Ordering::Relaxed),
            Err(e) => self.report(&format!("cannot write {}: {e}", self.path().display())),
        }
        result
    }

    fn append(&self, line: &[u8]) -> io::Result<()> {
        let mut state = self.lock();
        let len = line.len() as u64;
        let size = self.open(&mut state)?.size;
        if self.max_size > 0 && size > 0 && size + len > self.max_size {
            // Close before renaming, so no later line can land in the renamed file.
            *state = None;
            if let Err(e) = self.rotate() {
                // Keep appending to the current file: too big beats lost.
                self.report(&format!("cannot rotate {}: {e}", self.path().display()));
            }
        }
        let open = self.open(&mut state)?;
        match open.file.write_all(line) {
            Ok(()) => {
                open.size += len;
                Ok(())
            }
            Err(e) => {
                *state = None;
                Err(e)
            }
        }
    }

    fn open<'a>(&self, state: &'a mut Option<OpenFile>) -> io::Result<&'a mut OpenFile> {
        if state.is_none() {
            // Logs may quote payloads and errors: this user's only (0700 dir, 0600 file).
            crate::private_fs::create_dir_all(&self.dir)?;
            let file = crate::private_fs::options()
                .create(true)
                .append(true)
                .open(self.path())?;
            let size = file.metadata()?.len();
            *state = Some(OpenFile { file, size });
        }
        state
            .as_mut()
            .ok_or_else(|| io::Error::other("log file not open"))
    }

    /// Moves the (closed) current file into the backups, then sweeps by age.
    fn rotate(&self) -> io::Result<()> {
        let _dir = archive::dir_lock();
        archive::shift_backups(&self.dir, &self.name, self.retention.keep)?;
        let mut report = SweepReport::default();
        archive::sweep_log(
            &self.dir,
            &self.name,
            self.retention,
            SystemTime::now(),
            &mut report,
        )
    }

    /// Flushes the open file, if any. Lines are not buffered in this process (each is one
    /// `write`), so this only asks the handle to pass on anything it holds.
    pub fn flush(&self) {
        if let Some(open) = self.lock().as_mut() {
            let _ = open.file.flush();
        }
    }

    fn lock(&self) -> MutexGuard<'_, Option<OpenFile>> {
        // A panic elsewhere while holding the lock leaves at worst a closed file.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn report(&self, message: &str) {
        if !self.reported.swap(true, Ordering::Relaxed) {
            // Never `eprintln!`: it panics if stderr is gone.
            let _ = writeln!(io::stderr(), "dreamos: logging: {message} (continuing)");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logging::archive::{list, LogFileKind};
    use crate::logging::testdir::TestDir;
    use std::fs;

    fn settings(max_size: u64, keep: usize) -> LogSettings {
        LogSettings {
            max_size,
            keep,
            ..LogSettings::default()
        }
    }

    #[test]
    fn creating_a_sink_touches_nothing_until_the_first_line() {
        let dir = TestDir::new();
        let logs = dir.join("nested/logs");
        let sink = RotatingFile::new(&logs, "x.jsonl", &settings(100, 2));
        assert!(!logs.exists());
        sink.write_line("{\"a\":1}\n").expect("write");
        assert_eq!(
            fs::read_to_string(sink.path()).expect("read"),
            "{\"a\":1}\n"
        );
    }

    #[test]
    fn rotates_before_a_line_that_would_not_fit() {
        let dir = TestDir::new();
        let sink = RotatingFile::new(dir.path(), "x", &settings(10, 2));
        for line in [
            "aaaa\n", "bbbb\n", "cccc\n", "dddd\n", "eeee\n", "ffff\n", "gggg\n",
        ] {
            sink.write_line(line).expect("write");
        }
        let read = |f: &str| fs::read_to_string(dir.join(f)).expect("read");
        assert_eq!(read("x"), "gggg\n");
        assert_eq!(read("x.1"), "eeee\nffff\n");
        assert_eq!(read("x.2"), "cccc\ndddd\n");
        let kinds: Vec<_> = list(dir.path(), "x")
            .expect("list")
            .into_iter()
            .map(|f| f.kind)
            .collect();
        assert_eq!(
            kinds[0],
            LogFileKind::Archive,
            "the first two lines were archived"
        );
    }

    #[test]
    fn a_line_longer_than_max_size_gets_a_file_of_its_own() {
        let dir = TestDir::new();
        let sink = RotatingFile::new(dir.path(), "x", &settings(4, 3));
        sink.write_line("a very long line\n").expect("write");
        sink.write_line("b\n").expect("write");
        assert_eq!(
            fs::read_to_string(dir.join("x.1")).expect("read"),
            "a very long line\n"
        );
        assert_eq!(fs::read_to_string(dir.join("x")).expect("read"), "b\n");
    }

    #[test]
    fn reopening_continues_counting_from_the_existing_size() {
        let dir = TestDir::new();
        fs::write(dir.join("x"), "0123456789\n").expect("seed");
        let sink = RotatingFile::new(dir.path(), "x", &settings(12, 1));
        sink.write_line("next\n").expect("write");
        assert_eq!(
            fs::read_to_string(dir.join("x.1")).expect("read"),
            "0123456789\n"
        );
    }

    #[test]
    fn a_failed_write_is_an_error_not_a_panic_and_recovers() {
        let dir = TestDir::new();
        // A plain file where the directory should be: opening must fail.
        let blocked = dir.join("blocked");
        fs::write(&blocked, "").expect("write");
        let sink = RotatingFile::new(&blocked, "x", &settings(100, 1));
        assert!(sink.write_line("lost\n").is_err());
        assert!(sink.write_line("lost\n").is_err());
        fs::remove_file(&blocked).expect("unblock");
        sink.write_line("kept\n").expect("recovers");
        assert_eq!(fs::read_to_string(sink.path()).expect("read"), "kept\n");
    }

    #[test]
    fn log_files_archives_and_new_directories_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = TestDir::new();
        let logs = dir.join("private/logs");
        // keep = 0: every rotation archives the backup at once.
        let sink = RotatingFile::new(&logs, "x", &settings(10, 0));
        for line in ["aaaa\n", "bbbb\n", "cccc\n", "dddd\n"] {
            sink.write_line(line).expect("write");
        }
        let mode = |p: &Path| fs::metadata(p).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode(&dir.join("private")), 0o700);
        assert_eq!(mode(&logs), 0o700);
        assert_eq!(mode(&sink.path()), 0o600);
        let archives: Vec<_> = list(&logs, "x")
            .expect("list")
            .into_iter()
            .filter(|f| f.kind == LogFileKind::Archive)
            .collect();
        assert!(!archives.is_empty(), "nothing archived");
        for a in archives {
            assert_eq!(mode(&a.path), 0o600, "{}", a.path.display());
        }
    }
}
