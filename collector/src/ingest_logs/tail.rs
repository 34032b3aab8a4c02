//! Reading a file line by line, now or as it grows: truncation, rotation, the line cap.

use std::path::{Path, PathBuf};

use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::IngestLogsReport;
use crate::CollectorError;
use crate::accesslog::{LineFormat, MAX_LINE_BYTES, detect_format, parse_access_log_line};

const READ_CHUNK: usize = 64 * 1024;

/// One file being read: its handle, read position, identity and unfinished last line.
pub(super) struct Tail {
    path: PathBuf,
    file: tokio::fs::File,
    position: u64,
    identity: Option<(u64, u64)>,
    partial: Vec<u8>,
    /// The current line went over the cap: drop bytes up to its newline.
    discarding: bool,
}

fn read_error(path: &Path) -> impl FnOnce(std::io::Error) -> CollectorError + '_ {
    move |source| CollectorError::Read {
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(unix)]
fn identity(meta: &std::fs::Metadata) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    Some((meta.dev(), meta.ino()))
}

#[cfg(not(unix))]
fn identity(_meta: &std::fs::Metadata) -> Option<(u64, u64)> {
    None
}

impl Tail {
    pub(super) async fn open(path: &Path) -> Result<Self, CollectorError> {
        let file = tokio::fs::File::open(path)
            .await
            .map_err(read_error(path))?;
        let meta = file.metadata().await.map_err(read_error(path))?;
        Ok(Self {
            path: path.to_path_buf(),
            file,
            position: 0,
            identity: identity(&meta),
            partial: Vec::new(),
            discarding: false,
        })
    }

    /// Reads what is there now into `out`. `final_pass` treats an unterminated last line
    /// as complete; `follow` checks for truncation and rotation first.
    pub(super) async fn poll(
        &mut self,
        out: &mut Vec<String>,
        report: &mut IngestLogsReport,
        final_pass: bool,
        follow: bool,
    ) -> Result<(), CollectorError> {
        if follow {
            let len = self
                .file
                .metadata()
                .await
                .map_err(read_error(&self.path))?
                .len();
            if len < self.position {
                report.truncations += 1;
                self.file
                    .seek(std::io::SeekFrom::Start(0))
                    .await
                    .map_err(read_error(&self.path))?;
                self.position = 0;
                self.partial.clear();
                self.discarding = false;
            }
        }
        self.read_to_end(out, report).await?;
        if follow && let Ok(meta) = tokio::fs::metadata(&self.path).await {
            let now = identity(&meta);
            // Rotated: the old file is finished, its last line complete. It is read to
            // its end again first: lines may have landed in it between the read above
            // and the rename being seen. If the new file vanished again before it could
            // be opened, try on the next poll.
            if now.is_some()
                && now != self.identity
                && let Ok(new) = Tail::open(&self.path).await
            {
                self.read_to_end(out, report).await?;
                self.finish_partial(out, report);
                *self = new;
                report.rotations += 1;
                self.read_to_end(out, report).await?;
            }
        }
        if final_pass {
            self.finish_partial(out, report);
        }
        Ok(())
    }

    async fn read_to_end(
        &mut self,
        out: &mut Vec<String>,
        report: &mut IngestLogsReport,
    ) -> Result<(), CollectorError> {
        let mut chunk = vec![0u8; READ_CHUNK];
        loop {
            let n = self
                .file
                .read(&mut chunk)
                .await
                .map_err(read_error(&self.path))?;
            if n == 0 {
                return Ok(());
            }
            self.position += n as u64;
            let mut rest = &chunk[..n];
            while let Some(i) = rest.iter().position(|b| *b == b'\n') {
                if self.discarding {
                    self.discarding = false;
                } else {
                    self.partial.extend_from_slice(&rest[..i]);
                    let line = std::mem::take(&mut self.partial);
                    accept_line(&line, out, report);
                }
                rest = &rest[i + 1..];
            }
            if !self.discarding {
                self.partial.extend_from_slice(rest);
                if self.partial.len() > MAX_LINE_BYTES {
                    report.lines_read += 1;
                    report.lines_too_long += 1;
                    self.partial.clear();
                    self.discarding = true;
                }
            }
        }
    }

    fn finish_partial(&mut self, out: &mut Vec<String>, report: &mut IngestLogsReport) {
        if !self.partial.is_empty() {
            let line = std::mem::take(&mut self.partial);
            accept_line(&line, out, report);
        }
        self.discarding = false;
    }
}

/// Classifies one line and keeps it when it is an access log.
fn accept_line(raw: &[u8], out: &mut Vec<String>, report: &mut IngestLogsReport) {
    report.lines_read += 1;
    let text = String::from_utf8_lossy(raw);
    let line = text.trim_end_matches('\r').trim();
    if line.is_empty() || line.starts_with('#') {
        report.lines_skipped += 1;
        return;
    }
    if line.len() > MAX_LINE_BYTES {
        report.lines_too_long += 1;
        return;
    }
    match detect_format(line) {
        LineFormat::Json => report.json_lines += 1,
        LineFormat::Text => report.text_lines += 1,
    }
    match parse_access_log_line(line) {
        Ok(f) if f.method.is_some() || f.path.is_some() || f.upstream_cluster.is_some() => {
            out.push(line.to_string())
        }
        _ => report.lines_unparsed += 1,
    }
}
