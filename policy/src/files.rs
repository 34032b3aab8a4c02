//! Policy files as `policy backtest`, `policy drift` and `report --policy` read them:
//! multi-document YAML in any of the four dialects, several files at once, `-` for
//! standard input.

use std::path::{Path, PathBuf};

use crate::PolicyError;
use crate::document::{Document, parse_yaml};

pub fn read_files(files: &[PathBuf]) -> Result<Vec<Document>, PolicyError> {
    let mut docs = Vec::new();
    for f in files {
        let read = |f: &Path| {
            if f == Path::new("-") {
                std::io::read_to_string(std::io::stdin())
            } else {
                std::fs::read_to_string(f)
            }
        };
        let text = read(f).map_err(|source| PolicyError::Read {
            path: f.clone(),
            source,
        })?;
        docs.extend(parse_yaml(&text).map_err(|e| PolicyError::InFile {
            path: f.clone(),
            source: Box::new(e),
        })?);
    }
    Ok(docs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_read_in_order_and_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let rules = crate::testdata::shop();
        let (a, b) = (dir.path().join("a.yaml"), dir.path().join("b.yaml"));
        let istio = crate::compile(&rules, crate::Format::Istio);
        let netpol = crate::compile(&rules, crate::Format::NetworkPolicy);
        std::fs::write(&a, istio.to_yaml(&rules).unwrap()).unwrap();
        std::fs::write(&b, netpol.to_yaml(&rules).unwrap()).unwrap();
        let docs = read_files(&[a.clone(), b]).unwrap();
        assert_eq!(docs.len(), istio.documents.len() + netpol.documents.len());
        assert_eq!(docs[..istio.documents.len()], istio.documents[..]);

        let missing = dir.path().join("missing.yaml");
        let e = read_files(&[a.clone(), missing.clone()]).unwrap_err();
        assert!(
            matches!(&e, PolicyError::Read { path, .. } if *path == missing),
            "{e}"
        );
        std::fs::write(&a, "kind: Pod\napiVersion: v1\n").unwrap();
        let e = read_files(std::slice::from_ref(&a)).unwrap_err();
        assert!(e.to_string().contains("a.yaml"), "{e}");
        assert!(std::error::Error::source(&e).is_some());
    }
}
