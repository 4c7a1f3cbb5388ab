//! Following the live log file as it grows: `dreamos log tail --follow` and the
//! dashboard's live log. A [`Follower`] remembers the file (by inode) and how far it read;
//! each [`Follower::poll`] returns the complete lines written since. When rotation moves
//! the file away, the follower finishes the old file (it keeps its descriptor) and then
//! starts the new one from its first byte, so no line is skipped across a rotation.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use serde_json::Value;

/// Reads new lines of one log file.
pub struct Follower {
    path: PathBuf,
    /// The open file and its inode; `None` until the file exists.
    file: Option<(File, u64)>,
    /// Bytes after the last newline, kept until the line is complete.
    partial: Vec<u8>,
}

impl Follower {
    /// Starts at the current end of `path` (or at its beginning once it appears).
    pub fn at_end(path: PathBuf) -> Follower {
        let file = File::open(&path).ok().and_then(|mut f| {
            let inode = f.metadata().ok()?.ino();
            f.seek(SeekFrom::End(0)).ok()?;
            Some((f, inode))
        });
        Follower {
            path,
            file,
            partial: Vec::new(),
        }
    }

    /// The JSON records of the lines completed since the last poll.
    pub fn poll(&mut self) -> io::Result<Vec<Value>> {
        let mut out = Vec::new();
        self.read_available(&mut out)?;
        let current = std::fs::metadata(&self.path).ok().map(|m| m.ino());
        let moved = match (&self.file, current) {
            (Some((_, ino)), Some(now)) => *ino != now,
            (None, Some(_)) => true,
            _ => false,
        };
        if moved {
            // The old file is finished (read above); take the new one from the start.
            self.partial.clear();
            self.file = File::open(&self.path)
                .ok()
                .and_then(|f| Some((f.metadata().ok()?.ino(), f)))
                .map(|(ino, f)| (f, ino));
            self.read_available(&mut out)?;
        }
        Ok(out)
    }

    fn read_available(&mut self, out: &mut Vec<Value>) -> io::Result<()> {
        let Some((file, _)) = self.file.as_mut() else {
            return Ok(());
        };
        let mut buf = Vec::new();
        file.read_to_end(&mut buf)?;
        self.partial.extend_from_slice(&buf);
        let Some(last_newline) = self.partial.iter().rposition(|&b| b == b'\n') else {
            return Ok(());
        };
        let complete: Vec<u8> = self.partial.drain(..=last_newline).collect();
        for line in complete.split(|&b| b == b'\n') {
            if let Ok(record @ Value::Object(_)) = serde_json::from_slice::<Value>(line) {
                out.push(record);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logging::testdir::TestDir;
    use std::io::Write;

    fn append(path: &std::path::Path, text: &str) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .expect("open");
        f.write_all(text.as_bytes()).expect("write");
    }

    fn messages(records: Vec<Value>) -> Vec<String> {
        records
            .iter()
            .map(|r| r["message"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    #[test]
    fn returns_only_new_complete_lines_and_survives_rotation() {
        let dir = TestDir::new();
        let path = dir.join("dreamos.jsonl");
        append(&path, "{\"message\":\"before\"}\n");
        let mut f = Follower::at_end(path.clone());
        assert!(f.poll().expect("poll").is_empty());
        append(&path, "{\"message\":\"one\"}\n{\"message\":\"tw");
        assert_eq!(messages(f.poll().expect("poll")), ["one"]);
        append(&path, "o\"}\n");
        assert_eq!(messages(f.poll().expect("poll")), ["two"]);
        // Rotation: the last lines of the old file, then the new file from its start.
        append(&path, "{\"message\":\"last of old\"}\n");
        std::fs::rename(&path, dir.join("dreamos.jsonl.1")).expect("rotate");
        append(&path, "{\"message\":\"first of new\"}\n");
        assert_eq!(
            messages(f.poll().expect("poll")),
            ["last of old", "first of new"]
        );
    }

    #[test]
    fn a_file_that_appears_later_is_read_from_its_start() {
        let dir = TestDir::new();
        let path = dir.join("dreamos.jsonl");
        let mut f = Follower::at_end(path.clone());
        assert!(f.poll().expect("poll").is_empty());
        append(&path, "{\"message\":\"hello\"}\n");
        assert_eq!(messages(f.poll().expect("poll")), ["hello"]);
    }
}
