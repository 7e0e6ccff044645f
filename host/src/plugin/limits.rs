//! A run's memory bound, and how a run that hit a bound is told apart from one that trapped.
//!
//! Why one budget: a component may have many linear memories and tables (wasmtime's
//! per-memory limit would let 32 memories each take the whole limit), and the results of
//! calls a guest started but has not collected sit in host memory on its behalf. All of them
//! draw from one `max_memory_bytes` per run, so a guest cannot hold more than its limit in any
//! form. Which bound a run hit is read from the state of the run and from wasmtime's trap
//! code, never from the words of a message.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

/// What a table element costs the budget (a function reference and its type, about).
const TABLE_ELEMENT_BYTES: usize = 16;
/// Instances, tables and memories one run may create.
const MAX_INSTANCES: usize = 32;
const MAX_TABLES: usize = 64;
const MAX_MEMORIES: usize = 32;

/// The bytes a run may hold: its memories, its tables and its uncollected results.
#[derive(Debug)]
pub(crate) struct MemoryBudget {
    max: usize,
    used: AtomicUsize,
    exceeded: AtomicBool,
}

impl MemoryBudget {
    pub(crate) fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            max,
            used: AtomicUsize::new(0),
            exceeded: AtomicBool::new(false),
        })
    }

    /// The limit, in bytes.
    pub(crate) fn max(&self) -> usize {
        self.max
    }

    /// The bytes held now.
    pub(crate) fn used(&self) -> usize {
        self.used.load(Ordering::SeqCst)
    }

    /// Takes `bytes` if they fit; otherwise marks the budget exceeded.
    fn take(&self, bytes: usize) -> bool {
        let taken = self
            .used
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |used| {
                used.checked_add(bytes).filter(|total| *total <= self.max)
            })
            .is_ok();
        if !taken {
            self.exceeded.store(true, Ordering::SeqCst);
        }
        taken
    }

    /// Holds `bytes` of a result for the guest until the returned value is dropped; `None`
    /// if they do not fit beside what the run already holds.
    pub(crate) fn hold(self: &Arc<Self>, bytes: usize) -> Option<HeldBytes> {
        self.take(bytes).then(|| HeldBytes {
            budget: self.clone(),
            bytes,
        })
    }

    /// Whether anything was refused for want of room.
    pub(crate) fn exceeded(&self) -> bool {
        self.exceeded.load(Ordering::SeqCst)
    }
}

/// Bytes held against a [`MemoryBudget`], given back when dropped.
#[derive(Debug)]
pub(crate) struct HeldBytes {
    budget: Arc<MemoryBudget>,
    bytes: usize,
}

impl Drop for HeldBytes {
    fn drop(&mut self) {
        self.budget.used.fetch_sub(self.bytes, Ordering::SeqCst);
    }
}

/// The `Store`'s limiter: every memory and table of the instance grows within the run's
/// [`MemoryBudget`] (memories never shrink, so what they took stays taken).
pub(crate) struct RunLimiter {
    budget: Arc<MemoryBudget>,
    max_table_elements: usize,
}

impl RunLimiter {
    pub(crate) fn new(budget: Arc<MemoryBudget>, max_table_elements: usize) -> Self {
        Self {
            budget,
            max_table_elements,
        }
    }

    fn refuse(&self, what: &str, bytes: usize) -> wasmtime::Error {
        wasmtime::format_err!(
            "memory limit: growing {what} by {bytes} bytes would take the run past its {} bytes",
            self.budget.max
        )
    }
}

impl wasmtime::ResourceLimiter for RunLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let bytes = desired.saturating_sub(current);
        if self.budget.take(bytes) {
            Ok(true)
        } else {
            Err(self.refuse("a memory", bytes))
        }
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let bytes = desired
            .saturating_sub(current)
            .saturating_mul(TABLE_ELEMENT_BYTES);
        if desired > self.max_table_elements {
            self.budget.exceeded.store(true, Ordering::SeqCst);
            return Err(wasmtime::format_err!(
                "table limit: {desired} elements, over the run's {}",
                self.max_table_elements
            ));
        }
        if self.budget.take(bytes) {
            Ok(true)
        } else {
            Err(self.refuse("a table", bytes))
        }
    }

    fn instances(&self) -> usize {
        MAX_INSTANCES
    }

    fn tables(&self) -> usize {
        MAX_TABLES
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES
    }
}

/// Which bound stopped a run that trapped, or that it simply trapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TrapKind {
    /// It ran out of fuel.
    Fuel,
    /// Its memories, tables and held results reached the memory limit.
    Memory,
    /// Its call stack overflowed (wasmtime's guard).
    Stack,
    /// It was interrupted at its deadline.
    Deadline,
    /// It read or wrote outside its linear memory (a guest that keeps its own stack in
    /// linear memory overflows it this way).
    OutOfBounds,
    /// Any other trap: the guest's own fault.
    Other,
}

impl TrapKind {
    /// The kind of the trap `error` ended a run with, the run's memory `budget` consulted
    /// first (a refused growth reaches us as the limiter's error, not a trap code).
    pub(crate) fn of(error: &wasmtime::Error, budget: &MemoryBudget) -> Self {
        if budget.exceeded() {
            return TrapKind::Memory;
        }
        match error.downcast_ref::<wasmtime::Trap>() {
            Some(wasmtime::Trap::OutOfFuel) => TrapKind::Fuel,
            Some(wasmtime::Trap::StackOverflow) => TrapKind::Stack,
            Some(wasmtime::Trap::Interrupt) => TrapKind::Deadline,
            Some(wasmtime::Trap::MemoryOutOfBounds) => TrapKind::OutOfBounds,
            _ => TrapKind::Other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtime::ResourceLimiter;

    #[test]
    fn memories_tables_and_held_results_share_one_budget() {
        let budget = MemoryBudget::new(1000);
        let mut limiter = RunLimiter::new(budget.clone(), 100);
        assert!(limiter.memory_growing(0, 600, None).unwrap());
        // A second memory cannot take what the first one has.
        assert!(limiter.memory_growing(0, 600, None).is_err());
        assert!(budget.exceeded());
        let held = budget.hold(300).expect("300 more fit");
        assert!(budget.hold(200).is_none(), "held results count too");
        drop(held);
        assert!(
            limiter.table_growing(0, 10, None).unwrap(),
            "160 bytes fit again"
        );
        assert!(
            limiter.table_growing(10, 101, None).is_err(),
            "over the elements"
        );
    }
}
