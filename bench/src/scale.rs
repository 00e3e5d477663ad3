//! Scale: list and detail queries with a million messages in the store.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::load::LoadResult;

pub struct ScaleFigures {
    pub messages: u64,
    pub list: LoadResult,
    pub detail: LoadResult,
    pub peak_rss_mib: f64,
}

impl ScaleFigures {
    pub fn to_json(&self) -> Value {
        Value::Null
    }
}

pub async fn run(_binary: &Path, _messages: u64, _duration: Duration) -> anyhow::Result<ScaleFigures> {
    anyhow::bail!("not built yet")
}
