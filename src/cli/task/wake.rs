//! What wakes `dreamos task watch` when another process commits.
//!
//! The bus that carries `tasks.events` lives inside the process that made the change, so a
//! watch in its own process learns of changes through the database file instead. Every
//! commit appends to SQLite's write-ahead log (`<db>-wal`); on Linux the watch asks the
//! kernel (inotify) to wake it when that file is written, then reads only the new rows of
//! the event log. Nothing is read while nothing happens. Where inotify is not available
//! (another OS, a filesystem without it) the watch falls back to looking every
//! `tasks.watch_interval`.
//!
//! One subtlety: the log is written *before* the commit becomes visible (the frames go to
//! the WAL, then the fsync, then the index in shared memory, which inotify cannot see). So
//! a read right after the wake may find nothing yet; the watch then looks again a few times
//! over the next second ([`SETTLE`]) before it sleeps until the next write.

use std::path::Path;
use std::time::Duration;

/// After a wake, extra looks at these delays catch a commit that became visible only after
/// the first look.
pub(super) const SETTLE: [Duration; 5] = [
    Duration::from_millis(5),
    Duration::from_millis(20),
    Duration::from_millis(100),
    Duration::from_millis(400),
    Duration::from_millis(1000),
];

/// Wakes on changes to a database's write-ahead log.
pub(super) struct WalWatch {
    #[cfg(target_os = "linux")]
    fd: tokio::io::unix::AsyncFd<std::os::fd::OwnedFd>,
}

impl WalWatch {
    /// Watches `<db>-wal`; `None` when the platform or the filesystem cannot.
    #[cfg(target_os = "linux")]
    pub(super) fn new(db: &Path) -> Option<WalWatch> {
        use std::os::fd::{FromRawFd, OwnedFd};
        use std::os::unix::ffi::OsStrExt;

        let mut wal = db.as_os_str().as_bytes().to_vec();
        wal.extend_from_slice(b"-wal");
        let wal = std::ffi::CString::new(wal).ok()?;
        // SAFETY: inotify_init1 takes flags only and returns a new descriptor (or -1).
        let raw = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        if raw < 0 {
            return None;
        }
        // SAFETY: `raw` is a descriptor we just opened and own from here on.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: a valid inotify descriptor and a NUL-terminated path that outlives the call.
        let watch = unsafe { libc::inotify_add_watch(raw, wal.as_ptr(), libc::IN_MODIFY) };
        if watch < 0 {
            return None;
        }
        // SAFETY: `fd` is an open descriptor owned by the OwnedFd we hand over, which keeps
        // it open and unchanged for as long as the AsyncFd lives.
        unsafe { tokio::io::unix::AsyncFd::register(fd) }
            .ok()
            .map(|fd| WalWatch { fd })
    }

    #[cfg(not(target_os = "linux"))]
    pub(super) fn new(_db: &Path) -> Option<WalWatch> {
        None
    }

    /// Returns `true` once the log was written since the last call (at once if it already
    /// was), or `false` after `max`.
    #[cfg(target_os = "linux")]
    pub(super) async fn changed(&self, max: Duration) -> bool {
        use std::os::fd::AsRawFd;

        let wait = async {
            loop {
                let Ok(mut ready) = self.fd.readable().await else {
                    // The descriptor failed: let the timeout pace the caller.
                    return std::future::pending::<()>().await;
                };
                // Drain every queued notification: one wake covers all of them.
                let mut drained = false;
                loop {
                    let mut buf = [0u8; 4096];
                    let read = ready.try_io(|fd| {
                        // SAFETY: reads into a live buffer of the length passed.
                        let n = unsafe {
                            libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len())
                        };
                        if n < 0 {
                            Err(std::io::Error::last_os_error())
                        } else {
                            Ok(n)
                        }
                    });
                    match read {
                        Ok(Ok(n)) if n > 0 => drained = true,
                        _ => break,
                    }
                }
                if drained {
                    return;
                }
            }
        };
        tokio::time::timeout(max, wait).await.is_ok()
    }

    #[cfg(not(target_os = "linux"))]
    pub(super) async fn changed(&self, max: Duration) -> bool {
        tokio::time::sleep(max).await;
        false
    }
}
