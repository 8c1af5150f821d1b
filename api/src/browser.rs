//! Browser protections on every HTML page (paygate's result pages and the
//! simulators' checkout pages): pages that move money must not be framed,
//! sniffed into something else, or leak their URLs (which carry tokens) to
//! other sites. One layer, so a new page cannot forget them.

use axum::extract::Request;
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use base64::Engine;
use sha2::{Digest, Sha256};
use std::sync::OnceLock;

/// The only inline script any page has: the medogram simulator's
/// auto-submitting return form. It is allowed by its hash, nothing else inline.
pub const AUTO_SUBMIT_SCRIPT: &str = "document.forms[0].submit();";

fn script_hash(script: &str) -> String {
    let digest = Sha256::digest(script.as_bytes());
    format!(
        "'sha256-{}'",
        base64::engine::general_purpose::STANDARD.encode(digest)
    )
}

/// Scripts come from paygate itself (`/static/…`) or match a known hash;
/// styles are inline `<style>` blocks (no script can run from them); forms
/// may return payers to merchants; nobody may frame the page.
pub fn content_security_policy() -> &'static str {
    static CSP: OnceLock<String> = OnceLock::new();
    CSP.get_or_init(|| {
        format!(
            "default-src 'none'; script-src 'self' {}; style-src 'self' 'unsafe-inline'; \
             img-src 'self' data:; connect-src 'self'; form-action 'self' http: https:; \
             base-uri 'none'; frame-ancestors 'none'",
            script_hash(AUTO_SUBMIT_SCRIPT)
        )
    })
}

pub async fn protect_pages(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let html = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("text/html"));
    let h = resp.headers_mut();
    // nosniff is right for every response; the rest matter for pages.
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if html {
        if let Ok(v) = HeaderValue::from_str(content_security_policy()) {
            h.insert(header::CONTENT_SECURITY_POLICY, v);
        }
        h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        h.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_hashes_the_auto_submit_script_and_forbids_framing() {
        let csp = content_security_policy();
        // echo -n 'document.forms[0].submit();' | openssl dgst -sha256 -binary | base64
        assert!(csp.contains(&script_hash(AUTO_SUBMIT_SCRIPT)));
        assert!(csp.contains("frame-ancestors 'none'"));
        assert!(!csp.contains("'unsafe-inline' ;") && !csp.contains("script-src 'unsafe-inline'"));
    }
}
