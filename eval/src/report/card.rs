//! A dataset card's Markdown as HTML, for the statistics it holds: the subset our
//! cards use (`#` headings, pipe tables, paragraphs, `code` and **bold**), every
//! character escaped first. The YAML front matter is left out.

use super::html::escape;
use std::fmt::Write as _;

/// The card's body (after its `---` front matter, if any).
pub fn body(markdown: &str) -> &str {
    markdown
        .strip_prefix("---\n")
        .and_then(|rest| rest.split_once("\n---\n"))
        .map_or(markdown, |(_, body)| body)
}

/// `code` spans and **bold** of escaped text as HTML.
fn inline(text: &str) -> String {
    let mut out = String::new();
    for (i, part) in escape(text).split('`').enumerate() {
        if i % 2 == 1 {
            let _ = write!(out, "<code>{part}</code>");
        } else {
            for (j, p) in part.split("**").enumerate() {
                if j % 2 == 1 {
                    let _ = write!(out, "<b>{p}</b>");
                } else {
                    out.push_str(p);
                }
            }
        }
    }
    out
}

fn cells(line: &str) -> Vec<&str> {
    line.trim()
        .trim_matches('|')
        .split('|')
        .map(str::trim)
        .collect()
}

fn paragraph_html(out: &mut String, lines: &mut Vec<&str>) {
    if !lines.is_empty() {
        let _ = write!(out, "<p>{}</p>", inline(&lines.join(" ")));
        lines.clear();
    }
}

fn table_html(out: &mut String, rows: &mut Vec<&str>) {
    if rows.is_empty() {
        return;
    }
    out.push_str("<table class=\"card\">");
    for (i, row) in rows.iter().enumerate() {
        // The second line of a pipe table only aligns the columns.
        if i == 1 && row.contains("---") {
            continue;
        }
        let tag = if i == 0 { "th" } else { "td" };
        out.push_str("<tr>");
        for c in cells(row) {
            let _ = write!(out, "<{tag}>{}</{tag}>", inline(c));
        }
        out.push_str("</tr>");
    }
    out.push_str("</table>");
    rows.clear();
}

/// Markdown (the subset above) as HTML; headings one level below `<h3>`.
pub fn to_html(markdown: &str) -> String {
    let mut out = String::new();
    let mut table: Vec<&str> = Vec::new();
    let mut paragraph: Vec<&str> = Vec::new();
    for line in body(markdown).lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('|') {
            paragraph_html(&mut out, &mut paragraph);
            table.push(trimmed);
            continue;
        }
        table_html(&mut out, &mut table);
        if let Some(h) = trimmed.strip_prefix('#') {
            paragraph_html(&mut out, &mut paragraph);
            let level = 4 + h.chars().take_while(|&c| c == '#').count().min(2);
            let _ = write!(
                out,
                "<h{level}>{}</h{level}>",
                inline(h.trim_start_matches('#').trim())
            );
        } else if trimmed.is_empty() {
            paragraph_html(&mut out, &mut paragraph);
        } else {
            paragraph.push(trimmed);
        }
    }
    paragraph_html(&mut out, &mut paragraph);
    table_html(&mut out, &mut table);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cards_become_headings_tables_and_paragraphs() {
        let md = "---\nlicense: mit\n---\n\n# Shapes <b>\n\nBuilt from `samples` and **more**\ntext.\n\n| split | rows |\n| --- | ---: |\n| train | 95 |\n| test | 5 |\n\n## Splits\n";
        let html = to_html(md);
        assert_eq!(
            html,
            "<h4>Shapes &lt;b&gt;</h4><p>Built from <code>samples</code> and <b>more</b> text.</p>\
             <table class=\"card\"><tr><th>split</th><th>rows</th></tr><tr><td>train</td><td>95</td></tr>\
             <tr><td>test</td><td>5</td></tr></table><h5>Splits</h5>"
        );
        assert_eq!(body("no front matter"), "no front matter");
    }
}
