//! The gateways paygate speaks to, and the registry of what each one is.
//!
//! Every fact about a gateway that code outside its own folder needs —
//! its name, currency, amount limits, how its checkout works, what it can
//! do — is one line of [`Provider::descriptor`]. Listing, parsing, metric
//! pre-registration, background reconcilers and the API's provider checks
//! are derived from it. Adding a gateway is its folder
//! (`common/src/gateways/<name>/`, `sandbox/src/<name>/`), a variant here with
//! its descriptor line, and its configuration section; the compiler points at
//! anything else (see ARCHITECTURE.md, "Adding a gateway").

use super::money::Currency;
use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, strum::EnumIter)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// medogram: the bitpay.ir protocol (gateway-send / gateway-result-second).
    Medogram,
    Atmos,
    /// Payme (Paycom) Merchant API: Payme calls our JSON-RPC endpoint.
    Payme,
    /// Click SHOP-API: Click calls our Prepare and Complete.
    Click,
}

/// How a payer reaches the gateway's checkout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checkout {
    /// A worker asks the gateway for an invoice and its payment URL.
    Invoice,
    /// The checkout link is built locally at once; the gateway calls us.
    Link,
}

/// What a gateway can do for us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// We can ask it server to server whether a payment happened.
    pub verify: bool,
    /// It can be asked about a payment without a callback in hand, so a lost
    /// callback is caught by the reconciler.
    pub reconcile: bool,
    /// It refunds through an API we call.
    pub refund: bool,
}

/// Which counter a gateway's inbound calls go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InboundMetric {
    /// `paygate_callbacks_total`: the payer's browser (or the gateway) returns to us.
    Callbacks,
    /// `paygate_webhooks_total`: the gateway's signed server-to-server calls.
    Webhooks,
}

/// One gateway's facts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Descriptor {
    pub provider: Provider,
    /// The stable name: in the database, in metric labels, in `/v1`.
    pub name: &'static str,
    pub currency: Currency,
    /// The smallest and largest amounts it accepts, in minor units.
    pub min_amount: i64,
    pub max_amount: i64,
    pub checkout: Checkout,
    pub capabilities: Capabilities,
    /// The calls we make to it, as metric `operation` labels.
    pub operations: &'static [&'static str],
    /// The metric its inbound calls are counted in, and the outcomes there.
    pub inbound_metric: InboundMetric,
    pub inbound_outcomes: &'static [&'static str],
}

impl Provider {
    /// The registry: one line per gateway.
    pub const fn descriptor(self) -> &'static Descriptor {
        match self {
            Provider::Medogram => &Descriptor {
                provider: Provider::Medogram,
                name: "medogram",
                currency: Currency::Irr,
                // bitpay.ir refuses under 1000 rial.
                min_amount: 1000,
                max_amount: 500_000_000_000,
                checkout: Checkout::Invoice,
                // It has no query-by-order call: without the callback's
                // trans_id there is nothing to ask (docs/gateways/medogram.md).
                capabilities: Capabilities {
                    verify: true,
                    reconcile: false,
                    refund: false,
                },
                operations: &["create_invoice", "verify"],
                inbound_metric: InboundMetric::Callbacks,
                inbound_outcomes: &[
                    "accepted",
                    "duplicate",
                    "unknown",
                    "refused",
                    "invalid",
                    "error",
                ],
            },
            Provider::Atmos => &Descriptor {
                provider: Provider::Atmos,
                name: "atmos",
                currency: Currency::Uzs,
                min_amount: 100,
                max_amount: 1_000_000_000_000,
                checkout: Checkout::Invoice,
                capabilities: Capabilities {
                    verify: true,
                    reconcile: true,
                    refund: true,
                },
                operations: &["token", "create_invoice", "verify", "reverse"],
                inbound_metric: InboundMetric::Webhooks,
                inbound_outcomes: &[
                    "accepted",
                    "duplicate",
                    "bad_signature",
                    "refused",
                    "unknown",
                    "invalid",
                    "error",
                ],
            },
            Provider::Payme => &Descriptor {
                provider: Provider::Payme,
                name: "payme",
                currency: Currency::Uzs,
                min_amount: 100,
                max_amount: 1_000_000_000_000,
                checkout: Checkout::Link,
                // Payme settles inside its own calls; refunds start in
                // Payme's cabinet (CancelTransaction on a performed one).
                capabilities: Capabilities {
                    verify: false,
                    reconcile: false,
                    refund: false,
                },
                operations: &[],
                inbound_metric: InboundMetric::Webhooks,
                inbound_outcomes: &["accepted", "refused", "unauthorized", "invalid", "error"],
            },
            Provider::Click => &Descriptor {
                provider: Provider::Click,
                name: "click",
                currency: Currency::Uzs,
                min_amount: 100,
                max_amount: 1_000_000_000_000,
                checkout: Checkout::Link,
                // Click settles inside Prepare/Complete; its Merchant API
                // can report a payment and reverse it.
                capabilities: Capabilities {
                    verify: false,
                    reconcile: false,
                    refund: true,
                },
                operations: &["payment_status", "reverse"],
                inbound_metric: InboundMetric::Webhooks,
                inbound_outcomes: &["accepted", "refused", "bad_signature", "invalid", "error"],
            },
        }
    }

    /// Every provider, in declaration order.
    pub fn all() -> impl Iterator<Item = Provider> {
        <Provider as strum::IntoEnumIterator>::iter()
    }
    pub fn as_str(self) -> &'static str {
        self.descriptor().name
    }
    pub fn parse(s: &str) -> Option<Self> {
        Self::all().find(|p| p.as_str() == s)
    }
    pub fn currency(self) -> Currency {
        self.descriptor().currency
    }
    /// The smallest amount the gateway accepts.
    pub fn min_amount(self) -> i64 {
        self.descriptor().min_amount
    }
    /// The names of every provider, for error messages ("one of: …").
    pub fn names() -> String {
        Self::all()
            .map(Provider::as_str)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_descriptors_describe_their_own_provider() {
        for p in Provider::all() {
            assert_eq!(Provider::parse(p.as_str()), Some(p));
            assert_eq!(p.descriptor().provider, p);
            let d = p.descriptor();
            assert!(0 < d.min_amount && d.min_amount < d.max_amount, "{p}");
            assert!(d.inbound_outcomes.contains(&"accepted"));
        }
        assert_eq!(Provider::parse("paypal"), None);
        assert_eq!(Provider::names(), "medogram, atmos, payme, click");
    }
}
