//! The gateways this deployment has configured: each gateway folder's
//! `register` builds its outbound client and inbound adapter from the
//! configuration. Adding a gateway adds one line to [`configured`].

use super::http::ClientSetupError;
use super::inbound::InboundAdapter;
use super::{atmos, click, medogram, payme, Gateway, Refunder};
use crate::config::Config;
use crate::domain::Provider;
use std::collections::HashMap;
use std::sync::Arc;

/// The configured gateways, by provider.
#[derive(Clone, Default)]
pub struct GatewayRegistry {
    outbound: HashMap<Provider, Arc<dyn Gateway>>,
    inbound: Vec<Arc<dyn InboundAdapter>>,
    refunders: HashMap<Provider, Arc<dyn Refunder>>,
}

impl GatewayRegistry {
    /// Adds a gateway we call.
    pub fn with(mut self, gateway: Arc<dyn Gateway>) -> Self {
        self.outbound.insert(gateway.provider(), gateway);
        self
    }
    /// Adds a gateway's inbound adapter (its routes are mounted by the API).
    pub fn with_inbound(mut self, adapter: Arc<dyn InboundAdapter>) -> Self {
        self.inbound.push(adapter);
        self
    }
    pub fn get(&self, provider: Provider) -> Option<&dyn Gateway> {
        self.outbound.get(&provider).map(|g| g.as_ref())
    }
    /// True when payments through `provider` can be taken here.
    pub fn has(&self, provider: Provider) -> bool {
        self.outbound.contains_key(&provider)
            || self.inbound.iter().any(|a| a.provider() == provider)
    }
    pub fn inbound(&self) -> &[Arc<dyn InboundAdapter>] {
        &self.inbound
    }
    /// Adds a gateway's refund client.
    pub fn with_refunder(mut self, refunder: Arc<dyn Refunder>) -> Self {
        self.refunders.insert(refunder.provider(), refunder);
        self
    }
    /// The refund client of `provider`, when it is configured here.
    pub fn refunder(&self, provider: Provider) -> Option<&dyn Refunder> {
        self.refunders.get(&provider).map(|r| r.as_ref())
    }
}

/// Every gateway the configuration enables. A client that cannot be built is
/// a start-up error.
pub fn configured(cfg: &Config) -> Result<GatewayRegistry, ClientSetupError> {
    let registry = GatewayRegistry::default();
    let registry = medogram::register(cfg, registry)?;
    let registry = atmos::register(cfg, registry)?;
    let registry = payme::register(cfg, registry)?;
    click::register(cfg, registry)
}
