//! The S3 side of a store opened as `s3://bucket/prefix`: a blocking handle on an
//! `object_store` bucket, with the few operations the store needs (get, head, list,
//! put with a mode, delete, upload of a local file).
//!
//! Endpoint, region, credentials and `AWS_ALLOW_HTTP` come from the standard `AWS_*`
//! environment variables (`AmazonS3Builder::from_env`); nothing here prints them, and
//! errors name only the bucket and the object path. Conditional writes use S3's
//! `If-None-Match`/`If-Match` (object_store's default `etag` conditional put).
//!
//! The store's engine is synchronous and is called from inside tokio tasks, so each
//! request runs on this handle's own runtime and the caller waits on a channel (a
//! `block_on` there would panic). What the objects mean is not decided here.
//!
//! A failed multipart upload is aborted; one whose process was killed leaves parts
//! that no listing shows and object_store cannot enumerate, so a bucket should carry
//! S3's `AbortIncompleteMultipartUpload` lifecycle rule (a day is plenty).

use super::{Result, StoreError};
use bytes::Bytes;
use futures_util::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjPath;
use object_store::{
    ObjectMeta, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion,
    WriteMultipart,
};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Files up to this size are sent in one PUT (with put-if-absent); larger ones in parts.
const SINGLE_PUT_MAX: u64 = 32 * 1024 * 1024;

/// An S3 bucket and the prefix the store lives under.
#[derive(Clone)]
pub(crate) struct Remote {
    store: Arc<dyn ObjectStore>,
    bucket: String,
    prefix: String,
    runtime: Arc<Runtime>,
}

/// The handle's runtime, shut down without waiting when the last handle goes (a
/// runtime dropped the ordinary way panics inside another runtime's task).
struct Runtime(Option<tokio::runtime::Runtime>);

impl Drop for Runtime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// What a conditional put found.
pub(crate) enum Put {
    Done,
    /// Put-if-absent found the object there already.
    Exists,
    /// Compare-and-swap found another version.
    Changed,
}

impl Remote {
    /// Parse `s3://bucket[/prefix]` and connect with the environment's settings.
    pub(crate) fn open(url: &str) -> Result<Remote> {
        let bad = |message: String| StoreError::Corrupt {
            path: PathBuf::from(url),
            message,
        };
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| bad("a remote store is written s3://bucket/prefix".into()))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(bad("the URL names no bucket (s3://bucket/prefix)".into()));
        }
        let store = AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .build()
            .map_err(|e| bad(format!("cannot open the bucket: {e}")))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("reasongen-s3")
            .enable_all()
            .build()
            .map_err(|e| bad(format!("cannot start the S3 client: {e}")))?;
        Ok(Remote {
            store: Arc::new(store),
            bucket: bucket.to_string(),
            prefix: prefix.trim_matches('/').to_string(),
            runtime: Arc::new(Runtime(Some(runtime))),
        })
    }

    /// `s3://bucket/prefix`, for messages.
    pub(crate) fn url(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.prefix)
    }

    fn path(&self, rel: &str) -> ObjPath {
        if self.prefix.is_empty() {
            ObjPath::from(rel)
        } else {
            ObjPath::from(format!("{}/{rel}", self.prefix))
        }
    }

    /// The store-relative name of an object path.
    fn rel(&self, path: &ObjPath) -> String {
        let s = path.as_ref();
        if self.prefix.is_empty() {
            s.to_string()
        } else {
            s.strip_prefix(&self.prefix)
                .map(|r| r.trim_start_matches('/'))
                .unwrap_or(s)
                .to_string()
        }
    }

    fn error(&self, rel: &str, e: impl std::fmt::Display) -> StoreError {
        StoreError::Corrupt {
            path: PathBuf::from(format!("{}/{rel}", self.url().trim_end_matches('/'))),
            message: e.to_string(),
        }
    }

    /// Run `fut` on this handle's runtime and wait for it (callable from any thread,
    /// including a tokio worker).
    fn block<F>(&self, fut: F) -> F::Output
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let rt = self.runtime.0.as_ref().expect("present until dropped");
        rt.spawn(async move {
            let _ = tx.send(fut.await);
        });
        rx.recv()
            .expect("the S3 runtime runs every request to its end")
    }

    /// The object's bytes and version, if it exists.
    pub(crate) fn get(&self, rel: &str) -> Result<Option<(Bytes, UpdateVersion)>> {
        let (store, path) = (self.store.clone(), self.path(rel));
        let got = self.block(async move {
            let r = store.get(&path).await?;
            let version = UpdateVersion {
                e_tag: r.meta.e_tag.clone(),
                version: r.meta.version.clone(),
            };
            Ok::<_, object_store::Error>((r.bytes().await?, version))
        });
        match got {
            Ok(v) => Ok(Some(v)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.error(rel, e)),
        }
    }

    /// The object's metadata, if it exists.
    pub(crate) fn head(&self, rel: &str) -> Result<Option<ObjectMeta>> {
        let (store, path) = (self.store.clone(), self.path(rel));
        match self.block(async move { store.head(&path).await }) {
            Ok(m) => Ok(Some(m)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.error(rel, e)),
        }
    }

    /// Every object under `rel_prefix` (a folder-like prefix), as (store-relative
    /// name, metadata).
    pub(crate) fn list(&self, rel_prefix: &str) -> Result<Vec<(String, ObjectMeta)>> {
        let (store, path) = (self.store.clone(), self.path(rel_prefix));
        let metas = self
            .block(async move { store.list(Some(&path)).try_collect::<Vec<_>>().await })
            .map_err(|e| self.error(rel_prefix, e))?;
        let mut out: Vec<_> = metas
            .into_iter()
            .map(|m| (self.rel(&m.location), m))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// Write `bytes` at `rel` with `mode`.
    pub(crate) fn put(&self, rel: &str, bytes: Bytes, mode: PutMode) -> Result<Put> {
        let (store, path) = (self.store.clone(), self.path(rel));
        let opts = PutOptions::from(mode);
        match self.block(async move { store.put_opts(&path, PutPayload::from(bytes), opts).await })
        {
            Ok(_) => Ok(Put::Done),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(Put::Exists),
            Err(object_store::Error::Precondition { .. }) => Ok(Put::Changed),
            Err(e) => Err(self.error(rel, e)),
        }
    }

    pub(crate) fn delete(&self, rel: &str) -> Result<()> {
        let (store, path) = (self.store.clone(), self.path(rel));
        match self.block(async move { store.delete(&path).await }) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.error(rel, e)),
        }
    }

    /// Copy the object `from` to `to` (overwriting).
    pub(crate) fn copy(&self, from: &str, to: &str) -> Result<()> {
        let (store, a, b) = (self.store.clone(), self.path(from), self.path(to));
        self.block(async move { store.copy(&a, &b).await })
            .map_err(|e| self.error(from, e))
    }

    /// Upload the local file `file` to `rel` (immutable, content-addressed: an object
    /// already there is the same bytes and counts as done). Large files go in parts,
    /// and a failed part upload is aborted.
    pub(crate) fn upload(&self, file: &Path, rel: &str) -> Result<()> {
        let size = std::fs::metadata(file)
            .map_err(|e| self.error(rel, format!("{}: {e}", file.display())))?
            .len();
        if size <= SINGLE_PUT_MAX {
            let bytes = std::fs::read(file)
                .map_err(|e| self.error(rel, format!("{}: {e}", file.display())))?;
            self.put(rel, Bytes::from(bytes), PutMode::Create)?;
            return Ok(());
        }
        let (store, path, file) = (self.store.clone(), self.path(rel), file.to_path_buf());
        self.block(async move {
            let upload = store.put_multipart(&path).await?;
            let mut writer = WriteMultipart::new(upload);
            let sent = async {
                let mut f = tokio::fs::File::open(&file).await.map_err(local)?;
                let mut buf = vec![0u8; 8 * 1024 * 1024];
                loop {
                    use tokio::io::AsyncReadExt;
                    let n = f.read(&mut buf).await.map_err(local)?;
                    if n == 0 {
                        break;
                    }
                    writer.wait_for_capacity(4).await?;
                    writer.write(&buf[..n]);
                }
                Ok::<_, object_store::Error>(())
            }
            .await;
            match sent {
                Ok(()) => writer.finish().await.map(|_| ()),
                Err(e) => {
                    let _ = writer.abort().await;
                    Err(e)
                }
            }
        })
        .map_err(|e| self.error(rel, e))
    }

    /// Download `rel` into the local file `to`, streamed.
    pub(crate) fn download(&self, rel: &str, to: &Path) -> Result<()> {
        if let Some(dir) = to.parent() {
            std::fs::create_dir_all(dir).map_err(|e| self.error(rel, e))?;
        }
        let (store, path, file) = (self.store.clone(), self.path(rel), to.to_path_buf());
        self.block(async move {
            use tokio::io::AsyncWriteExt;
            let mut stream = store.get(&path).await?.into_stream();
            let mut f = tokio::fs::File::create(&file).await.map_err(local)?;
            while let Some(chunk) = stream.try_next().await? {
                f.write_all(&chunk).await.map_err(local)?;
            }
            f.flush().await.map_err(local)
        })
        .map_err(|e| self.error(rel, format!("download to {}: {e}", to.display())))
    }
}

/// A local file's I/O error in an object_store result.
fn local(e: std::io::Error) -> object_store::Error {
    object_store::Error::Generic {
        store: "local file",
        source: Box::new(e),
    }
}
