//! [`DataDirEvidence`]: what `serve` hands the API so it can answer
//! `GET /api/v1/posture` and `GET /api/v1/report` from its own data dir.

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use chrono::Utc;
use eastwest_api::{ApiError, Evidence, Rendered};
use eastwest_detector::SensitivePattern;

use crate::{Format, PostureError, render};

pub struct DataDirEvidence {
    pub data_dir: PathBuf,
    /// The detector's configured sensitive patterns.
    pub sensitive: Vec<SensitivePattern>,
}

fn api_error(e: PostureError) -> ApiError {
    match e {
        PostureError::Period(m) => ApiError::BadRequest(m),
        other => ApiError::Task(other.to_string()),
    }
}

/// Runs `f` to completion from a blocking thread: on the caller's runtime when there is
/// one (the API's `spawn_blocking` threads), else on a fresh one.
fn block_on<T>(f: impl Future<Output = T>) -> Result<T, ApiError> {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => Ok(handle.block_on(f)),
        Err(_) => Ok(tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(f)),
    }
}

fn period(since: Duration) -> Result<(chrono::DateTime<Utc>, chrono::DateTime<Utc>), ApiError> {
    let until = Utc::now();
    let since = chrono::Duration::from_std(since)
        .ok()
        .and_then(|d| until.checked_sub_signed(d))
        .ok_or_else(|| ApiError::BadRequest("since is too long".into()))?;
    Ok((since, until))
}

impl Evidence for DataDirEvidence {
    fn posture(&self, since: Duration) -> Result<Rendered, ApiError> {
        let (since, until) = period(since)?;
        let p = block_on(crate::posture(
            &self.data_dir,
            since,
            until,
            &self.sensitive,
        ))?
        .map_err(api_error)?;
        Ok(Rendered {
            content_type: Format::Json.content_type(),
            body: serde_json::to_string(&p)?,
        })
    }

    fn report(&self, since: Duration, format: &str) -> Result<Rendered, ApiError> {
        let format = Format::parse(format)
            .ok_or_else(|| ApiError::BadRequest("format must be json, csv or html".into()))?;
        let (since, until) = period(since)?;
        let r = block_on(crate::report(
            &self.data_dir,
            since,
            until,
            &self.sensitive,
            None,
        ))?
        .map_err(api_error)?;
        Ok(Rendered {
            content_type: format.content_type(),
            body: render(&r, format).map_err(api_error)?,
        })
    }
}
