//! The mock's Batch API: `POST /v1/files` (multipart), `POST /v1/batches`,
//! `GET /v1/batches/{id}`, `GET /v1/files/{id}/content`. A batch runs its lines
//! through the same chat logic (faults included) after the script's latency, then
//! ends `completed`, `expired` (some lines expired) or `failed` (the first
//! `fail_first` batches).

use super::State;
use super::chat::{Decision, decide};
use super::http::{Request, Response};
use pipeline::Digest;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

fn not_found(what: &str) -> Response {
    Response::json(
        404,
        json!({"error": {"message": format!("No such {what}"), "type": "invalid_request_error", "code": null}}).to_string(),
    )
}

fn bad_request(message: &str) -> Response {
    Response::json(
        400,
        json!({"error": {"message": message, "type": "invalid_request_error", "code": null}})
            .to_string(),
    )
}

/// The `file` part of a multipart body.
fn file_part<'a>(content_type: &str, body: &'a [u8]) -> Option<&'a [u8]> {
    let boundary = content_type.split("boundary=").nth(1)?.trim_matches('"');
    let delimiter = format!("--{boundary}");
    let d = delimiter.as_bytes();
    let mut rest = body;
    while let Some(i) = rest.windows(d.len()).position(|w| w == d) {
        let part = &rest[..i];
        rest = &rest[i + d.len()..];
        let Some(head_end) = part.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&part[..head_end]);
        if head.contains("name=\"file\"") {
            let content = &part[head_end + 4..];
            return Some(content.strip_suffix(b"\r\n").unwrap_or(content));
        }
    }
    None
}

pub fn upload(state: &State, req: &Request) -> Response {
    let Some(content) = req
        .header("content-type")
        .and_then(|ct| file_part(ct, &req.body))
    else {
        return bad_request("expected multipart/form-data with a `file` part");
    };
    let id = format!("file-{}", state.next_id.fetch_add(1, Relaxed));
    let bytes = content.len();
    state.lock_files().insert(id.clone(), content.to_vec());
    state.counters.files.fetch_add(1, Relaxed);
    Response::json(
        200,
        json!({"id": id, "object": "file", "bytes": bytes, "filename": "batch.jsonl", "purpose": "batch"})
            .to_string(),
    )
}

pub fn create(state: &Arc<State>, req: &Request) -> Response {
    let Ok(spec) = serde_json::from_slice::<Value>(&req.body) else {
        return bad_request("the body is not JSON");
    };
    let Some(file_id) = spec["input_file_id"].as_str() else {
        return bad_request("missing input_file_id");
    };
    let Some(input) = state.lock_files().get(file_id).cloned() else {
        return not_found("file");
    };
    let n = state.counters.batches.fetch_add(1, Relaxed) + 1;
    let id = format!("batch_{}", state.next_id.fetch_add(1, Relaxed));
    let failed = n <= u64::from(state.script.batch.fail_first);
    let batch = json!({
        "id": id,
        "object": "batch",
        "endpoint": spec["endpoint"],
        "input_file_id": file_id,
        "completion_window": spec["completion_window"],
        "status": if failed { "failed" } else { "in_progress" },
        "output_file_id": null,
        "error_file_id": null,
        "errors": if failed { json!({"data": [{"code": "mock_failure", "message": "the mock fails this batch"}]}) } else { Value::Null },
        "request_counts": {"total": 0, "completed": 0, "failed": 0},
    });
    state.lock_batches().insert(id.clone(), batch.clone());
    if !failed {
        tokio::spawn(run(state.clone(), id, input));
    }
    Response::json(200, batch.to_string())
}

pub fn get(state: &State, id: &str) -> Response {
    state.counters.polls.fetch_add(1, Relaxed);
    match state.lock_batches().get(id) {
        Some(b) => Response::json(200, b.to_string()),
        None => not_found("batch"),
    }
}

pub fn content(state: &State, id: &str) -> Response {
    match state.lock_files().get(id) {
        Some(bytes) => Response::json(200, bytes.clone()),
        None => not_found("file"),
    }
}

/// Run a batch's lines after the script's latency, and record its end.
async fn run(state: Arc<State>, id: String, input: Vec<u8>) {
    tokio::time::sleep(state.script.batch.latency).await;
    let (mut output, mut errors) = (Vec::new(), Vec::new());
    let (mut completed, mut failed, mut expired) = (0u64, 0u64, false);
    for line in input.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let Ok(line) = serde_json::from_slice::<Value>(line) else {
            continue;
        };
        let custom_id = line["custom_id"].clone();
        let body = serde_json::to_vec(&line["body"]).expect("JSON serialises");
        state.counters.batch_lines.fetch_add(1, Relaxed);
        let expire = state.script.batch.expire_when.as_ref().is_some_and(|w| {
            body.windows(w.len()).any(|x| x == w.as_bytes())
                && state.lock_expired().insert(Digest::of_bytes(&body))
        });
        let record = if expire {
            expired = true;
            json!({"id": "batch_req", "custom_id": custom_id, "response": null,
                   "error": {"code": "batch_expired", "message": "This request could not be executed before the completion window expired."}})
        } else {
            let (status, body) = match decide(&state, &body) {
                Decision::Respond(r) => (
                    r.status,
                    serde_json::from_slice::<Value>(&r.body).unwrap_or(Value::Null),
                ),
                Decision::Hang | Decision::Drop => {
                    (500, json!({"error": {"message": "mock: no answer"}}))
                }
            };
            json!({"id": "batch_req", "custom_id": custom_id,
                   "response": {"status_code": status, "request_id": "req_mock", "body": body},
                   "error": null})
        };
        let ok = record["response"]["status_code"]
            .as_u64()
            .is_some_and(|s| (200..300).contains(&s));
        if ok {
            completed += 1;
        } else {
            failed += 1;
        }
        let target = if ok { &mut output } else { &mut errors };
        target.extend_from_slice(record.to_string().as_bytes());
        target.push(b'\n');
    }
    let store = |bytes: Vec<u8>| {
        (!bytes.is_empty()).then(|| {
            let fid = format!("file-{}", state.next_id.fetch_add(1, Relaxed));
            state.lock_files().insert(fid.clone(), bytes);
            fid
        })
    };
    let (out_id, err_id) = (store(output), store(errors));
    if let Some(b) = state.lock_batches().get_mut(&id) {
        b["status"] = json!(if expired { "expired" } else { "completed" });
        b["output_file_id"] = json!(out_id);
        b["error_file_id"] = json!(err_id);
        b["request_counts"] =
            json!({"total": completed + failed, "completed": completed, "failed": failed});
    }
}
