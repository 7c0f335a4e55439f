//! One URL fetched: redirects followed by hand (so that a loop and a long chain are
//! told apart, and each hop waits its turn at its own host), answers of 408, 429 and
//! 5xx retried with exponential backoff or after the server's `Retry-After`, the
//! opt-out headers honoured, the body read under the byte cap and the deadline, and
//! the bytes sniffed for an image format.

use super::config::FetchConfig;
use super::limiter::Limiter;
use super::optout::opted_out;
use super::reason::{Failure, Reason};
use super::sniff::{Sniffed, sniff};
use reqwest::{Client, Response, Url, header};
use std::time::{Duration, SystemTime};
use tokio::time::{Instant, timeout_at};

/// An image fetched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fetched {
    pub bytes: Vec<u8>,
    pub image: Sniffed,
}

/// What one URL took: requests sent (hops and retries included) and retries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Effort {
    pub requests: u64,
    pub retries: u64,
}

/// The HTTP side of a run: one client, the limits, the config.
pub struct Getter {
    client: Client,
    limiter: Limiter,
    config: FetchConfig,
}

/// The host a URL's requests are limited under.
pub fn host_of(url: &Url) -> String {
    match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_string(),
        (None, _) => String::new(),
    }
}

/// A URL of `text`, if it is an `http` or `https` one.
pub fn parse_url(text: &str) -> Result<Url, Failure> {
    let url = Url::parse(text.trim())
        .map_err(|e| Failure::new(Reason::BadUrl, format!("not a URL ({e}): `{text}`")))?;
    match url.scheme() {
        "http" | "https" if url.host_str().is_some() => Ok(url),
        _ => Err(Failure::new(
            Reason::BadUrl,
            format!("not an http(s) URL: `{text}`"),
        )),
    }
}

/// The wait a `Retry-After` header asks for (seconds or an HTTP date).
fn retry_after(response: &Response) -> Option<Duration> {
    let value = response.headers().get(header::RETRY_AFTER)?.to_str().ok()?;
    match value.trim().parse::<u64>() {
        Ok(secs) => Some(Duration::from_secs(secs)),
        Err(_) => {
            let at = httpdate::parse_http_date(value.trim()).ok()?;
            Some(at.duration_since(SystemTime::now()).unwrap_or_default())
        }
    }
}

fn transport(e: reqwest::Error, in_body: bool) -> Failure {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        text = format!("{text}: {s}");
        source = s.source();
    }
    let reason = if e.is_timeout() {
        Reason::Timeout
    } else if in_body {
        Reason::BodyError
    } else {
        Reason::ConnectError
    };
    Failure::new(reason, text)
}

impl Getter {
    pub fn new(config: FetchConfig) -> Result<Getter, String> {
        let client = Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(config.connect_timeout())
            .read_timeout(config.read_timeout())
            .user_agent(config.user_agent())
            .pool_max_idle_per_host(config.per_host_concurrency as usize)
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        Ok(Getter {
            client,
            limiter: Limiter::new(
                config.concurrency,
                config.per_host_concurrency,
                config.per_host_requests_per_second,
            ),
            config,
        })
    }

    /// Fetch `url` with retries; `effort` counts what it took.
    pub async fn get(&self, url: &Url, effort: &mut Effort) -> Result<Fetched, Failure> {
        let mut attempt = 0;
        loop {
            let failure = match self.attempt(url, effort).await {
                Ok(fetched) => return Ok(fetched),
                Err(f) if f.retryable() && attempt < self.config.retries => f,
                Err(f) => return Err(f),
            };
            let wait = failure
                .retry_after
                .unwrap_or_else(|| self.config.backoff(attempt));
            if wait > self.config.max_backoff() {
                return Err(Failure {
                    detail: format!(
                        "{}; the server asked to wait {} s, more than max_backoff_s",
                        failure.detail,
                        wait.as_secs()
                    ),
                    ..failure
                });
            }
            tokio::time::sleep(wait).await;
            attempt += 1;
            effort.retries += 1;
        }
    }

    /// One attempt: the redirect chain and the body, within the deadline.
    async fn attempt(&self, url: &Url, effort: &mut Effort) -> Result<Fetched, Failure> {
        let deadline = Instant::now() + self.config.deadline();
        let late = || {
            Failure::new(
                Reason::Timeout,
                format!(
                    "no whole image within deadline_s = {} s",
                    self.config.deadline_s
                ),
            )
        };
        let mut visited = vec![url.clone()];
        let mut current = url.clone();
        loop {
            let _permit = timeout_at(deadline, self.limiter.acquire(&host_of(&current)))
                .await
                .map_err(|_| late())?;
            effort.requests += 1;
            let response = timeout_at(deadline, self.client.get(current.clone()).send())
                .await
                .map_err(|_| late())?
                .map_err(|e| transport(e, false))?;
            let status = response.status();
            if status.is_redirection() {
                let next = self.redirect(&current, &response, &visited)?;
                visited.push(next.clone());
                current = next;
                continue;
            }
            if !status.is_success() {
                return Err(Failure::http(status.as_u16(), retry_after(&response)));
            }
            if self.config.respect_opt_out
                && let Some(tag) = opted_out(
                    response.headers(),
                    &self.config.opt_out_directives,
                    &self.config.user_agent_token,
                )
            {
                return Err(Failure::new(
                    Reason::OptedOut,
                    format!("X-Robots-Tag: {tag}"),
                ));
            }
            let bytes = timeout_at(deadline, self.body(response))
                .await
                .map_err(|_| late())??;
            let image = sniff(&bytes).map_err(|why| Failure::new(Reason::NotAnImage, why))?;
            return Ok(Fetched { bytes, image });
        }
    }

    /// Where a redirect answer sends us, unless that is a loop or one hop too many.
    fn redirect(&self, from: &Url, response: &Response, visited: &[Url]) -> Result<Url, Failure> {
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| Failure::http(status, None))?;
        let next = from.join(location).map_err(|e| {
            Failure::new(
                Reason::BadUrl,
                format!("redirect to `{location}`, not a URL ({e})"),
            )
        })?;
        if !matches!(next.scheme(), "http" | "https") {
            return Err(Failure::new(
                Reason::BadUrl,
                format!("redirect to `{next}`, not an http(s) URL"),
            ));
        }
        if visited.contains(&next) {
            return Err(Failure::new(
                Reason::RedirectLoop,
                format!("{from} redirects back to {next}"),
            ));
        }
        if visited.len() > self.config.max_redirects as usize {
            return Err(Failure::new(
                Reason::TooManyRedirects,
                format!(
                    "more than max_redirects = {} redirects (last to {next})",
                    self.config.max_redirects
                ),
            ));
        }
        Ok(next)
    }

    /// The body, abandoned as soon as it passes the byte cap.
    async fn body(&self, mut response: Response) -> Result<Vec<u8>, Failure> {
        let cap = self.config.max_bytes;
        let too_large = |n: u64| {
            Failure::new(
                Reason::TooLarge,
                format!("{n} bytes or more, over max_bytes = {cap}"),
            )
        };
        if let Some(n) = response.content_length().filter(|&n| n > cap) {
            return Err(too_large(n));
        }
        let mut bytes = Vec::with_capacity(response.content_length().unwrap_or(0) as usize);
        while let Some(chunk) = response.chunk().await.map_err(|e| transport(e, true))? {
            if (bytes.len() + chunk.len()) as u64 > cap {
                return Err(too_large((bytes.len() + chunk.len()) as u64));
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(bytes)
    }
}
