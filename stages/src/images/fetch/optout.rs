//! The opt-out headers: an `X-Robots-Tag` whose directives include one of the
//! configured ones (img2dataset's defaults: `noai`, `noimageai`, `noindex`,
//! `noimageindex`) opts the image out, when it names no agent (`noai`) or names ours
//! (`reasongen: noai`); a directive for another agent (`otherbot: noai`) does not.

use reqwest::header::HeaderMap;

/// The `X-Robots-Tag` value that opts the answer out, if one does.
pub fn opted_out(headers: &HeaderMap, directives: &[String], token: &str) -> Option<String> {
    headers
        .get_all("x-robots-tag")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|value| value_opts_out(value, directives, token))
        .map(str::to_string)
}

fn value_opts_out(value: &str, directives: &[String], token: &str) -> bool {
    let (agent, list) = match value.split_once(':') {
        Some((agent, list)) => (Some(agent.trim()), list),
        None => (None, value),
    };
    if agent.is_some_and(|a| !a.eq_ignore_ascii_case(token)) {
        return false;
    }
    list.split(',')
        .map(|d| d.trim().to_ascii_lowercase())
        .any(|d| directives.iter().any(|x| x.eq_ignore_ascii_case(&d)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("X-Robots-Tag", v.parse().unwrap());
        }
        h
    }

    #[test]
    fn directives_for_everyone_or_for_us_opt_out() {
        let d = ["noai".to_string(), "noimageindex".to_string()];
        let out = |v: &[&str]| opted_out(&headers(v), &d, "reasongen");
        assert_eq!(out(&["noai"]), Some("noai".into()));
        assert!(out(&["nofollow, NoImageIndex"]).is_some());
        assert!(out(&["ReasonGen: noai"]).is_some());
        assert_eq!(out(&["otherbot: noai"]), None);
        assert_eq!(out(&["nofollow", "noarchive"]), None);
        assert_eq!(out(&[]), None);
        assert_eq!(out(&["nofollow", "noai"]), Some("noai".into()));
    }
}
