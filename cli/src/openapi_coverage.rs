//! The OpenAPI document must describe every route the API mounts: the API of
//! `paygate serve` is assembled here exactly as `serve` does (every gateway
//! configured), its mounted routes are read from the router, and any route
//! the document lacks fails the test.

#[cfg(test)]
mod tests {
    use crate::wiring;
    use paygate_common::config::{Config, Env, Mode};
    use paygate_common::queue::embedded::EmbeddedQueue;
    use paygate_common::store::{Store, StoreOptions};
    use std::sync::Arc;

    #[tokio::test]
    async fn the_document_describes_every_mounted_route() {
        let none = |_: &str| None;
        let cfg = Config::load(Mode::Serve, &Env::new(&none)).expect("default serve config");
        let store = Store::connect("sqlite::memory:", &StoreOptions::default())
            .await
            .expect("store");
        let (queue, _storage) = EmbeddedQueue::new();
        let state = wiring::api_state(
            &cfg,
            store,
            Arc::new(queue),
            Default::default(),
            Default::default(),
            None,
        )
        .expect("state");
        let adapters = state.gateways.inbound().to_vec();
        assert!(
            adapters.len() >= 4,
            "serve configures every gateway's inbound routes"
        );
        let app = paygate_api::router(state, None);
        let mounted = paygate_api::openapi::mounted_routes(&app);
        // The reader must see the routes (it reads axum's Debug output).
        for known in [
            ("POST", "/v1/payments"),
            ("GET", "/crazyminer/payment/status/{id}/"),
            ("POST", "/payme/"),
            ("GET", "/openapi.json"),
        ] {
            assert!(
                mounted.contains(&(known.0.to_string(), known.1.to_string())),
                "{known:?} not found among the mounted routes: {mounted:?}"
            );
        }
        let doc = paygate_api::openapi::document(&adapters);
        let missing = paygate_api::openapi::undocumented(&mounted, &doc);
        assert!(
            missing.is_empty(),
            "routes mounted but not in the OpenAPI document: {missing:?}"
        );
    }
}
