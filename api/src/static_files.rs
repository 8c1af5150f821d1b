//! The script of paygate's own pages, served from paygate so the pages need
//! no inline script (see browser.rs). It reads what it needs from the page's
//! `data-*` attributes.

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

pub const STATUS_SCRIPT_PATH: &str = "/static/paygate-status.js";

const STATUS_SCRIPT: &str = r#"(function () {
  var el = document.getElementById("status");
  if (!el) return;
  var url = el.getAttribute("data-poll");
  var pending = (el.getAttribute("data-pending") || "").split(",");
  function poll() {
    fetch(url).then(function (r) { return r.json(); }).then(function (d) {
      el.textContent = d.status_display || d.status;
      el.setAttribute("data-status", d.status);
      var t = document.getElementById("tracking");
      if (t && d.gateway_tracking_code) {
        t.textContent = (t.getAttribute("data-label") || "") + d.gateway_tracking_code;
      }
      if (pending.indexOf(d.status) >= 0) setTimeout(poll, 1000);
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
