//! `index.html`: one self-contained page per report (`run`, `sweep`,
//! `compare`) that a reviewer can open or attach. Charts are inlined as
//! base64 PNG data URIs; there is no script, no stylesheet link and no
//! network fetch of any kind, so the page renders the same offline.

use std::fmt::Write;

/// One block of the page, in order.
pub enum Block<'a> {
    /// A section heading.
    Heading(&'a str),
    /// A paragraph of plain text.
    Paragraph(&'a str),
    /// A table: header cells, then rows.
    Table {
        /// Column names.
        header: Vec<String>,
        /// Rows of cells.
        rows: Vec<Vec<String>>,
    },
    /// A PNG chart with its alternative text.
    Image {
        /// What the chart shows.
        alt: &'a str,
        /// The PNG bytes.
        png: &'a [u8],
    },
    /// Preformatted text (a scenario, a summary table).
    Pre(&'a str),
}

const STYLE: &str =
    "body{font-family:sans-serif;max-width:1250px;margin:2em auto;padding:0 1em;color:#222}\
h1{font-size:1.6em}h2{font-size:1.25em;margin-top:1.6em;border-bottom:1px solid #ddd}\
table{border-collapse:collapse;font-size:.85em;margin:.5em 0;display:block;overflow-x:auto}\
th,td{border:1px solid #ccc;padding:.25em .5em;text-align:right;white-space:nowrap}\
th{background:#f2f2f2}td:first-child,th:first-child{text-align:left}\
img{max-width:100%;border:1px solid #eee;margin:.5em 0}\
pre{background:#f7f7f7;padding:.8em;overflow-x:auto;font-size:.8em;max-height:40em}";

/// Escapes text for HTML.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            other => out.push(other),
        }
    }
    out
}

/// Standard base64 with padding.
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let value = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for position in 0..4 {
            if position <= chunk.len() {
                out.push(ALPHABET[((value >> (18 - 6 * position)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The whole page.
pub fn page(title: &str, blocks: &[Block]) -> String {
    let mut html = String::new();
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<h1>{}</h1>\n",
        escape(title),
        escape(title)
    );
    for block in blocks {
        match block {
            Block::Heading(text) => {
                let _ = writeln!(html, "<h2>{}</h2>", escape(text));
            }
            Block::Paragraph(text) => {
                let _ = writeln!(html, "<p>{}</p>", escape(text));
            }
            Block::Table { header, rows } => {
                html.push_str("<table>\n<thead><tr>");
                for cell in header {
                    let _ = write!(html, "<th>{}</th>", escape(cell));
                }
                html.push_str("</tr></thead>\n<tbody>\n");
                for row in rows {
                    html.push_str("<tr>");
                    for cell in row {
                        let _ = write!(html, "<td>{}</td>", escape(cell));
                    }
                    html.push_str("</tr>\n");
                }
                html.push_str("</tbody>\n</table>\n");
            }
            Block::Image { alt, png } => {
                let _ = writeln!(
                    html,
                    "<img alt=\"{}\" src=\"data:image/png;base64,{}\">",
                    escape(alt),
                    base64(png)
                );
            }
            Block::Pre(text) => {
                let _ = writeln!(html, "<pre>{}</pre>", escape(text));
            }
        }
    }
    html.push_str("</body>\n</html>\n");
    html
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 4648 test vectors.
    #[test]
    fn base64_matches_the_rfc() {
        for (input, output) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(input.as_bytes()), output);
        }
    }

    // Text is escaped and the page fetches nothing: no src or href but data URIs.
    #[test]
    fn pages_are_escaped_and_self_contained() {
        let html = page(
            "a <b>",
            &[
                Block::Paragraph("x & y"),
                Block::Table {
                    header: vec!["m".into()],
                    rows: vec![vec!["<1>".into()]],
                },
                Block::Image {
                    alt: "chart",
                    png: b"\x89PNG",
                },
            ],
        );
        assert!(html.contains("<h1>a &lt;b&gt;</h1>"));
        assert!(html.contains("<td>&lt;1&gt;</td>"));
        assert!(html.contains("src=\"data:image/png;base64,iVBORw==\""));
        assert!(!html.contains("http"));
    }
}
