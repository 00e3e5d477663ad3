//! The Graph API calls the connector makes: send a message, upload a file, fetch a
//! customer's file. Failures are returned as Meta answered them ([`GraphFailure`]), for
//! the sender's classifier to judge; errors never carry the access token (it travels in
//! a header only) and URLs are left out of network errors.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use crate::config::{Secret, WhatsappSettings};
use crate::normalize::MediaRef;

/// How long one Graph request may take. Meta answers sends in well under a second; a
/// download of the largest file takes longer on a slow link.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The Graph API error object (`{"error": {...}}`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct GraphError {
    #[serde(default)]
    pub message: String,
    #[serde(default, rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub code: Option<i64>,
    #[serde(default)]
    pub error_subcode: Option<i64>,
    #[serde(default)]
    pub error_data: Option<ErrorData>,
    #[serde(default)]
    pub fbtrace_id: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct ErrorData {
    #[serde(default)]
    pub details: Option<String>,
}

#[derive(Deserialize)]
struct ErrorEnvelope {
    error: GraphError,
}

/// A Graph request that did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GraphFailure {
    /// No answer: connection refused or reset, DNS, TLS, a timeout.
    Network { reason: String, timeout: bool },
    /// An HTTP error status, with Meta's error object when the body held one.
    Http {
        status: u16,
        error: Option<GraphError>,
        /// A `Retry-After` header in seconds, when Meta sent one.
        retry_after: Option<Duration>,
    },
    /// A 2xx whose body was not what the call returns.
    Unreadable(String),
}

impl fmt::Display for GraphFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GraphFailure::Network { reason, .. } => write!(f, "cannot reach the Graph API: {reason}"),
            GraphFailure::Http {
                status,
                error: Some(error),
                ..
            } => {
                write!(f, "HTTP {status}")?;
                if let Some(code) = error.code {
                    write!(f, ", error {code}")?;
                }
                if let Some(subcode) = error.error_subcode {
                    write!(f, "/{subcode}")?;
                }
                write!(f, ": {}", error.message)?;
                if let Some(details) = error.error_data.as_ref().and_then(|data| data.details.as_deref()) {
                    write!(f, " ({details})")?;
                }
                if let Some(trace) = &error.fbtrace_id {
                    write!(f, " [fbtrace_id {trace}]")?;
                }
                Ok(())
            }
            GraphFailure::Http { status, .. } => write!(f, "HTTP {status} without a Graph error"),
            GraphFailure::Unreadable(reason) => write!(f, "the Graph API answered something unreadable: {reason}"),
        }
    }
}

fn network(err: &reqwest::Error) -> GraphFailure {
    // Without the URL: it names the media id or our number, which is noise in a log.
    let reason = match err.url() {
        Some(url) => err.to_string().replace(url.as_str(), "<Graph API>"),
        None => err.to_string(),
    };
    GraphFailure::Network {
        reason,
        timeout: err.is_timeout(),
    }
}

/// Why a customer's file was not fetched (recorded with the message).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MediaError {
    #[error("{filename} is {size} bytes, over this inbox's limit of {limit}")]
    TooLarge { filename: String, size: u64, limit: u64 },
    #[error("{0}")]
    Graph(String),
}

/// One inbox's Graph API client.
#[derive(Clone)]
pub struct Graph {
    http: reqwest::Client,
    /// `{api_base}/{api_version}`.
    root: String,
    phone_number_id: String,
    token: Secret,
}

impl fmt::Debug for Graph {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Graph")
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

/// What a send answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    /// `messages[0].id`, the wamid delivery reports will name.
    pub id: Option<String>,
}

impl Graph {
    pub fn new(settings: &WhatsappSettings) -> Result<Graph, String> {
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            // A media URL from Meta is fetched with our token; never follow it elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|err| format!("cannot build the HTTP client: {err}"))?;
        Ok(Graph {
            http,
            root: format!("{}/{}", settings.api_base, settings.api_version),
            phone_number_id: settings.phone_number_id.clone(),
            token: settings.access_token.clone(),
        })
    }

    fn bearer(&self) -> String {
        format!("Bearer {}", self.token.expose())
    }

    /// POST `/{phone_number_id}/messages`.
    pub async fn send(&self, body: &Value) -> Result<Sent, GraphFailure> {
        let response = self
            .http
            .post(format!("{}/{}/messages", self.root, self.phone_number_id))
            .header(reqwest::header::AUTHORIZATION, self.bearer())
            .json(body)
            .send()
            .await
            .map_err(|err| network(&err))?;
        if !response.status().is_success() {
            return Err(failure_of(response).await);
        }
        // Accepted is accepted: an answer we cannot read must not send the message twice.
        let json = response.json::<Value>().await.unwrap_or(Value::Null);
        Ok(Sent {
            id: json
                .pointer("/messages/0/id")
                .and_then(Value::as_str)
                .map(str::to_owned),
        })
    }

    /// POST `/{phone_number_id}/media` (multipart): the media id to send the file by.
    pub async fn upload(&self, filename: &str, content_type: &str, data: Vec<u8>) -> Result<String, GraphFailure> {
        // A content type reqwest cannot parse still uploads, as bytes.
        let mime = if is_mime(content_type) {
            content_type
        } else {
            "application/octet-stream"
        };
        let part = reqwest::multipart::Part::bytes(data)
            .file_name(filename.to_owned())
            .mime_str(mime)
            .map_err(|err| GraphFailure::Unreadable(format!("content type `{mime}`: {err}")))?;
        let form = reqwest::multipart::Form::new()
            .text("messaging_product", "whatsapp")
            .text("type", mime.to_owned())
            .part("file", part);
        let response = self
            .http
            .post(format!("{}/{}/media", self.root, self.phone_number_id))
            .header(reqwest::header::AUTHORIZATION, self.bearer())
            .multipart(form)
            .send()
            .await
            .map_err(|err| network(&err))?;
        let json = success_json(response).await?;
        json.get("id")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| GraphFailure::Unreadable("an upload answer without an `id`".into()))
    }

    /// A customer's file: its URL from `GET /{media_id}`, then the bytes from that URL,
    /// both with our token, refusing one over `max_bytes` before and while reading.
    pub async fn fetch_media(&self, media: &MediaRef, max_bytes: u64) -> Result<Vec<u8>, MediaError> {
        let too_large = |size: u64| MediaError::TooLarge {
            filename: media.filename.clone(),
            size,
            limit: max_bytes,
        };
        let graph = |failure: GraphFailure| MediaError::Graph(format!("fetching {}: {failure}", media.filename));
        let response = self
            .http
            .get(format!("{}/{}", self.root, media.media_id))
            .header(reqwest::header::AUTHORIZATION, self.bearer())
            .send()
            .await
            .map_err(|err| graph(network(&err)))?;
        let meta = success_json(response).await.map_err(graph)?;
        if let Some(size) = meta.get("file_size").and_then(Value::as_u64)
            && size > max_bytes
        {
            return Err(too_large(size));
        }
        let url = meta
            .get("url")
            .and_then(Value::as_str)
            .filter(|url| url.starts_with("https://") || url.starts_with("http://"))
            .ok_or_else(|| graph(GraphFailure::Unreadable("a media answer without a `url`".into())))?;
        let mut response = self
            .http
            .get(url)
            .header(reqwest::header::AUTHORIZATION, self.bearer())
            .send()
            .await
            .map_err(|err| graph(network(&err)))?;
        if !response.status().is_success() {
            return Err(graph(failure_of(response).await));
        }
        if let Some(size) = response.content_length()
            && size > max_bytes
        {
            return Err(too_large(size));
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|err| graph(network(&err)))? {
            if (bytes.len() + chunk.len()) as u64 > max_bytes {
                return Err(too_large((bytes.len() + chunk.len()) as u64));
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(bytes)
    }
}

/// `type/subtype`, maybe with parameters, in the characters a MIME token allows.
fn is_mime(text: &str) -> bool {
    let essence = text.split(';').next().unwrap_or_default().trim();
    let token = |part: &str| {
        !part.is_empty()
            && part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
    };
    essence
        .split_once('/')
        .is_some_and(|(kind, sub)| token(kind) && token(sub))
}

/// The JSON of a 2xx answer, or the failure the answer says.
async fn success_json(response: reqwest::Response) -> Result<Value, GraphFailure> {
    if !response.status().is_success() {
        return Err(failure_of(response).await);
    }
    response
        .json::<Value>()
        .await
        .map_err(|err| GraphFailure::Unreadable(err.without_url().to_string()))
}

async fn failure_of(response: reqwest::Response) -> GraphFailure {
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let error = response
        .bytes()
        .await
        .ok()
        .and_then(|body| serde_json::from_slice::<ErrorEnvelope>(&body).ok())
        .map(|envelope| envelope.error);
    GraphFailure::Http {
        status,
        error,
        retry_after,
    }
}
