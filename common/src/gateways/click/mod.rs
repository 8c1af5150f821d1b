//! Click (Uzbekistan) SHOP-API: Click calls *us* twice per payment attempt,
//! Prepare (`action=0`) and Complete (`action=1`), with form-encoded,
//! md5-signed bodies, and reads our JSON answer's `error` code
//! (docs/gateways/click.md).
//!
//! The module is split by job, none of which touches the database:
//! - [`protocol`]: parse a body into a typed request keeping the raw texts,
//!   check `sign_string` and `service_id`, build answers;
//! - [`rules`]: the pure decision (answer + effect to persist) from a request
//!   and the facts the caller loaded; the stored record type [`rules::ClickPrepare`];
//! - [`checkout`]: the `my.click.uz/services/pay` link for an order;
//! - [`merchant_api`]: the client for Click's Merchant API (payment status,
//!   reversal) that refunds use;
//! - [`settings`]: `CLICK_*` variables, defaulting to the built-in simulator;
//! - [`gateway`]: the pay link as paygate's [`crate::gateways::Gateway`];
//! - [`inbound`]: the store-facing adapter for the calls (`POST /click/…`),
//!   which follows the picture below through paygate's generic inbound path.
//!
//! # Handling one inbound call
//!
//! ```text
//! body ──protocol::parse_form──► ClickRequest ──protocol::authenticate──► Verified
//!   │ Err(Rejection) → answer rejection.answer()          │ Err(Rejection) → answer it
//!   ▼                                                     ▼
//! load Facts (see rules::Facts: the order, the prepare by id or by click_trans_id)
//!   ▼
//! rules::decide(&verified, &facts) ──► Decision { answer, effect }
//!   ▼
//! persist decision.effect in ONE conditional write, then answer:
//!   - Effect::RecordPrepare: insert (unique click_trans_id), answer
//!     decision.answer.with_prepare_id(new id);
//!   - Effect::Complete / Effect::Cancel: update only while the prepare is still
//!     `prepared` (Complete also needs the order still `pending`);
//!   - a lost race (unique violation, 0 rows updated): load the facts again and
//!     decide again, so concurrent duplicates get the answer stored state implies;
//!   - the database fails: answer protocol::Answer::failed_to_update (-7),
//!     never a success that was not stored.
//! ```

pub mod checkout;
pub mod gateway;
pub mod inbound;
pub mod merchant_api;
pub mod protocol;
pub mod refund;
pub mod rules;
pub mod settings;

pub use gateway::ClickCheckout;
pub use inbound::ClickShop;

use crate::config::Config;
use crate::gateways::GatewayRegistry;
use std::sync::Arc;

/// Click when `CLICK_*` (or the simulator) configures it: the pay link and
/// the Prepare/Complete routes.
pub fn register(
    cfg: &Config,
    registry: GatewayRegistry,
) -> Result<GatewayRegistry, crate::gateways::http::ClientSetupError> {
    let Some(c) = &cfg.click else {
        return Ok(registry);
    };
    // Refunds need the Merchant API user; without it Click payments are
    // taken but a refund job fails with `gateway_not_configured`.
    let registry = match c.merchant_api(cfg.gateway_timeout) {
        Some(api) => registry.with_refunder(Arc::new(refund::ClickRefunder {
            api: merchant_api::ClickMerchantApi::new(api)?,
        })),
        None => registry,
    };
    Ok(registry
        .with(Arc::new(ClickCheckout {
            settings: c.clone(),
        }))
        .with_inbound(Arc::new(ClickShop {
            service_id: c.service_id,
            secret_key: c.secret_key.clone(),
        })))
}
