//! The payer-facing result page (used when no `PAYMENT_REDIRECT_URL` is set).

use paygate_common::domain::{Lang, Payment};

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

pub fn result_page(p: &Payment) -> String {
    let id = escape(&p.id.to_string());
    let status = escape(p.status.display(Lang::Fa));
    let amount = p.amount.minor();
    format!(
        r#"<!doctype html>
<html lang="fa" dir="rtl"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>نتیجه پرداخت</title>
<style>body{{font-family:sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem}}
.status{{font-size:1.5rem;font-weight:bold}}</style></head>
<body>
<h1>نتیجه پرداخت</h1>
<p>شناسه تراکنش: <code id="tx">{id}</code></p>
<p>مبلغ: {amount} ریال</p>
<p>وضعیت: <span class="status" id="status" data-status="{raw}" data-pending="pending,processing" data-poll="/crazyminer/payment/status/{id}/">{status}</span></p>
<p id="tracking" data-label="کد پیگیری: "></p>
<script src="{script}"></script>
</body></html>"#,
        raw = p.status.as_str(),
        script = crate::static_files::STATUS_SCRIPT_PATH
    )
}

/// The payer's page after the Atmos checkout: the order and its status,
/// polled with the order's read token (`token`, already checked).
pub fn order_page(o: &paygate_common::domain::Order, token: &str) -> String {
    let id = o.id;
    let name = escape(o.product_name.as_str());
    let amount = escape(
        &o.amount
            .to_decimal_string(paygate_common::domain::Currency::Uzs),
    );
    format!(
        r#"<!doctype html>
<html lang="uz"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Buyurtma #{id}</title>
<style>body{{font-family:sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem}}
.status{{font-size:1.5rem;font-weight:bold}}</style></head>
<body>
<h1>Buyurtma #{id}</h1>
<p>{name}: {amount} so'm</p>
<p>Holat: <span class="status" id="status" data-status="{raw}" data-pending="pending" data-poll="/api/orders/{id}?token={token}">{raw}</span></p>
<script src="{script}"></script>
</body></html>"#,
        raw = o.status.as_str(),
        token = escape(token),
        script = crate::static_files::STATUS_SCRIPT_PATH
    )
}
