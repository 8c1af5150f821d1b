//! Lock helpers shared by both simulators.

use std::sync::{Mutex, MutexGuard};

/// Locks a mutex, recovering the data if an earlier holder panicked.
///
/// A simulator that keeps answering after a bug is more useful to a test run
/// than one that poisons every later request; every critical section here
/// leaves the data consistent at each statement boundary anyway.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
