//! A lenient form-body extractor.
//!
//! Gateways never answer a malformed body with a framework error page; they
//! answer with their own protocol error code. So this extractor never rejects:
//! whatever it cannot read simply is not in the map, and the handler's
//! validation produces the protocol answer.

use axum::body::Bytes;
use axum::extract::{FromRequest, Multipart, Request};
use axum::http::header::CONTENT_TYPE;
use std::collections::HashMap;
use std::convert::Infallible;

/// Fields of an `application/x-www-form-urlencoded` or `multipart/form-data`
/// body. A repeated field keeps its last value, like PHP's `$_POST`.
pub(crate) struct FormFields(pub HashMap<String, String>);

impl FormFields {
    /// The trimmed value of `name`, if present.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(|v| v.trim())
    }
}

impl<S: Send + Sync> FromRequest<S> for FormFields {
    type Rejection = Infallible;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let multipart = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| {
                ct.trim_start()
                    .to_ascii_lowercase()
                    .starts_with("multipart/form-data")
            });
        let mut fields = HashMap::new();
        if multipart {
            match Multipart::from_request(req, state).await {
                Ok(mut parts) => {
                    while let Ok(Some(field)) = parts.next_field().await {
                        let name = field.name().map(str::to_owned);
                        match (name, field.text().await) {
                            (Some(name), Ok(text)) => {
                                fields.insert(name, text);
                            }
                            (_, Err(err)) => {
                                tracing::debug!(%err, "unreadable multipart field");
                                break;
                            }
                            (None, Ok(_)) => {}
                        }
                    }
                }
                Err(err) => tracing::debug!(%err, "unreadable multipart body"),
            }
        } else {
            match Bytes::from_request(req, state).await {
                Ok(body) => {
                    for (k, v) in url::form_urlencoded::parse(&body) {
                        fields.insert(k.into_owned(), v.into_owned());
                    }
                }
                Err(err) => tracing::debug!(%err, "unreadable form body"),
            }
        }
        Ok(FormFields(fields))
    }
}
