//! Bounds on live server processes: a tenant's, the host's. Every connection a pool opens
//! holds a permit from each budget that applies, for the connection's life, so a client that
//! opens sessions in a loop meets a clear error instead of spawning processes without bound.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// A bound on server processes alive at once.
#[derive(Debug)]
pub struct ProcessBudget {
    /// Who the bound is for, as an error message names it: `tenant "acme"
    /// (limits.processes)`, `this host (--max-processes)`.
    owner: String,
    limit: usize,
    used: AtomicUsize,
}

/// A budget that is spent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{owner} already has {limit} server processes, its limit; try again when one is closed")]
pub struct ProcessLimit {
    /// Whose bound it is.
    pub owner: String,
    /// The bound.
    pub limit: usize,
}

impl ProcessBudget {
    /// A budget of `limit` processes for `owner`.
    pub fn new(owner: impl Into<String>, limit: usize) -> Arc<Self> {
        Arc::new(Self {
            owner: owner.into(),
            limit,
            used: AtomicUsize::new(0),
        })
    }

    /// Processes alive under this budget.
    pub fn in_use(&self) -> usize {
        self.used.load(Ordering::SeqCst)
    }

    /// The bound.
    pub fn limit(&self) -> usize {
        self.limit
    }

    fn try_take(&self) -> bool {
        self.used
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < self.limit).then_some(n + 1)
            })
            .is_ok()
    }

    fn give_back(&self) {
        self.used.fetch_sub(1, Ordering::SeqCst);
    }
}

/// One process's share of every budget it was taken from; given back when dropped.
pub struct ProcessPermit(Vec<Arc<ProcessBudget>>);

impl fmt::Debug for ProcessPermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ProcessPermit").field(&self.0.len()).finish()
    }
}

impl Drop for ProcessPermit {
    fn drop(&mut self) {
        for budget in &self.0 {
            budget.give_back();
        }
    }
}

/// Takes a permit from every budget, or from none: all or nothing.
pub fn take_permit(budgets: &[Arc<ProcessBudget>]) -> Result<ProcessPermit, ProcessLimit> {
    let mut taken = Vec::with_capacity(budgets.len());
    for budget in budgets {
        if !budget.try_take() {
            // Dropping `taken` gives back what was taken so far.
            drop(ProcessPermit(taken));
            return Err(ProcessLimit {
                owner: budget.owner.clone(),
                limit: budget.limit,
            });
        }
        taken.push(budget.clone());
    }
    Ok(ProcessPermit(taken))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permits_are_all_or_nothing_and_given_back_once() {
        let tenant = ProcessBudget::new("tenant \"a\"", 2);
        let host = ProcessBudget::new("this host", 3);
        let both = [tenant.clone(), host.clone()];
        let p1 = take_permit(&both).unwrap();
        let p2 = take_permit(&both).unwrap();
        let e = take_permit(&both).unwrap_err();
        assert_eq!(e.limit, 2);
        assert!(e.to_string().contains("tenant \"a\" already has 2"), "{e}");
        assert_eq!(
            (tenant.in_use(), host.in_use()),
            (2, 2),
            "nothing half-taken"
        );
        let other = take_permit(std::slice::from_ref(&host)).unwrap();
        assert!(take_permit(std::slice::from_ref(&host)).is_err());
        drop((p1, p2, other));
        assert_eq!((tenant.in_use(), host.in_use()), (0, 0));
    }
}
