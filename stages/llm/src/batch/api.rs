//! The OpenAI Batch API calls: upload a JSONL file (`POST /files`, multipart, purpose
//! `batch`), create a batch (`POST /batches`), read it (`GET /batches/{id}`) and
//! download a file (`GET /files/{id}/content`, streamed to disk). Transient errors
//! back off and retry up to `limits.max_attempts`; others fail the stage with the
//! server's message.

use crate::backoff::{Backoff, Rng};
use crate::client::{CallError, Client, read, status_error, transport};
use crate::errors::Disposition;
use crate::errors::ErrorClass;
use crate::headers::RateHeaders;
use pipeline::{Digest, StageError};
use reqwest::header::CONTENT_TYPE;
use serde::Deserialize;
use serde_json::{Value, json};
use std::io::Write;
use std::path::Path;

/// A batch as the API describes it.
#[derive(Clone, Debug, Deserialize)]
pub struct BatchObject {
    pub id: String,
    pub status: String,
    pub input_file_id: String,
    #[serde(default)]
    pub output_file_id: Option<String>,
    #[serde(default)]
    pub error_file_id: Option<String>,
    #[serde(default)]
    pub errors: Option<Value>,
    #[serde(default)]
    pub request_counts: Option<Value>,
}

impl BatchObject {
    /// No further change will come.
    pub fn is_finished(&self) -> bool {
        matches!(
            self.status.as_str(),
            "completed" | "failed" | "expired" | "cancelled"
        )
    }
}

#[derive(Deserialize)]
struct FileObject {
    id: String,
}

pub struct Api<'a> {
    client: &'a Client,
    backoff: Backoff,
    max_attempts: u32,
}

impl<'a> Api<'a> {
    pub fn new(client: &'a Client, backoff: Backoff, max_attempts: u32) -> Api<'a> {
        Api {
            client,
            backoff,
            max_attempts,
        }
    }

    /// Send a request made by `make` until it gets a 2xx response, backing off on
    /// transient errors; the last error otherwise.
    async fn send(
        &self,
        make: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, CallError> {
        let mut rng = Rng::new(0);
        let mut failures = 0;
        loop {
            let error = match make().send().await {
                Ok(r) if r.status().is_success() => return Ok(r),
                Ok(r) => match read(r).await {
                    Ok((status, headers, body)) => status_error(status, &body, headers),
                    Err(e) => e,
                },
                Err(e) => transport(&e, RateHeaders::default()),
            };
            failures += 1;
            if error.class.disposition() != Disposition::Retry || failures >= self.max_attempts {
                return Err(error);
            }
            tokio::time::sleep(
                self.backoff
                    .delay(failures, error.headers.retry_after, &mut rng),
            )
            .await;
        }
    }

    /// Upload a batch input file; its id.
    pub async fn upload(&self, name: &str, content: &[u8]) -> Result<String, StageError> {
        let boundary = format!("reasongen-{}", Digest::of_bytes(content).short());
        let mut body = Vec::with_capacity(content.len() + 512);
        write!(
            body,
            "--{boundary}\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nbatch\r\n\
             --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n\
             Content-Type: application/jsonl\r\n\r\n"
        )
        .expect("writing to a Vec");
        body.extend_from_slice(content);
        write!(body, "\r\n--{boundary}--\r\n").expect("writing to a Vec");
        let url = self.client.url("/files").map_err(StageError::msg)?;
        let content_type = format!("multipart/form-data; boundary={boundary}");
        let response = self
            .send(|| {
                self.client
                    .http()
                    .post(url.clone())
                    .header(CONTENT_TYPE, &content_type)
                    .body(body.clone())
            })
            .await
            .map_err(|e| failed(&format!("uploading {name}"), e))?;
        let file: FileObject = json_body(response, "the uploaded file").await?;
        Ok(file.id)
    }

    pub async fn create(
        &self,
        input_file_id: &str,
        endpoint: &str,
        window: &str,
    ) -> Result<BatchObject, StageError> {
        let url = self.client.url("/batches").map_err(StageError::msg)?;
        let body = serde_json::to_vec(&json!({
            "input_file_id": input_file_id,
            "endpoint": endpoint,
            "completion_window": window,
        }))
        .expect("JSON serialises");
        let response = self
            .send(|| self.client.http().post(url.clone()).body(body.clone()))
            .await
            .map_err(|e| failed(&format!("creating a batch of {input_file_id}"), e))?;
        json_body(response, "the new batch").await
    }

    /// Batch `id`, or `None` if the server does not know it.
    pub async fn get(&self, id: &str) -> Result<Option<BatchObject>, StageError> {
        let url = self
            .client
            .url(&format!("/batches/{id}"))
            .map_err(StageError::msg)?;
        match self.send(|| self.client.http().get(url.clone())).await {
            Ok(response) => json_body(response, &format!("batch {id}")).await.map(Some),
            Err(e) if e.class == ErrorClass::NotFound => Ok(None),
            Err(e) => Err(failed(&format!("reading batch {id}"), e)),
        }
    }

    /// Download file `id` into `to`, streamed (a download cut short starts again).
    pub async fn download(&self, id: &str, to: &Path) -> Result<(), StageError> {
        let url = self
            .client
            .url(&format!("/files/{id}/content"))
            .map_err(StageError::msg)?;
        let at = to.display();
        let what = format!("downloading file {id}");
        let mut cuts = 0;
        loop {
            let mut response = self
                .send(|| self.client.http().get(url.clone()))
                .await
                .map_err(|e| failed(&what, e))?;
            let mut file =
                std::fs::File::create(to).map_err(|e| StageError::from(e).context(&at))?;
            let cut = loop {
                match response.chunk().await {
                    Ok(Some(chunk)) => file
                        .write_all(&chunk)
                        .map_err(|e| StageError::from(e).context(&at))?,
                    Ok(None) => break None,
                    Err(e) => break Some(transport(&e, RateHeaders::default())),
                }
            };
            match cut {
                None => return Ok(()),
                Some(e) if cuts + 1 >= self.max_attempts => return Err(failed(&what, e)),
                Some(_) => cuts += 1,
            }
        }
    }
}

fn failed(what: &str, e: CallError) -> StageError {
    StageError::msg(format!(
        "Batch API, {what}: {} ({})",
        e.message,
        e.class.as_str()
    ))
}

async fn json_body<T: serde::de::DeserializeOwned>(
    response: reqwest::Response,
    what: &str,
) -> Result<T, StageError> {
    let body = response
        .bytes()
        .await
        .map_err(|e| StageError::msg(format!("Batch API, reading {what}: {e}")))?;
    serde_json::from_slice(&body).map_err(|e| {
        StageError::msg(format!(
            "Batch API: {what} is not what the API describes: {e}: {}",
            String::from_utf8_lossy(&body[..body.len().min(300)])
        ))
    })
}
