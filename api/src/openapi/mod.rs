//! The OpenAPI 3.1 document (`GET /openapi.json`) and its docs page (`/docs`,
//! Swagger UI with its assets bundled into the binary: no CDN, works offline).
//!
//! The document is generated from the code: every handler carries a
//! `#[utoipa::path]` next to it and is listed in [`ApiDoc`]; the gateways'
//! inbound routes are added from the same `InboundAdapter::routes()` that
//! mounts them. `utoipa-axum`'s router (which documents what it mounts) was
//! not used: the route modules are plain axum routers that several changes
//! extend at once; instead a test compares the routes the app really mounts
//! (read from axum's router, see [`mounted_routes`]) with the document and
//! fails on any route the document lacks.

pub mod schemas;

use crate::state::AppState;
use axum::Router;
use paygate_common::gateways::inbound::InboundAdapter;
use std::sync::Arc;
use utoipa::openapi::path::{HttpMethod, OperationBuilder, PathItem};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, ObjectBuilder, OpenApi as Document, ResponseBuilder};
use utoipa::{Modify, OpenApi};
use utoipa_swagger_ui::SwaggerUi;

/// Where the document is served.
pub const DOCUMENT_PATH: &str = "/openapi.json";
/// Where the docs page is served.
pub const DOCS_PATH: &str = "/docs";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "paygate",
        description = "One payment API in front of medogram (bitpay), Atmos, Payme and Click: \
            the seed's CrazyMiner and shop routes, the provider-neutral `/v1`, the gateways' \
            callbacks, admin and operations routes. Errors are always \
            `{\"error\": {\"code\", \"message\"}}` with a stable `code`. Creating routes take an \
            `Idempotency-Key` (Stripe's rules)."
    ),
    paths(
        crate::routes::crazyminer::create,
        crate::routes::crazyminer::status,
        crate::routes::crazyminer::list,
        crate::routes::crazyminer::result_page,
        crate::routes::v1::create,
        crate::routes::v1::show,
        crate::routes::v1::events,
        crate::routes::v1::list_jobs,
        crate::routes::v1::redrive,
        crate::routes::shop::create_seed,
        crate::routes::shop::create_v1,
        crate::routes::shop::show_seed,
        crate::routes::shop::show_v1,
        crate::routes::shop::result_page,
        crate::routes::health::healthz,
        crate::routes::health::readyz,
        crate::routes::health::metrics,
        crate::static_files::status_script,
        crate::routes::refunds::create,
        crate::routes::refunds::list,
        crate::routes::webhook_endpoints::create,
        crate::routes::webhook_endpoints::list,
        crate::routes::webhook_endpoints::show,
        crate::routes::webhook_endpoints::update,
        crate::routes::webhook_endpoints::remove,
        crate::routes::webhook_endpoints::rotate,
        crate::routes::webhook_endpoints::attempts,
        crate::routes::webhook_endpoints::redrive_since,
        crate::routes::webhook_endpoints::redrive_one,
        openapi_json,
        docs_page,
        docs_redirect,
        docs_asset,
    ),
    modifiers(&Security),
    tags(
        (name = "seed", description = "The seed's CrazyMiner routes (paths and bodies kept)"),
        (name = "shop", description = "The shop seed's order routes and their /v1 twins"),
        (name = "v1", description = "The provider-neutral API"),
        (name = "admin", description = "Operators (admin API key)"),
        (name = "gateways", description = "Calls the gateways make to paygate, in their own formats"),
        (name = "operations", description = "Health, readiness, metrics, this document"),
    )
)]
pub struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "`Authorization: Bearer <key>` (or the seed's `Token <key>`); keys from \
                         `paygate apikey create`",
                    ))
                    .build(),
            ),
        );
    }
}

/// The whole document for this process: the static routes and the inbound
/// routes of the configured gateways.
pub fn document(adapters: &[Arc<dyn InboundAdapter>]) -> Document {
    let mut doc = ApiDoc::openapi();
    for adapter in adapters {
        let gateway = adapter.provider().as_str();
        for route in adapter.routes() {
            let mut methods = Vec::new();
            if route.get {
                methods.push(HttpMethod::Get);
            }
            if route.post {
                methods.push(HttpMethod::Post);
            }
            for method in methods {
                let item = PathItem::new(
                    method.clone(),
                    inbound_operation(gateway, &method, route.path),
                );
                match doc.paths.paths.get_mut(route.path) {
                    Some(existing) => existing.merge_operations(item),
                    None => {
                        doc.paths.paths.insert(route.path.to_string(), item);
                    }
                }
            }
        }
    }
    doc
}

fn inbound_operation(
    gateway: &str,
    method: &HttpMethod,
    path: &str,
) -> utoipa::openapi::path::Operation {
    let any = || ObjectBuilder::new().build();
    let mut op = OperationBuilder::new()
        .tag("gateways")
        .summary(Some(format!("{gateway}: a call from the gateway")))
        .description(Some(format!(
            "Called by {gateway}, in {gateway}'s own protocol (see docs/gateways/). Answers in \
             the gateway's format; a source outside `PAYGATE_ALLOW_{}` gets \
             `403 source_not_allowed`.",
            gateway.to_ascii_uppercase()
        )))
        .operation_id(Some(operation_id(gateway, method, path)))
        .response(
            "default",
            ResponseBuilder::new()
                .description("The gateway protocol's answer")
                .content(
                    "application/json",
                    ContentBuilder::new().schema(Some(any())).build(),
                )
                .build(),
        );
    if matches!(method, HttpMethod::Get) {
        op = op.response(
            "303",
            ResponseBuilder::new()
                .description("The payer is sent on (a browser return)")
                .build(),
        );
    } else {
        op = op.request_body(Some(
            RequestBodyBuilder::new()
                .content(
                    "application/json",
                    ContentBuilder::new().schema(Some(any())).build(),
                )
                .content(
                    "application/x-www-form-urlencoded",
                    ContentBuilder::new().schema(Some(any())).build(),
                )
                .build(),
        ));
    }
    op.build()
}

/// Unique per gateway, method and path: `click_post_click_prepare`.
fn operation_id(gateway: &str, method: &HttpMethod, path: &str) -> String {
    let verb = if matches!(method, HttpMethod::Get) {
        "get"
    } else {
        "post"
    };
    let slug: Vec<&str> = path
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|s| !s.is_empty())
        .collect();
    format!("{gateway}_{verb}_{}", slug.join("_"))
}

/// `/openapi.json` and the docs page.
pub fn router(doc: Document) -> Router<AppState> {
    // No online validator badge: the page loads nothing from elsewhere.
    let config = utoipa_swagger_ui::Config::new([DOCUMENT_PATH]).validator_url("none");
    Router::from(
        SwaggerUi::new(DOCS_PATH)
            .url(DOCUMENT_PATH, doc)
            .config(config),
    )
}

/// The routes a router really mounts, as (METHOD, path template), read from
/// axum's own route table. axum has no API to list routes; its `Debug`
/// output names every route of the router (`RouteId(n): "/path"`) and each
/// route's endpoint with its `Allow` methods (`RouteId(n): MethodRouter(…
/// allow_header: Bytes(b"GET,HEAD") …)`). An endpoint with no method list (a
/// raw service) is reported with method `ANY`. The axum version is pinned by
/// Cargo.lock; should its output change shape, this finds nothing and the
/// coverage test says so instead of passing.
pub fn mounted_routes(router: &Router) -> Vec<(String, String)> {
    let text = format!("{router:?}");
    // The fallbacks (axum's own catch-all routes) come after the routes.
    let routes = text.split("fallback_router:").next().unwrap_or_default();
    let mut paths = std::collections::BTreeMap::new();
    let mut allows = std::collections::BTreeMap::new();
    for chunk in routes.split("RouteId(").skip(1) {
        let Some((id, rest)) = chunk.split_once("): ") else {
            continue;
        };
        let Ok(id) = id.parse::<usize>() else {
            continue;
        };
        if let Some(p) = rest.strip_prefix('"') {
            if let Some(end) = p.find('"') {
                paths.insert(id, p[..end].to_string());
            }
        } else if let Some(i) = rest.find("allow_header: Bytes(b\"") {
            let r = &rest[i + "allow_header: Bytes(b\"".len()..];
            if let Some(end) = r.find('"') {
                allows.insert(id, r[..end].to_string());
            }
        }
    }
    let mut out = Vec::new();
    for (id, path) in paths {
        match allows.get(&id) {
            Some(methods) => {
                for m in methods.split(',').filter(|m| !m.is_empty() && *m != "HEAD") {
                    out.push((m.to_string(), path.clone()));
                }
            }
            None => out.push(("ANY".to_string(), path)),
        }
    }
    out.sort();
    out.dedup();
    out
}

/// The mounted routes the document does not describe. Wildcards
/// (`{*rest}`) are written `{rest}` in the document; `ANY` is covered by
/// any method of the path.
pub fn undocumented(mounted: &[(String, String)], doc: &Document) -> Vec<(String, String)> {
    let documented = documented_routes(doc);
    mounted
        .iter()
        .filter(|(method, path)| {
            let path = path.replace("{*", "{");
            !documented
                .iter()
                .any(|(m, p)| *p == path && (m == method || method == "ANY"))
        })
        .cloned()
        .collect()
}

/// The document's (METHOD, path) pairs.
pub fn documented_routes(doc: &Document) -> Vec<(String, String)> {
    let value = serde_json::to_value(doc).unwrap_or_default();
    let mut out = Vec::new();
    if let Some(paths) = value["paths"].as_object() {
        for (path, item) in paths {
            for m in ["get", "post", "put", "patch", "delete"] {
                if item.get(m).is_some() {
                    out.push((m.to_ascii_uppercase(), path.clone()));
                }
            }
        }
    }
    out.sort();
    out
}

/// The JSON document (`GET /openapi.json`).
#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "This OpenAPI 3.1 document", content_type = "application/json", body = Object)))]
#[allow(dead_code)]
fn openapi_json() {}

/// The docs page (Swagger UI, bundled; works offline).
#[utoipa::path(get, path = "/docs/", tag = "operations",
    responses((status = 200, description = "The docs page", content_type = "text/html", body = String)))]
#[allow(dead_code)]
fn docs_page() {}

/// Sends `/docs` on to `/docs/`.
#[utoipa::path(get, path = "/docs", tag = "operations",
    responses((status = 303, description = "To /docs/")))]
#[allow(dead_code)]
fn docs_redirect() {}

/// The docs page's bundled files (scripts, styles, its configuration).
#[utoipa::path(get, path = "/docs/{rest}", tag = "operations",
    params(("rest" = String, Path, description = "A file of the docs page")),
    responses(
        (status = 200, description = "The file"),
        (status = 404, description = "No such file")))]
#[allow(dead_code)]
fn docs_asset() {}
