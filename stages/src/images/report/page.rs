//! The report as pages a person reads: `index.html` (a self-contained page: counts,
//! rows set aside by reason with an example each, the plots, and a grid of sample
//! images with their prompts and rationales) and `report.md` (the same, for a code
//! host's file view).

use super::samples::Shown;
use super::stats::{ImageStats, SampleStats, SetAside, Spread};

/// What the pages show.
pub struct Page<'a> {
    pub title: &'a str,
    pub samples: &'a SampleStats,
    pub images: Option<&'a ImageStats>,
    pub set_aside: &'a [SetAside],
    /// Plot files (relative to the report folder) and their captions.
    pub plots: &'a [(String, String)],
    pub shown: &'a [Shown],
}

impl Page<'_> {
    /// Rows of the key-figures table.
    fn figures(&self) -> Vec<(String, String)> {
        let s = self.samples;
        let mut rows = vec![("SFT samples".to_string(), s.rows.to_string())];
        let codes = if s.tokenizers.is_empty() {
            s.with_codes.to_string()
        } else {
            format!("{} ({})", s.with_codes, s.tokenizers.join(", "))
        };
        rows.push(("with image codes".into(), codes));
        for (family, n) in &s.prompt_families {
            rows.push((format!("with a {family} prompt"), n.to_string()));
        }
        if let Some(t) = &s.rationale_tokens {
            rows.push(("rationale length, tokens".into(), spread(t)));
        }
        if let Some(i) = self.images {
            rows.push(("images prepared".into(), i.rows.to_string()));
            let formats: Vec<String> = i.formats.iter().map(|(f, n)| format!("{f} {n}")).collect();
            rows.push(("original formats".into(), formats.join(", ")));
            if let (Some(short), Some(long)) = (&i.shorter_side, &i.longer_side) {
                rows.push(("original shorter side, px".into(), spread(short)));
                rows.push(("original longer side, px".into(), spread(long)));
            }
        }
        let aside: u64 = self.set_aside.iter().map(|a| a.rows).sum();
        rows.push(("rows set aside".into(), aside.to_string()));
        rows
    }
}

fn spread(s: &Spread) -> String {
    format!(
        "min {} · median {} · mean {:.1} · max {}",
        s.min, s.median, s.mean, s.max
    )
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:1200px;color:#222;padding:0 1rem}\
table{border-collapse:collapse;margin:1rem 0}td,th{border-bottom:1px solid #ddd;padding:.35rem .8rem;text-align:left;vertical-align:top}\
th{background:#f4f4f4}td.n{text-align:right;font-variant-numeric:tabular-nums}.muted{color:#777}\
.plots img{max-width:100%;width:720px;border:1px solid #eee;margin:.5rem 0}\
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(300px,1fr));gap:1.2rem}\
.card{border:1px solid #ddd;border-radius:8px;overflow:hidden;background:#fff}\
.card img{width:100%;aspect-ratio:1;object-fit:cover;display:block}\
.card .text{padding:.7rem .9rem}.prompt{font-weight:600;margin-bottom:.4rem}\
.rationale{font-size:.88rem;line-height:1.4;max-height:12rem;overflow-y:auto;color:#333}\
.id{font-size:.75rem;color:#888;margin-top:.4rem;font-family:monospace}";

/// The HTML page.
pub fn html(p: &Page) -> String {
    let mut h = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{0}</title><style>{STYLE}</style></head><body>\n<h1>{0}</h1>\n",
        escape(p.title)
    );
    h.push_str("<h2>Figures</h2>\n<table>\n");
    for (k, v) in p.figures() {
        h.push_str(&format!(
            "<tr><th>{}</th><td>{}</td></tr>\n",
            escape(&k),
            escape(&v)
        ));
    }
    h.push_str("</table>\n<h2>Rows set aside</h2>\n");
    if p.set_aside.is_empty() {
        h.push_str("<p class=\"muted\">None.</p>\n");
    } else {
        h.push_str("<table><tr><th>input</th><th>table</th><th>reason</th><th>rows</th><th>example</th></tr>\n");
        for a in p.set_aside {
            h.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"n\">{}</td><td><code>{}</code>: {}</td></tr>\n",
                escape(&a.input),
                escape(&a.table),
                escape(&a.reason),
                a.rows,
                escape(&a.example_id),
                escape(&a.example_detail)
            ));
        }
        h.push_str("</table>\n");
    }
    h.push_str("<h2>Distributions</h2>\n<div class=\"plots\">\n");
    for (file, caption) in p.plots {
        h.push_str(&format!(
            "<figure><img src=\"{}\" alt=\"{1}\"><figcaption class=\"muted\">{1}</figcaption></figure>\n",
            escape(file),
            escape(caption)
        ));
    }
    h.push_str(&format!(
        "</div>\n<h2>Samples</h2>\n<p class=\"muted\">{} of {}, spread evenly over the table.</p>\n<div class=\"grid\">\n",
        p.shown.len(),
        p.samples.rows
    ));
    for s in p.shown {
        let image = match &s.file {
            Some(f) => format!("<img src=\"{}\" alt=\"{}\">", escape(f), escape(&s.prompt)),
            None => "<p class=\"muted\">(no image bytes)</p>".to_string(),
        };
        h.push_str(&format!(
            "<div class=\"card\">{image}<div class=\"text\"><div class=\"prompt\">{}</div><div class=\"rationale\">{}</div><div class=\"id\">{}</div></div></div>\n",
            escape(&s.prompt),
            escape(&s.rationale),
            escape(&s.id)
        ));
    }
    h.push_str("</div>\n</body></html>\n");
    h
}

/// Text for a Markdown table cell.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace(['\n', '\r'], " ")
}

/// The Markdown page.
pub fn markdown(p: &Page) -> String {
    let mut m = format!("# {}\n\n## Figures\n\n| | |\n| --- | --- |\n", p.title);
    for (k, v) in p.figures() {
        m.push_str(&format!("| {} | {} |\n", cell(&k), cell(&v)));
    }
    m.push_str("\n## Rows set aside\n\n");
    if p.set_aside.is_empty() {
        m.push_str("None.\n");
    } else {
        m.push_str(
            "| input | table | reason | rows | example |\n| --- | --- | --- | ---: | --- |\n",
        );
        for a in p.set_aside {
            m.push_str(&format!(
                "| {} | {} | {} | {} | `{}`: {} |\n",
                cell(&a.input),
                cell(&a.table),
                cell(&a.reason),
                a.rows,
                cell(&a.example_id),
                cell(&a.example_detail)
            ));
        }
    }
    m.push_str("\n## Distributions\n\n");
    for (file, caption) in p.plots {
        m.push_str(&format!("![{}]({file})\n\n", cell(caption)));
    }
    m.push_str(&format!("## Samples\n\n{} of {}, spread evenly over the table.\n\n| image | prompt and rationale |\n| --- | --- |\n", p.shown.len(), p.samples.rows));
    for s in p.shown {
        let image = s.file.as_ref().map_or("(no image bytes)".to_string(), |f| {
            format!("<img src=\"{f}\" width=\"256\">")
        });
        m.push_str(&format!(
            "| {image} | **{}**<br><br>{}<br><br>`{}` |\n",
            cell(&s.prompt),
            cell(&s.rationale),
            cell(&s.id)
        ));
    }
    m
}
