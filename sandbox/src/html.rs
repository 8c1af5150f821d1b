//! HTML rendering helpers for the hosted checkout pages.
//!
//! Every interpolated value goes through [`escape`]: descriptions, names and
//! return URLs come from merchants (and, through them, from end users).

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

/// Escapes text for use in element content and in quoted attribute values.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// `1234567` → `1,234,567`.
pub(crate) fn group_thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;background:#f4f5f7;margin:0;padding:2rem}\
.card{max-width:28rem;margin:auto;background:#fff;border-radius:8px;padding:1.5rem 2rem;box-shadow:0 1px 4px #0002}\
h1{font-size:1.3rem;margin-top:0}.amount{font-size:1.6rem;font-weight:bold;margin:.5rem 0}\
dl{display:grid;grid-template-columns:auto 1fr;gap:.3rem 1rem}dt{color:#666}dd{margin:0;overflow-wrap:anywhere}\
.actions{display:flex;gap:.6rem;flex-wrap:wrap;margin-top:1.2rem}.actions form{margin:0}\
button{font-size:1rem;padding:.55rem 1.2rem;border:0;border-radius:5px;cursor:pointer}\
.primary{background:#1a7f37;color:#fff}.secondary{background:#d0d7de}.danger{background:#cf222e;color:#fff}\
.error{background:#ffebe9;color:#82071e;padding:.6rem;border-radius:5px}\
.note{color:#666;font-size:.85rem;margin-top:1.5rem}";

/// A complete HTML document. `title` is escaped; `body` must already be safe HTML.
pub(crate) fn document(title: &str, body: &str, head_extra: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
<title>{}</title><style>{STYLE}</style>{head_extra}</head>\
<body><div class=\"card\">{body}</div></body></html>\n",
        escape(title)
    )
}

/// A page response with the given status.
pub(crate) fn page(status: StatusCode, title: &str, body: &str) -> Response {
    (status, Html(document(title, body, ""))).into_response()
}

/// A simple message page: heading plus one paragraph, both escaped.
pub(crate) fn message(status: StatusCode, title: &str, text: &str) -> Response {
    page(
        status,
        title,
        &format!("<h1>{}</h1><p>{}</p>", escape(title), escape(text)),
    )
}

/// A `<form method="post">` with hidden fields and one submit button.
pub(crate) fn post_form(action: &str, fields: &[(&str, &str)], label: &str, class: &str) -> String {
    let hidden: String = fields
        .iter()
        .map(|(name, value)| {
            format!(
                "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
                escape(name),
                escape(value)
            )
        })
        .collect();
    format!(
        "<form method=\"post\" action=\"{}\">{hidden}<button type=\"submit\" class=\"{}\">{}</button></form>",
        escape(action),
        escape(class),
        escape(label)
    )
}

/// A definition list of label/value rows, values escaped.
pub(crate) fn details(rows: &[(&str, &str)]) -> String {
    let items: String = rows
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("<dt>{}</dt><dd>{}</dd>", escape(k), escape(v)))
        .collect();
    format!("<dl>{items}</dl>")
}

/// A page that POSTs `fields` to `action` on load, with a visible button for
/// browsers without JavaScript (the way real gateways hand back via POST).
pub(crate) fn auto_post(title: &str, action: &str, fields: &[(&str, &str)]) -> Response {
    let body = format!(
        "<h1>{}</h1><p>Returning you to the merchant…</p><div class=\"actions\">{}</div>\
<script>document.forms[0].submit();</script>",
        escape(title),
        post_form(action, fields, "Continue", "primary")
    );
    (StatusCode::OK, Html(document(title, &body, ""))).into_response()
}

/// A page that tells the user something and then sends them on to `next`
/// after a few seconds (and offers a link right away).
pub(crate) fn message_then_redirect(
    status: StatusCode,
    title: &str,
    text: &str,
    next: &str,
) -> Response {
    let body = format!(
        "<h1>{}</h1><p>{}</p><p><a href=\"{}\">Return to the merchant</a></p>",
        escape(title),
        escape(text),
        escape(next)
    );
    let refresh = format!(
        "<meta http-equiv=\"refresh\" content=\"3;url={}\">",
        escape(next)
    );
    (status, Html(document(title, &body, &refresh))).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_everything_dangerous() {
        assert_eq!(
            escape(r#"<a href="x" onclick='y'>&</a>"#),
            "&lt;a href=&quot;x&quot; onclick=&#39;y&#39;&gt;&amp;&lt;/a&gt;"
        );
    }

    #[test]
    fn groups_thousands() {
        assert_eq!(group_thousands(0), "0");
        assert_eq!(group_thousands(999), "999");
        assert_eq!(group_thousands(1000), "1,000");
        assert_eq!(group_thousands(150000), "150,000");
        assert_eq!(group_thousands(1234567890), "1,234,567,890");
    }

    #[test]
    fn forms_escape_values() {
        let f = post_form("pay", &[("r", "\"><script>")], "Pay", "primary");
        assert!(f.contains("value=\"&quot;&gt;&lt;script&gt;\""));
        assert!(!f.contains("<script>"));
    }
}
