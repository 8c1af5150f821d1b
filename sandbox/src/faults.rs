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
    latency(latency_ms).await;
    error_rate > 0.0 && rand::random::<f64>() < error_rate
}

/// How late tokio's timer usually wakes a sleep on this kind of host (see
/// [`latency`]), taken off every simulated wait.
const TIMER_LATENESS: Duration = Duration::from_micros(1500);

/// Waits about `ms` milliseconds: a simulated gateway's answer time, right on
/// average.
///
/// tokio's timer counts whole milliseconds and rounds a deadline up twice (to
/// its wheel's next tick, then the driver's epoll timeout), so
/// `tokio::time::sleep(200 ms)` answered after 201.0-202.4 ms on the
/// benchmark host, median 202.0 with the HTTP round trip. A benchmark
/// measures paygate against the simulator's latency as its floor (two 200 ms
/// calls: 400 ms), so that lateness was charged to paygate (PERFORMANCE.md,
/// "A simulated gateway's latency is what it is set to"). The wait asks the
/// timer for [`TIMER_LATENESS`] less (at most half of a very short wait).
/// Waking exactly on time was measured too (the timer to 3 ms before the
/// deadline, a blocking-pool thread's `nanosleep` for the rest: 200.8 ms) and
/// not kept: the thread hand-offs cost the simulator half as much CPU again,
/// taken from the paygate processes it shares the machine with.
pub(crate) async fn latency(ms: u64) {
    if ms == 0 {
        return;
    }
    let wanted = Duration::from_millis(ms);
    tokio::time::sleep(wanted - TIMER_LATENESS.min(wanted / 2)).await;
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

    #[tokio::test]
    async fn latency_is_about_what_it_is_set_to() {
        // Early by at most the lateness taken off; late only by scheduling.
        // The upper bound only catches a wrong unit (seconds for
        // milliseconds): the suite runs beside other tests on two cores, and
        // how late a loaded machine wakes a task is not this test's business.
        for ms in [1, 5, 20] {
            let started = std::time::Instant::now();
            latency(ms).await;
            let took = started.elapsed();
            let wanted = Duration::from_millis(ms);
            assert!(
                took >= wanted - TIMER_LATENESS.min(wanted / 2),
                "{ms} ms took {took:?}"
            );
            assert!(
                took < wanted + Duration::from_secs(1),
                "{ms} ms took {took:?}"
            );
        }
        let started = std::time::Instant::now();
        latency(0).await;
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn validation() {
        assert!(validate(0, 0.5).is_ok());
        assert!(validate(0, 1.5).is_err());
        assert!(validate(0, f64::NAN).is_err());
        assert!(validate(MAX_DELAY_MS + 1, 0.0).is_err());
    }
}
