//! Autopay: pays a fresh invoice and plays the browser's return, so load
//! tests and CI can run the whole flow without a person clicking.

use super::config::ReturnMethod;
use super::store::Decision;
use super::Medogram;
use crate::links::append_query;
use std::time::Duration;

pub(super) fn spawn(m: Medogram, id_get: u64, delay_ms: u64) {
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        let settled = m.store().settle(id_get, Decision::Pay);
        let Some(ret) = settled else {
            // Only possible if a test reset the sandbox meanwhile.
            tracing::warn!(id_get, "medogram autopay: invoice no longer exists");
            return;
        };
        // The shared client never follows redirects: like a browser's first
        // hop, we only need the merchant to have received the return. A payer
        // whose page fails reloads it: so does autopay, with back-off, while the
        // merchant answers 5xx or cannot be reached (up to ~1 minute).
        let mut pause = Duration::from_millis(200);
        for attempt in 1..=12 {
            let request = match m.config().return_method {
                ReturnMethod::Get => m.http().get(append_query(&ret.redirect, &ret.fields())),
                ReturnMethod::Post => m.http().post(&ret.redirect).form(&ret.fields()),
            };
            match request.send().await {
                Ok(resp) if !resp.status().is_server_error() => {
                    tracing::info!(
                        id_get,
                        trans_id = %ret.trans_id,
                        status = %resp.status(),
                        "medogram autopay: merchant return delivered"
                    );
                    return;
                }
                Ok(resp) => tracing::warn!(
                    id_get,
                    attempt,
                    status = %resp.status(),
                    "medogram autopay: merchant return failed; reloading"
                ),
                Err(err) => tracing::warn!(
                    id_get,
                    attempt,
                    redirect = %ret.redirect,
                    %err,
                    "medogram autopay: merchant return failed; reloading"
                ),
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(8));
        }
    });
}
