//! medogram: the bitpay.ir protocol (docs/gateways/medogram.md). We call it
//! (`client`: gateway-send, gateway-result-second); it sends the payer back
//! to us (`inbound`: the callback).

mod client;
pub mod inbound;

pub use client::*;
pub use inbound::MedogramCallback;

use crate::config::Config;
use crate::gateways::GatewayRegistry;
use std::sync::Arc;

/// medogram is always configured (the built-in simulator by default).
pub fn register(
    cfg: &Config,
    registry: GatewayRegistry,
) -> Result<GatewayRegistry, crate::gateways::http::ClientSetupError> {
    Ok(registry
        .with(Arc::new(MedogramGateway::new(MedogramConfig {
            base_url: cfg.medogram.gateway_url.clone(),
            api_key: cfg.medogram.api_key.clone(),
            test_mode: cfg.medogram.test_mode,
            page_suffix_get: cfg.medogram.page_suffix_get,
            timeout: cfg.gateway_timeout,
        })?))
        .with_inbound(Arc::new(MedogramCallback {
            payment_redirect_url: cfg.payment_redirect_url.clone(),
        })))
}

#[cfg(test)]
mod props;
