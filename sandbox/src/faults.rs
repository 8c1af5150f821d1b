//! Fault injection (latency and random errors) shared by both simulators.
//!
//! Only protocol calls go through here; checkout pages and the `_config`
//! endpoints stay fast and reliable so a test can always steer the sandbox.

use std::time::Duration;

/// Upper bound for every configurable delay, so a typo in a knob cannot park
/// requests for hours.
pub(crate) const MAX_DELAY_MS: u64 = 600_000;

/// Waits `latency_ms`, then decides whether this call should fail.
///
/// The delay comes first so an injected failure also looks like a slow
/// upstream, which is what a client's timeout and retry logic must survive.
pub(crate) async fn inject(latency_ms: u64, error_rate: f64) -> bool {
    if latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(latency_ms)).await;
    }
    error_rate > 0.0 && rand::random::<f64>() < error_rate
}

/// Shared validation of the two fault knobs.
pub(crate) fn validate(latency_ms: u64, error_rate: f64) -> Result<(), String> {
    if !(0.0..=1.0).contains(&error_rate) {
        return Err(format!(
            "error_rate must be between 0 and 1, got {error_rate}"
        ));
    }
    validate_delay("latency_ms", latency_ms)
}

pub(crate) fn validate_delay(name: &str, ms: u64) -> Result<(), String> {
    if ms > MAX_DELAY_MS {
        return Err(format!("{name} must be at most {MAX_DELAY_MS}, got {ms}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn rate_bounds_are_exact() {
        assert!(!inject(0, 0.0).await);
        assert!(inject(0, 1.0).await);
    }

    #[test]
    fn validation() {
        assert!(validate(0, 0.5).is_ok());
        assert!(validate(0, 1.5).is_err());
        assert!(validate(0, f64::NAN).is_err());
        assert!(validate(MAX_DELAY_MS + 1, 0.0).is_err());
    }
}
