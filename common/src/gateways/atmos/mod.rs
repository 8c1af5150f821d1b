//! Atmos (docs/gateways/atmos.md). We call it (`client`: token, create,
//! confirm, reverse); it asks our permission before debiting (`inbound`: the
//! signed webhook).

mod client;
pub mod inbound;
mod refund;

pub use client::*;
pub use inbound::AtmosWebhook;

use crate::config::Config;
use crate::gateways::GatewayRegistry;
use std::sync::Arc;

/// Atmos when `ATMOS_*` (or the simulator) configures it.
pub fn register(
    cfg: &Config,
    registry: GatewayRegistry,
) -> Result<GatewayRegistry, crate::gateways::http::ClientSetupError> {
    let Some(a) = &cfg.atmos else {
        return Ok(registry);
    };
    let gateway = Arc::new(AtmosGateway::new(AtmosConfig {
        api_base: a.api_base.clone(),
        checkout_base: a.checkout_base.clone(),
        consumer_key: a.consumer_key.clone(),
        consumer_secret: a.consumer_secret.clone(),
        store_id: a.store_id.clone(),
        terminal_id: a.terminal_id.clone(),
        lang: a.lang.clone(),
        timeout: cfg.gateway_timeout,
    })?);
    Ok(registry
        .with(gateway.clone())
        .with_refunder(gateway)
        .with_inbound(Arc::new(AtmosWebhook {
            store_id: a.store_id.clone(),
            api_key: a.api_key.clone(),
            algorithms: a
                .sign_algorithms
                .iter()
                .filter_map(|s| SignAlgorithm::parse(s))
                .collect(),
        })))
}

#[cfg(test)]
mod props;
