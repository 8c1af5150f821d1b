//! The script of paygate's own pages, served from paygate so the pages need
//! no inline script (see browser.rs). It reads what it needs from the page's
//! `data-*` attributes.

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

pub const STATUS_SCRIPT_PATH: &str = "/static/paygate-status.js";

// A long poll: after the first read the script sends the `ETag` it has with
// `Prefer: wait`, and the server answers when the status changes (or `304`
// after the wait; see conditional.rs). A `304` that comes back at once (an
// operator set PAYGATE_MAX_WAIT_MS=0) is spaced to one a second, as before.
const STATUS_SCRIPT: &str = r#"(function () {
  var el = document.getElementById("status");
  if (!el) return;
  var url = el.getAttribute("data-poll");
  var pending = (el.getAttribute("data-pending") || "").split(",");
  var tag = null;
  function show(d) {
    el.textContent = d.status_display || d.status;
    el.setAttribute("data-status", d.status);
    var t = document.getElementById("tracking");
    if (t && d.gateway_tracking_code) {
      t.textContent = (t.getAttribute("data-label") || "") + d.gateway_tracking_code;
    }
  }
  function poll() {
    var started = Date.now();
    var headers = {};
    if (tag) { headers["If-None-Match"] = tag; headers["Prefer"] = "wait=25"; }
    fetch(url, { cache: "no-store", headers: headers }).then(function (r) {
      if (r.status === 304) {
        setTimeout(poll, Math.max(0, 1000 - (Date.now() - started)));
        return;
      }
      if (!r.ok) throw new Error("HTTP " + r.status);
      tag = r.headers.get("ETag");
      return r.json().then(function (d) {
        show(d);
        // Without an ETag (a proxy dropped it) the server cannot wait: ask
        // once a second, as before, rather than in a tight loop.
        if (pending.indexOf(d.status) >= 0) setTimeout(poll, tag ? 0 : 1000);
      });
    }).catch(function () { setTimeout(poll, 2000); });
  }
  poll();
})();
"#;

pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new().route(STATUS_SCRIPT_PATH, get(status_script))
}

/// The status pages' script.
#[utoipa::path(get, path = "/static/paygate-status.js", tag = "operations",
    responses((status = 200, description = "The script", content_type = "text/javascript", body = String)))]
pub(crate) async fn status_script() -> axum::response::Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        STATUS_SCRIPT,
    )
        .into_response()
}
