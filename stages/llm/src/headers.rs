//! What servers say about their limits in response headers.
//!
//! - `Retry-After` in seconds (`7`, `1.5`) or as an HTTP date, and `retry-after-ms`
//!   (OpenAI, Azure OpenAI);
//! - `x-ratelimit-{limit,remaining,reset}-{requests,tokens}` (OpenAI, Azure OpenAI and
//!   the gateways that copy them; resets as `1s`, `6m0s`, `20ms` or plain seconds).
//!
//! vLLM, SGLang, llama.cpp server and Ollama send none of these; the scheduler then
//! relies on the recipe's limits and on backoff.

use reqwest::header::HeaderMap;
use std::time::{Duration, SystemTime};

/// One kind of limit (requests or tokens) as a response announced it.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Announced {
    /// Per minute.
    pub limit: Option<f64>,
    pub remaining: Option<f64>,
    pub reset: Option<Duration>,
}

/// The rate-limit headers of one response.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct RateHeaders {
    pub requests: Announced,
    pub tokens: Announced,
    /// From `retry-after-ms` or `Retry-After`.
    pub retry_after: Option<Duration>,
}

impl RateHeaders {
    pub fn parse(headers: &HeaderMap, now: SystemTime) -> RateHeaders {
        let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let number = |name: &str| text(name).and_then(|v| v.trim().parse::<f64>().ok());
        let announced = |[limit, remaining, reset]: [&str; 3]| Announced {
            limit: number(limit),
            remaining: number(remaining),
            reset: text(reset).and_then(parse_duration),
        };
        let retry_after = number("retry-after-ms")
            .filter(|ms| ms.is_finite() && *ms >= 0.0)
            .map(|ms| Duration::from_secs_f64(ms / 1000.0))
            .or_else(|| text("retry-after").and_then(|v| parse_retry_after(v, now)));
        RateHeaders {
            requests: announced([
                "x-ratelimit-limit-requests",
                "x-ratelimit-remaining-requests",
                "x-ratelimit-reset-requests",
            ]),
            tokens: announced([
                "x-ratelimit-limit-tokens",
                "x-ratelimit-remaining-tokens",
                "x-ratelimit-reset-tokens",
            ]),
            retry_after,
        }
    }
}

/// `Retry-After`: delay-seconds (fractions accepted) or an HTTP date (a date in the past
/// means now).
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// A reset time as OpenAI writes it (`1s`, `6m0s`, `1h2m3.5s`, `20ms`) or plain seconds.
pub fn parse_duration(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs));
    }
    let mut total = 0.0;
    let mut rest = value;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let n: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        total += n * match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 0.001,
            _ => return None,
        };
        rest = &rest[unit_len..];
    }
    Some(Duration::from_secs_f64(total))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderName, HeaderValue};

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| {
                (
                    HeaderName::from_bytes(k.as_bytes()).unwrap(),
                    HeaderValue::from_str(v).unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn retry_after_in_seconds_and_as_a_date() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("0.5", now),
            Some(Duration::from_millis(500))
        );
        let later = httpdate::fmt_http_date(now + Duration::from_secs(42));
        assert_eq!(
            parse_retry_after(&later, now),
            Some(Duration::from_secs(42))
        );
        let past = httpdate::fmt_http_date(now - Duration::from_secs(5));
        assert_eq!(parse_retry_after(&past, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-1", now), None);
    }

    #[test]
    fn openai_reset_durations() {
        assert_eq!(parse_duration("1s"), Some(Duration::from_secs(1)));
        assert_eq!(parse_duration("6m0s"), Some(Duration::from_secs(360)));
        assert_eq!(parse_duration("20ms"), Some(Duration::from_millis(20)));
        assert_eq!(
            parse_duration("1h2m3.5s"),
            Some(Duration::from_secs_f64(3723.5))
        );
        assert_eq!(parse_duration("2"), Some(Duration::from_secs(2)));
        assert_eq!(parse_duration("3 days"), None);
    }

    #[test]
    fn openai_and_azure_headers() {
        let now = SystemTime::now();
        let h = RateHeaders::parse(
            &headers(&[
                ("x-ratelimit-limit-requests", "5000"),
                ("x-ratelimit-remaining-requests", "4999"),
                ("x-ratelimit-reset-requests", "12ms"),
                ("x-ratelimit-limit-tokens", "2000000"),
                ("x-ratelimit-remaining-tokens", "1999000"),
                ("x-ratelimit-reset-tokens", "30ms"),
                ("retry-after", "20"),
                ("retry-after-ms", "1500"),
            ]),
            now,
        );
        assert_eq!(h.requests.limit, Some(5000.0));
        assert_eq!(h.requests.remaining, Some(4999.0));
        assert_eq!(h.requests.reset, Some(Duration::from_millis(12)));
        assert_eq!(h.tokens.limit, Some(2_000_000.0));
        // The finer `retry-after-ms` wins over `Retry-After`.
        assert_eq!(h.retry_after, Some(Duration::from_millis(1500)));
        // Azure sends only the remaining counts.
        let azure = RateHeaders::parse(
            &headers(&[
                ("x-ratelimit-remaining-requests", "0"),
                ("retry-after", "6"),
            ]),
            now,
        );
        assert_eq!(azure.requests.limit, None);
        assert_eq!(azure.requests.remaining, Some(0.0));
        assert_eq!(azure.retry_after, Some(Duration::from_secs(6)));
        assert_eq!(
            RateHeaders::parse(&HeaderMap::new(), now),
            RateHeaders::default()
        );
    }
}
