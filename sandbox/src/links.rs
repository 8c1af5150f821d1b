//! Return-URL handling shared by both simulators.
//!
//! Merchants encode their return URLs in every way imaginable (raw, once,
//! twice), so decoding is deliberately lenient.

/// Where the simulators may send a payer back to. A return link is always
/// an absolute `http(s)` URL (a `javascript:` link would run in the
/// simulator's origin); [`ReturnLinks::Origins`] narrows it to named sites,
/// so a shared simulator cannot be used as an open redirect.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ReturnLinks {
    /// Any absolute http(s) URL (the library default, for tests and local use).
    #[default]
    AnyHttp,
    /// Only URLs on these origins, e.g. `http://127.0.0.1:8080`.
    Origins(Vec<String>),
}

impl ReturnLinks {
    /// Only links to `base_url`'s origin.
    pub fn only(base_url: &str) -> Self {
        let origin = url::Url::parse(base_url)
            .map(|u| u.origin().ascii_serialization())
            .unwrap_or_default();
        ReturnLinks::Origins(vec![origin])
    }

    pub fn allows(&self, link: &str) -> bool {
        let Ok(url) = url::Url::parse(link.trim()) else {
            return false;
        };
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return false;
        }
        match self {
            ReturnLinks::AnyHttp => true,
            ReturnLinks::Origins(origins) => {
                let origin = url.origin().ascii_serialization();
                origins.contains(&origin)
            }
        }
    }
}

/// Percent-decodes `raw` again while it still looks like an encoded URL.
///
/// Callers pass a value that transport decoding (form or query) already
/// decoded once; the BitPay Laravel sample URL-encodes `redirect` before
/// form-encoding it, so it arrives as `https%3A%2F%2F…` and needs a second pass.
pub(crate) fn decode_lenient(raw: &str) -> String {
    let mut value = raw.trim().to_owned();
    // Bounded so a pathological value cannot loop forever.
    for _ in 0..3 {
        if !looks_encoded(&value) {
            break;
        }
        value = percent_decode(&value);
    }
    value
}

fn looks_encoded(s: &str) -> bool {
    let lower = s.to_ascii_lowercase();
    // `http%3A…`, or `http%253A…` when the `%` signs were encoded too.
    let scheme_then_escape = lower
        .strip_prefix("https")
        .or_else(|| lower.strip_prefix("http"))
        .is_some_and(|rest| rest.starts_with('%'));
    scheme_then_escape || (!lower.contains("://") && lower.contains("%3a%2f%2f"))
}

/// Decodes `%XX` escapes, keeping malformed escapes and `+` literally (a `+`
/// inside a URL is data, not a space).
pub(crate) fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            if let Some(b) = hex {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Appends query parameters to `base`, keeping any query string and fragment
/// it already has.
pub(crate) fn append_query(base: &str, pairs: &[(&str, &str)]) -> String {
    if let Ok(mut url) = url::Url::parse(base) {
        if !url.cannot_be_a_base() {
            {
                let mut query = url.query_pairs_mut();
                for (k, v) in pairs {
                    query.append_pair(k, v);
                }
            }
            return url.into();
        }
    }
    // Relative or odd URLs: plain string surgery is the best we can do.
    let (head, fragment) = match base.split_once('#') {
        Some((h, f)) => (h, Some(f)),
        None => (base, None),
    };
    let encoded = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    let sep = if head.contains('?') {
        if head.ends_with('?') || head.ends_with('&') {
            ""
        } else {
            "&"
        }
    } else {
        "?"
    };
    let mut out = format!("{head}{sep}{encoded}");
    if let Some(f) = fragment {
        out.push('#');
        out.push_str(f);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_http_links_and_only_allowed_origins() {
        let any = ReturnLinks::AnyHttp;
        assert!(any.allows("https://shop.example/r?o=1"));
        assert!(any.allows("http://127.0.0.1:8080/x"));
        for bad in [
            "javascript:alert(document.domain)",
            " JavaScript:alert(1)",
            "data:text/html,<script>alert(1)</script>",
            "/relative",
            "//evil.example/x",
            "ftp://x.example/",
            "",
        ] {
            assert!(!any.allows(bad), "{bad}");
        }
        let ours = ReturnLinks::only("http://127.0.0.1:8080");
        assert!(ours.allows("http://127.0.0.1:8080/api/orders/1/result/?token=ab"));
        assert!(!ours.allows("https://evil.example/landing"));
        assert!(!ours.allows("http://127.0.0.1:8081/"));
        assert!(!ours.allows("http://127.0.0.1:8080@evil.example/"));
    }

    #[test]
    fn decodes_double_encoded_once_more() {
        assert_eq!(
            decode_lenient("https%3A%2F%2Fshop.example%2Fret%3Fa%3D1"),
            "https://shop.example/ret?a=1"
        );
        // Triple encoding (encoded `%` signs) also unwinds.
        assert_eq!(
            decode_lenient("https%253A%252F%252Fx.example%252F"),
            "https://x.example/"
        );
        assert_eq!(
            decode_lenient("https://shop.example/r?q=a%20b"),
            "https://shop.example/r?q=a%20b"
        );
    }

    #[test]
    fn malformed_escapes_survive() {
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        assert_eq!(percent_decode("a+b%2B"), "a+b+");
    }

    #[test]
    fn appends_respecting_existing_query_and_fragment() {
        assert_eq!(
            append_query(
                "https://m.example/cb?x=1#top",
                &[("trans_id", "5"), ("f", "a b")]
            ),
            "https://m.example/cb?x=1&trans_id=5&f=a+b#top"
        );
        assert_eq!(append_query("/cb", &[("a", "1")]), "/cb?a=1");
        assert_eq!(append_query("/cb?z=2", &[("a", "1")]), "/cb?z=2&a=1");
    }
}
