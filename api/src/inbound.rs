//! The one path every gateway call takes (`InboundAdapter` in
//! `common/src/gateways/inbound.rs`): read the call, let the gateway's
//! adapter decide, commit the decision's write all-or-nothing, push its jobs,
//! count it, answer in the gateway's format. When a concurrent write got
//! there first (a racing repeat of the same call), the adapter decides again
//! from fresh state, so every repeat gets the answer the stored state gives.
//! An answer that names a row the commit creates is finished by the
//! adapter's `committed` from what the commit produced.

use crate::extract::{kept_headers, read_body};
use crate::state::AppState;
use axum::extract::{RawQuery, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post, MethodRouter};
use axum::{Json, Router};
use paygate_common::gateways::inbound::{
    InboundAdapter, InboundContext, InboundReply, InboundRequest,
};
use paygate_common::queue::dispatch_all;
use paygate_common::security::SourceAllowlists;
use paygate_common::store::{Committed, StoreError};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// How many times a call is decided again after losing a race. A burst of
/// concurrent repeats (a gateway retrying) loses at most one race per
/// competitor, so this covers bursts far beyond what gateways send.
const DECIDE_ATTEMPTS: usize = 24;

/// The routes of every configured gateway's inbound adapter, each behind its
/// gateway's source allowlist (`PAYGATE_ALLOW_<GATEWAY>`; empty lets anyone).
pub fn router(
    adapters: &[Arc<dyn InboundAdapter>],
    allowlists: &SourceAllowlists,
    trusted_proxies: usize,
) -> Router<AppState> {
    let mut all = Router::new();
    for adapter in adapters {
        let mut router = Router::new();
        for route in adapter.routes() {
            let mut methods = MethodRouter::new();
            if route.get {
                methods = methods.merge(get(handler(adapter.clone())));
            }
            if route.post {
                methods = methods.merge(post(handler(adapter.clone())));
            }
            router = router.route(route.path, methods);
        }
        let provider = adapter.provider();
        all = all.merge(crate::guard::allowlist::restrict(
            router,
            provider.as_str(),
            allowlists.for_provider(provider),
            trusted_proxies,
        ));
    }
    all
}

fn handler(
    adapter: Arc<dyn InboundAdapter>,
) -> impl Fn(State<AppState>, RawQuery, Request) -> Pin<Box<dyn Future<Output = Response> + Send>>
       + Clone
       + Send
       + Sync
       + 'static {
    move |State(state), RawQuery(query), req| {
        let adapter = adapter.clone();
        Box::pin(async move { handle(&state, adapter.as_ref(), query, req).await })
    }
}

async fn handle(
    state: &AppState,
    adapter: &dyn InboundAdapter,
    query: Option<String>,
    req: Request,
) -> Response {
    let headers = req.headers().clone();
    let method = req.method().clone();
    let body = if method == axum::http::Method::POST {
        match read_body(req).await {
            Ok(b) => b.to_vec(),
            Err(e) => return e.into_response(),
        }
    } else {
        Vec::new()
    };
    let text = |name| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let call = InboundRequest {
        method: method.to_string(),
        query: query.unwrap_or_default(),
        content_type: text(header::CONTENT_TYPE).unwrap_or_default(),
        headers: kept_headers(&headers),
        authorization: text(header::AUTHORIZATION),
        body,
    };
    let provider = adapter.provider();
    let (outcome, reply) = settle(state, adapter, &call).await;
    let descriptor = provider.descriptor();
    paygate_common::telemetry::count_inbound(descriptor, outcome, 1);
    tracing::info!(provider = descriptor.name, outcome, "gateway call handled");
    respond(reply)
}

/// Decides and commits; returns the metric outcome and the answer.
async fn settle(
    state: &AppState,
    adapter: &dyn InboundAdapter,
    call: &InboundRequest,
) -> (&'static str, InboundReply) {
    let ctx = InboundContext {
        store: &state.store,
        retry: &state.settings.retry,
    };
    for _ in 0..DECIDE_ATTEMPTS {
        let decision = match adapter.decide(&ctx, call).await {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "a gateway call could not be judged");
                return ("error", adapter.unavailable(call));
            }
        };
        if let Some(id) = decision.payment_id {
            crate::middleware::note_payment(id);
        }
        let Some(write) = &decision.write else {
            return (decision.outcome, decision.reply);
        };
        match state.store.commit(write).await {
            Ok(Committed::Applied(applied)) => {
                if let Some(id) = write.changed_payment() {
                    state.announcer.changed(id);
                }
                dispatch_all(state.queue.as_ref(), &applied.messages).await;
                return (
                    decision.outcome,
                    adapter.committed(decision.reply, &applied),
                );
            }
            Ok(Committed::Duplicate) => return ("duplicate", decision.on_duplicate),
            Err(StoreError::Conflict) => {
                // Let the winner's commit settle before reading again; the
                // jitter keeps a crowd of losers from colliding in lockstep.
                let pause = 1 + rand::random::<u64>() % 8;
                tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
                continue;
            }
            Err(e) => {
                tracing::warn!(error = %e, "a gateway call could not be stored");
                return ("error", adapter.unavailable(call));
            }
        }
    }
    tracing::warn!("a gateway call kept racing concurrent writes");
    ("error", adapter.unavailable(call))
}

fn respond(reply: InboundReply) -> Response {
    match reply {
        InboundReply::Json { status, body } => (
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            Json(body),
        )
            .into_response(),
        InboundReply::Redirect(to) => Redirect::to(&to).into_response(),
    }
}
