//! The gateway's std locks, taken so that a poisoned lock is never silent: a lock whose
//! holder panicked is recovered (its data is kept, not replaced by "empty"), reported once
//! as an error log and in `kanban_gateway_poisoned_locks_total`, and cleared.
//!
//! The maps behind these locks (rooms, presence, polling sessions, history reads) are
//! changed by single std-collection calls, which leave them consistent even when a panic
//! unwinds past them; turning a poisoned lock into an empty room or a dropped event, as a
//! `let Ok(..) = lock() else { return }` does, would lose events for the rest of the
//! process's life.

use prometheus::IntCounter;
use std::sync::{Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Locks `mutex`, recovering it if a panic poisoned it.
pub fn lock<'a, T>(mutex: &'a Mutex<T>, what: &str, poisoned: &IntCounter) -> MutexGuard<'a, T> {
    mutex.lock().unwrap_or_else(|error| {
        report(what, poisoned);
        mutex.clear_poison();
        PoisonError::into_inner(error)
    })
}

/// Read-locks `lock`, recovering it if a panic poisoned it.
pub fn read<'a, T>(
    lock: &'a RwLock<T>,
    what: &str,
    poisoned: &IntCounter,
) -> RwLockReadGuard<'a, T> {
    lock.read().unwrap_or_else(|error| {
        report(what, poisoned);
        lock.clear_poison();
        PoisonError::into_inner(error)
    })
}

/// Write-locks `lock`, recovering it if a panic poisoned it.
pub fn write<'a, T>(
    lock: &'a RwLock<T>,
    what: &str,
    poisoned: &IntCounter,
) -> RwLockWriteGuard<'a, T> {
    lock.write().unwrap_or_else(|error| {
        report(what, poisoned);
        lock.clear_poison();
        PoisonError::into_inner(error)
    })
}

fn report(what: &str, poisoned: &IntCounter) {
    poisoned.inc();
    tracing::error!(
        lock = what,
        "a task panicked while holding this lock; its data is kept and the lock cleared"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn poison<T: Send + Sync + 'static>(mutex: &Arc<Mutex<T>>) {
        let mutex = Arc::clone(mutex);
        let _ = std::thread::spawn(move || {
            let _guard = mutex.lock();
            panic!("poisoning the lock on purpose");
        })
        .join();
    }

    #[test]
    fn a_poisoned_mutex_keeps_its_data_and_is_counted_once() {
        let counter = IntCounter::new("poisoned", "test").unwrap();
        let mutex = Arc::new(Mutex::new(vec![1, 2, 3]));
        poison(&mutex);
        assert!(mutex.is_poisoned());
        assert_eq!(*lock(&mutex, "test", &counter), vec![1, 2, 3]);
        assert_eq!(counter.get(), 1);
        assert!(!mutex.is_poisoned(), "cleared");
        lock(&mutex, "test", &counter).push(4);
        assert_eq!(counter.get(), 1, "a cleared lock is not counted again");
    }

    #[test]
    fn a_poisoned_rwlock_keeps_its_data() {
        let counter = IntCounter::new("poisoned", "test").unwrap();
        let rw = Arc::new(RwLock::new(7));
        let held = Arc::clone(&rw);
        let _ = std::thread::spawn(move || {
            let _guard = held.write();
            panic!("poisoning the lock on purpose");
        })
        .join();
        assert_eq!(*read(&rw, "test", &counter), 7);
        *write(&rw, "test", &counter) += 1;
        assert_eq!(*read(&rw, "test", &counter), 8);
        assert_eq!(counter.get(), 1);
    }
}
