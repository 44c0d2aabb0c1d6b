//! How many generations the relay runs at once: per key and in total.
//!
//! A generation outlives its request on purpose (a caller that disconnects can resume), so
//! nothing else bounds it: without these slots, requests dropped right after the response
//! head would each keep an upstream generation and its history writes going to the end.
//! A slot is taken before the upstream is asked and released when the generation's end is
//! recorded; a request beyond a bound is refused at once (429), never queued.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use crate::hub::Metrics;
use crate::relay::owner::Caller;

/// Bounds on concurrent generations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// All callers together.
    pub total: usize,
    /// One key (with `--relay-api-keys`; an open relay has only the total bound).
    pub per_key: usize,
}

/// Which bound refused a generation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bound {
    /// The caller's key has `per_key` generations running.
    Key(usize),
    /// The hub has `total` generations running.
    Total(usize),
}

impl std::fmt::Display for Bound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Bound::Key(n) => write!(f, "this API key already has {n} answers being generated"),
            Bound::Total(n) => write!(f, "this hub already has {n} answers being generated"),
        }
    }
}

/// The running generations.
pub(crate) struct Slots {
    /// What runs now and the bounds (from the configuration, replaced by a reload); one short
    /// lock per generation start and end.
    state: Mutex<State>,
    /// Where the running count is published (`ssehub_relay_streams_running`).
    metrics: Arc<Metrics>,
}

struct State {
    /// The bounds; lowering them refuses new generations until enough end, and stops none.
    limits: Limits,
    /// Running generations, all callers.
    total: usize,
    /// Running generations per key; a key leaves the map when its count drops to zero.
    per_key: HashMap<String, usize>,
}

/// One running generation; dropping it frees the slot.
pub(crate) struct Slot {
    /// Where to give the slot back.
    slots: Arc<Slots>,
    /// The key it counts against, if the relay has keys.
    key: Option<String>,
}

impl Slots {
    pub(crate) fn new(limits: Limits, metrics: Arc<Metrics>) -> Arc<Self> {
        Arc::new(Slots {
            state: Mutex::new(State {
                limits,
                total: 0,
                per_key: HashMap::new(),
            }),
            metrics,
        })
    }

    /// Replaces the bounds for the generations that start from now on.
    pub(crate) fn set_limits(&self, limits: Limits) {
        self.state().limits = limits;
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // Nothing panics while holding the lock, but a poisoned count is still right.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A slot for `caller`, or the bound that refuses one.
    pub(crate) fn take(self: &Arc<Self>, caller: &Caller) -> Result<Slot, Bound> {
        let key = match caller {
            Caller::Key(k) => Some(k.clone()),
            Caller::Anyone => None,
        };
        let mut state = self.state();
        let limits = state.limits;
        let refused = if state.total >= limits.total {
            Some(Bound::Total(limits.total))
        } else {
            key.as_ref()
                .filter(|k| state.per_key.get(*k).copied().unwrap_or(0) >= limits.per_key)
                .map(|_| Bound::Key(limits.per_key))
        };
        if let Some(bound) = refused {
            drop(state);
            self.metrics
                .relay_streams_refused
                .fetch_add(1, Ordering::Relaxed);
            return Err(bound);
        }
        state.total += 1;
        if let Some(k) = &key {
            *state.per_key.entry(k.clone()).or_default() += 1;
        }
        // Stored under the lock, so the gauge never shows a count that did not exist.
        self.metrics
            .relay_streams_running
            .store(state.total as u64, Ordering::Relaxed);
        Ok(Slot {
            slots: self.clone(),
            key,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut state = self.slots.state();
        state.total -= 1;
        if let Some(k) = &self.key
            && let Some(n) = state.per_key.get_mut(k)
        {
            *n -= 1;
            if *n == 0 {
                state.per_key.remove(k);
            }
        }
        self.slots
            .metrics
            .relay_streams_running
            .store(state.total as u64, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(k: &str) -> Caller {
        Caller::Key(k.to_owned())
    }

    #[test]
    fn each_key_and_the_total_are_bounded_and_slots_come_back() {
        let metrics = Arc::new(Metrics::default());
        let slots = Slots::new(
            Limits {
                total: 3,
                per_key: 2,
            },
            metrics.clone(),
        );
        let a1 = slots.take(&key("a")).unwrap();
        let _a2 = slots.take(&key("a")).unwrap();
        assert_eq!(slots.take(&key("a")).err(), Some(Bound::Key(2)));
        let _b1 = slots.take(&key("b")).unwrap();
        assert_eq!(slots.take(&key("b")).err(), Some(Bound::Total(3)));
        assert_eq!(slots.take(&Caller::Anyone).err(), Some(Bound::Total(3)));
        let running = || metrics.relay_streams_running.load(Ordering::Relaxed);
        assert_eq!(running(), 3);
        drop(a1);
        assert_eq!(running(), 2);
        let _a3 = slots.take(&key("a")).unwrap();
        assert_eq!(metrics.relay_streams_refused.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn an_open_relay_has_only_the_total_bound() {
        let slots = Slots::new(
            Limits {
                total: 3,
                per_key: 1,
            },
            Arc::default(),
        );
        let held: Vec<Slot> = (0..3)
            .map(|_| slots.take(&Caller::Anyone).unwrap())
            .collect();
        assert_eq!(slots.take(&Caller::Anyone).err(), Some(Bound::Total(3)));
        drop(held);
        assert!(slots.state().per_key.is_empty() && slots.state().total == 0);
    }
}
