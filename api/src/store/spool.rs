//! The alert spool: where alerts wait, durably, while the store cannot commit them (a
//! full disk). One file of fixed size next to the database, `alerts.spool`, filled with
//! zeros when the store opens so its blocks are allocated before the disk fills:
//! overwriting them later needs no new space. That holds on ext4, xfs and tmpfs; on a
//! copy-on-write file system (btrfs, zfs) a spool write can fail too, which is counted,
//! and the alerts then wait in memory only.
//!
//! The file is two slots of half its size. Each write goes to the slot that does not
//! hold the newest record, so a crash in the middle of a write leaves the previous
//! record readable. A record is a header (magic, sequence number, body length, SHA-256
//! of those and the body) and a JSON body with the pending alerts and incidents, the
//! most severe and most recent first, as many as fit: the rest is reported, not written.
//! An empty record clears the spool once the store has committed what it held.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use eastwest_model::{Alert, Incident};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::ApiError;

pub const SPOOL_FILE: &str = "alerts.spool";
/// The smallest spool that is useful: a few dozen alerts per slot.
pub const MIN_SPOOL_BYTES: u64 = 64 * 1024;

const MAGIC: &[u8; 8] = b"EWSPOOL1";
/// magic + sequence + body length + SHA-256.
const HEADER: usize = 8 + 8 + 8 + 32;
const ZEROS: usize = 1 << 20;

/// What a spool held when it was opened.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Spooled {
    pub alerts: Vec<Alert>,
    pub incidents: Vec<Incident>,
}

impl Spooled {
    pub fn is_empty(&self) -> bool {
        self.alerts.is_empty() && self.incidents.is_empty()
    }
}

/// What one write put in the spool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpoolWrite {
    pub alerts: usize,
    pub incidents: usize,
    /// Alerts that did not fit.
    pub alerts_left_out: usize,
}

pub struct Spool {
    file: File,
    path: PathBuf,
    slot_bytes: u64,
    /// Sequence number and slot of the newest record.
    seq: u64,
    newest: u64,
    /// Whether the newest record holds anything.
    holds: bool,
}

fn io_error(path: &Path, e: std::io::Error) -> ApiError {
    ApiError::Io(std::io::Error::new(
        e.kind(),
        format!("{}: {e}", path.display()),
    ))
}

fn digest(seq: u64, body: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(seq.to_le_bytes());
    h.update((body.len() as u64).to_le_bytes());
    h.update(body);
    h.finalize().into()
}

impl Spool {
    /// Opens `path`, reads what it holds, and allocates it to `bytes` (never shrinking
    /// it). When the disk is already too full to allocate, the file keeps its size; an
    /// error when that is too small to be of use.
    pub fn open(path: &Path, bytes: u64) -> Result<(Spool, Spooled), ApiError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| io_error(path, e))?;
        let len = file.metadata().map_err(|e| io_error(path, e))?.len();
        let mut spool = Spool {
            file,
            path: path.to_path_buf(),
            slot_bytes: len / 2,
            seq: 0,
            newest: 1,
            holds: false,
        };
        let recovered = spool.read_newest();
        if len < bytes {
            match spool.allocate(len, bytes) {
                Ok(()) => spool.slot_bytes = bytes / 2,
                Err(e) => {
                    tracing::warn!(error = %e, spool = %path.display(), "cannot allocate the alert spool (disk full?); it keeps its current size");
                    spool.slot_bytes =
                        spool.file.metadata().map_err(|e| io_error(path, e))?.len() / 2;
                }
            }
        }
        if spool.slot_bytes < MIN_SPOOL_BYTES / 2 {
            return Err(ApiError::Io(std::io::Error::other(format!(
                "{}: the alert spool has {} bytes, fewer than {MIN_SPOOL_BYTES}",
                path.display(),
                spool.slot_bytes * 2
            ))));
        }
        if len < bytes && !recovered.is_empty() {
            // The slots moved with the new size: write what was read into the new layout.
            spool.write(&recovered.alerts, &recovered.incidents)?;
        }
        Ok((spool, recovered))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the newest record holds alerts or incidents.
    pub fn holds_records(&self) -> bool {
        self.holds
    }

    /// Appends zeros from `from` up to `to` and syncs, so the blocks are allocated.
    fn allocate(&mut self, from: u64, to: u64) -> Result<(), ApiError> {
        let zeros = vec![0u8; ZEROS];
        let path = self.path.clone();
        self.file
            .seek(SeekFrom::Start(from))
            .map_err(|e| io_error(&path, e))?;
        let mut at = from;
        while at < to {
            let n = (to - at).min(ZEROS as u64) as usize;
            self.file
                .write_all(&zeros[..n])
                .map_err(|e| io_error(&path, e))?;
            at += n as u64;
        }
        self.file.sync_all().map_err(|e| io_error(&path, e))
    }

    /// The record in slot `slot`, if it is intact.
    fn read_slot(&mut self, slot: u64) -> Option<(u64, Spooled)> {
        if self.slot_bytes <= HEADER as u64 {
            return None;
        }
        self.file
            .seek(SeekFrom::Start(slot * self.slot_bytes))
            .ok()?;
        let mut header = [0u8; HEADER];
        self.file.read_exact(&mut header).ok()?;
        if &header[..8] != MAGIC {
            return None;
        }
        let seq = u64::from_le_bytes(header[8..16].try_into().ok()?);
        let len = u64::from_le_bytes(header[16..24].try_into().ok()?);
        if len > self.slot_bytes - HEADER as u64 {
            return None;
        }
        let mut body = vec![0u8; len as usize];
        self.file.read_exact(&mut body).ok()?;
        if digest(seq, &body) != header[24..56] {
            return None;
        }
        Some((seq, serde_json::from_slice(&body).ok()?))
    }

    fn read_newest(&mut self) -> Spooled {
        let records = [self.read_slot(0), self.read_slot(1)];
        let newest = records
            .into_iter()
            .enumerate()
            .filter_map(|(slot, r)| r.map(|(seq, s)| (seq, slot as u64, s)))
            .max_by_key(|(seq, _, _)| *seq);
        match newest {
            Some((seq, slot, spooled)) => {
                self.seq = seq;
                self.newest = slot;
                self.holds = !spooled.is_empty();
                spooled
            }
            None => Spooled::default(),
        }
    }

    /// Replaces the spool's content with `alerts` (most severe, then most recent first)
    /// and `incidents`, as many as fit, and syncs it.
    pub fn write(
        &mut self,
        alerts: &[Alert],
        incidents: &[Incident],
    ) -> Result<SpoolWrite, ApiError> {
        let room = (self.slot_bytes as usize).saturating_sub(HEADER);
        let mut by_priority: Vec<&Alert> = alerts.iter().collect();
        by_priority.sort_by(|a, b| {
            b.severity
                .cmp(&a.severity)
                .then(b.last_seen.cmp(&a.last_seen))
        });
        let mut body = Vec::with_capacity(room.min(1 << 20));
        body.extend_from_slice(b"{\"alerts\":[");
        // The closing `],"incidents":[]}` must fit whatever is added.
        const TAIL: usize = 18;
        let mut written = SpoolWrite {
            alerts: 0,
            incidents: 0,
            alerts_left_out: 0,
        };
        for alert in by_priority {
            let json = serde_json::to_vec(alert)?;
            if body.len() + 1 + json.len() + TAIL > room {
                written.alerts_left_out += 1;
                continue;
            }
            if written.alerts > 0 {
                body.push(b',');
            }
            body.extend_from_slice(&json);
            written.alerts += 1;
        }
        body.extend_from_slice(b"],\"incidents\":[");
        for incident in incidents {
            let json = serde_json::to_vec(incident)?;
            if body.len() + 1 + json.len() + 2 > room {
                continue;
            }
            if written.incidents > 0 {
                body.push(b',');
            }
            body.extend_from_slice(&json);
            written.incidents += 1;
        }
        body.extend_from_slice(b"]}");
        self.put(&body)?;
        self.holds = written.alerts + written.incidents > 0;
        Ok(written)
    }

    /// Records that the spool holds nothing (its content is committed).
    pub fn clear(&mut self) -> Result<(), ApiError> {
        self.write(&[], &[]).map(|_| ())
    }

    fn put(&mut self, body: &[u8]) -> Result<(), ApiError> {
        let seq = self.seq + 1;
        let slot = 1 - self.newest;
        let mut record = Vec::with_capacity(HEADER + body.len());
        record.extend_from_slice(MAGIC);
        record.extend_from_slice(&seq.to_le_bytes());
        record.extend_from_slice(&(body.len() as u64).to_le_bytes());
        record.extend_from_slice(&digest(seq, body));
        record.extend_from_slice(body);
        let path = self.path.clone();
        self.file
            .seek(SeekFrom::Start(slot * self.slot_bytes))
            .map_err(|e| io_error(&path, e))?;
        self.file
            .write_all(&record)
            .map_err(|e| io_error(&path, e))?;
        self.file.sync_data().map_err(|e| io_error(&path, e))?;
        self.seq = seq;
        self.newest = slot;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use eastwest_model::{AlertKind, AlertState, Severity, Workload};

    use super::*;

    fn alert(id: &str, severity: Severity, padding: usize) -> Alert {
        Alert {
            id: id.into(),
            kind: AlertKind::NewEdge,
            severity,
            score: 1.0,
            source: Workload::new("a"),
            destination: Some(Workload::new("b")),
            method: None,
            route: None,
            entry: None,
            first_seen: Utc.timestamp_opt(1_700_000_000, 0).unwrap(),
            last_seen: Utc.timestamp_opt(1_700_000_000, 0).unwrap(),
            count: 1,
            trace_ids: vec![],
            incident_id: None,
            summary: "x".repeat(padding),
            evidence: Default::default(),
            state: AlertState::Open,
        }
    }

    fn ids(s: &Spooled) -> Vec<&str> {
        s.alerts.iter().map(|a| a.id.as_str()).collect()
    }

    #[test]
    fn a_written_spool_is_read_back_after_reopening_and_a_cleared_one_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(SPOOL_FILE);
        let (mut spool, recovered) = Spool::open(&path, MIN_SPOOL_BYTES).unwrap();
        assert!(recovered.is_empty());
        assert_eq!(std::fs::metadata(&path).unwrap().len(), MIN_SPOOL_BYTES);
        let w = spool.write(&[alert("a1", Severity::Low, 10)], &[]).unwrap();
        assert_eq!((w.alerts, w.alerts_left_out), (1, 0));
        let w = spool
            .write(
                &[
                    alert("a1", Severity::Low, 10),
                    alert("a2", Severity::High, 10),
                ],
                &[],
            )
            .unwrap();
        assert_eq!(w.alerts, 2);
        drop(spool);
        let (mut spool, recovered) = Spool::open(&path, MIN_SPOOL_BYTES).unwrap();
        assert_eq!(
            ids(&recovered),
            ["a2", "a1"],
            "the newest record, most severe first"
        );
        assert!(spool.holds_records());
        spool.clear().unwrap();
        drop(spool);
        let (spool, recovered) = Spool::open(&path, MIN_SPOOL_BYTES).unwrap();
        assert!(recovered.is_empty());
        assert!(!spool.holds_records());
    }

    #[test]
    fn a_torn_write_leaves_the_previous_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(SPOOL_FILE);
        let (mut spool, _) = Spool::open(&path, MIN_SPOOL_BYTES).unwrap();
        spool
            .write(&[alert("old", Severity::Low, 10)], &[])
            .unwrap();
        spool
            .write(&[alert("new", Severity::Low, 10)], &[])
            .unwrap();
        let torn_slot = spool.newest;
        drop(spool);
        // Corrupt the body of the newest record, as a crash mid-write would.
        let mut bytes = std::fs::read(&path).unwrap();
        let at = (torn_slot * MIN_SPOOL_BYTES / 2) as usize + HEADER + 5;
        bytes[at] ^= 0xff;
        std::fs::write(&path, bytes).unwrap();
        let (_, recovered) = Spool::open(&path, MIN_SPOOL_BYTES).unwrap();
        assert_eq!(ids(&recovered), ["old"]);
    }

    #[test]
    fn what_does_not_fit_is_left_out_least_severe_first_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(SPOOL_FILE);
        let (mut spool, _) = Spool::open(&path, MIN_SPOOL_BYTES).unwrap();
        // 20 alerts of ~4 KiB into a 32 KiB slot.
        let mut alerts: Vec<Alert> = (0..20)
            .map(|i| alert(&format!("low{i}"), Severity::Low, 4000))
            .collect();
        alerts.push(alert("critical", Severity::Critical, 4000));
        let w = spool.write(&alerts, &[]).unwrap();
        assert!(w.alerts > 0 && w.alerts_left_out > 0, "{w:?}");
        assert_eq!(w.alerts + w.alerts_left_out, 21);
        drop(spool);
        let (_, recovered) = Spool::open(&path, MIN_SPOOL_BYTES).unwrap();
        assert_eq!(recovered.alerts.len(), w.alerts);
        assert_eq!(recovered.alerts[0].id, "critical");
    }

    #[test]
    fn growing_keeps_what_the_spool_held_and_too_small_a_spool_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(SPOOL_FILE);
        let (mut spool, _) = Spool::open(&path, MIN_SPOOL_BYTES).unwrap();
        spool.write(&[alert("a", Severity::Low, 10)], &[]).unwrap();
        spool.write(&[alert("b", Severity::Low, 10)], &[]).unwrap();
        drop(spool);
        let (_, recovered) = Spool::open(&path, 4 * MIN_SPOOL_BYTES).unwrap();
        assert_eq!(ids(&recovered), ["b"]);
        let (_, recovered) = Spool::open(&path, 4 * MIN_SPOOL_BYTES).unwrap();
        assert_eq!(ids(&recovered), ["b"], "rewritten into the grown layout");
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 4 * MIN_SPOOL_BYTES);

        let small = dir.path().join("small.spool");
        assert!(Spool::open(&small, 1024).is_err());
    }
}
