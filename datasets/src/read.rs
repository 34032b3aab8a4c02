//! Reading scenario directories and OTLP files (protobuf length-delimited or JSON lines).

use std::path::Path;

use eastwest_model::Label;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;

use crate::error::DatasetError;
use crate::scenario::ScenarioMeta;

#[derive(Debug, Clone)]
pub struct ScenarioData {
    pub meta: ScenarioMeta,
    pub traces: Vec<ExportTraceServiceRequest>,
    pub logs: Vec<ExportLogsServiceRequest>,
    pub labels: Vec<Label>,
}

fn bad(path: &Path, detail: impl Into<String>) -> DatasetError {
    DatasetError::BadFile {
        path: path.to_path_buf(),
        detail: detail.into(),
    }
}

/// Reads an OTLP file: `*.pb` is a length-delimited sequence of requests, `*.json` is
/// OTLP/HTTP JSON with one request per line.
pub fn read_otlp_file<M: Message + Default + serde::de::DeserializeOwned>(
    path: &Path,
) -> Result<Vec<M>, DatasetError> {
    let bytes = std::fs::read(path).map_err(|e| DatasetError::io(path, e))?;
    let mut out = Vec::new();
    match path.extension().and_then(|e| e.to_str()) {
        Some("pb") => {
            let mut buf = bytes.as_slice();
            while !buf.is_empty() {
                let m = M::decode_length_delimited(&mut buf)
                    .map_err(|e| bad(path, format!("request {}: {e}", out.len())))?;
                out.push(m);
            }
        }
        Some("json") => {
            let text = String::from_utf8(bytes).map_err(|_| bad(path, "not utf-8"))?;
            for (n, line) in text
                .lines()
                .enumerate()
                .filter(|(_, l)| !l.trim().is_empty())
            {
                out.push(
                    serde_json::from_str(line)
                        .map_err(|e| bad(path, format!("line {}: {e}", n + 1)))?,
                );
            }
        }
        _ => return Err(bad(path, "expected a .pb or .json file")),
    }
    Ok(out)
}

/// Reads `scenario.json`, `labels.jsonl`, `traces.{pb,json}` and `logs.{pb,json}` (the
/// latter two when present).
pub fn read_scenario_dir(dir: &Path) -> Result<ScenarioData, DatasetError> {
    let mp = dir.join("scenario.json");
    let meta_text = std::fs::read_to_string(&mp).map_err(|e| DatasetError::io(&mp, e))?;
    let meta: ScenarioMeta =
        serde_json::from_str(&meta_text).map_err(|e| bad(&mp, e.to_string()))?;
    let lp = dir.join("labels.jsonl");
    let labels_text = std::fs::read_to_string(&lp).map_err(|e| DatasetError::io(&lp, e))?;
    let mut labels = Vec::new();
    for (n, line) in labels_text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        labels.push(
            serde_json::from_str(line).map_err(|e| bad(&lp, format!("line {}: {e}", n + 1)))?,
        );
    }
    let mut traces = Vec::new();
    let mut logs = Vec::new();
    for ext in ["pb", "json"] {
        let tp = dir.join(format!("traces.{ext}"));
        if tp.exists() {
            traces.extend(read_otlp_file::<ExportTraceServiceRequest>(&tp)?);
        }
        let lp = dir.join(format!("logs.{ext}"));
        if lp.exists() {
            logs.extend(read_otlp_file::<ExportLogsServiceRequest>(&lp)?);
        }
    }
    Ok(ScenarioData {
        meta,
        traces,
        logs,
        labels,
    })
}
