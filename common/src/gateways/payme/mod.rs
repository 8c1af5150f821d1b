//! Payme (Paycom) Merchant API, Uzbekistan (docs/gateways/payme.md).
//!
//! Payme calls us: one HTTPS endpoint receives JSON-RPC calls
//! (CheckPerformTransaction → CreateTransaction → PerformTransaction, and
//! CancelTransaction, CheckTransaction, GetStatement, SetFiscalData), and
//! every answer is HTTP 200. We only build the checkout link.
//!
//! - [`protocol`]: the envelope, typed commands, errors and answer bodies;
//! - [`auth`]: `Authorization: Basic base64("Paycom:<key>")`;
//! - [`rules`]: the transaction state machine as pure decisions;
//! - [`checkout`]: the GET checkout link;
//! - [`settings`]: `PAYME_*` variables.
//!
//! An endpoint handles a call as: [`auth::authorize`] (else -32504),
//! [`protocol::parse_request`] (else its rejection), load the facts the
//! command names, [`rules::decide`], persist the decision's effects
//! atomically (re-deciding on a lost race), answer with
//! [`protocol::answer_body`]; a storage failure answers
//! [`protocol::RpcError::system_error`] (-32400), never a success.

pub mod auth;
pub mod checkout;
pub mod gateway;
pub mod inbound;
pub mod protocol;
pub mod rules;
pub mod settings;

pub use gateway::PaymeCheckout;
pub use inbound::PaymeRpc;

use crate::config::Config;
use crate::gateways::GatewayRegistry;
use std::sync::Arc;

/// Payme when `PAYME_*` (or the simulator) configures it: the checkout link
/// and the JSON-RPC endpoint.
pub fn register(
    cfg: &Config,
    registry: GatewayRegistry,
) -> Result<GatewayRegistry, crate::gateways::http::ClientSetupError> {
    let Some(settings) = &cfg.payme else {
        return Ok(registry);
    };
    Ok(registry
        .with(Arc::new(PaymeCheckout {
            settings: settings.clone(),
            lang: checkout::Lang::Ru,
        }))
        .with_inbound(Arc::new(PaymeRpc {
            settings: settings.clone(),
        })))
}
