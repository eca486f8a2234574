//! A persisted (non-parameter) field that counts the host's state restores.
//!
//! nice-plug restores a saved state by calling [`PersistentField::set`] on every persisted
//! field, on whatever thread the host loads the state from, and does not activate the plugin
//! again. Each [`Persisted`] field of the plugin shares one restore counter: the audio thread
//! compares it with the count it last applied and, when it moved, hands the new state to the
//! running engine through a background task (`loader::Task::ApplyState`).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use nice_plug::params::persist::PersistentField;

/// A value saved with the project, shared between the plugin, its tasks and the editor
/// (cloning shares it). Reading and writing take a short lock; never hold one across I/O.
/// Not realtime-safe.
#[derive(Debug)]
pub struct Persisted<T> {
    value: Arc<RwLock<T>>,
    /// State restores of the plugin (shared by all its persisted fields).
    restores: Arc<AtomicU32>,
}

impl<T> Clone for Persisted<T> {
    fn clone(&self) -> Self {
        Self {
            value: self.value.clone(),
            restores: self.restores.clone(),
        }
    }
}

impl<T> Persisted<T> {
    /// A field holding `value` that counts restores in `restores`.
    pub fn new(value: T, restores: Arc<AtomicU32>) -> Self {
        Self {
            value: Arc::new(RwLock::new(value)),
            restores,
        }
    }

    /// Shared access (a panic elsewhere while writing does not poison it for good).
    pub fn read(&self) -> RwLockReadGuard<'_, T> {
        self.value.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Exclusive access, for the plugin's own changes (not counted as a restore).
    pub fn write(&self) -> RwLockWriteGuard<'_, T> {
        self.value.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// A copy of the current value.
    pub fn snapshot(&self) -> T
    where
        T: Clone,
    {
        self.read().clone()
    }
}

impl<'a, T> PersistentField<'a, T> for Persisted<T>
where
    T: serde::Serialize + serde::Deserialize<'a> + Send + Sync,
{
    /// Called by nice-plug when the host restores a state: stores the value, then counts the
    /// restore (release order: whoever sees the new count sees the value).
    fn set(&self, new_value: T) {
        *self.write() = new_value;
        self.restores.fetch_add(1, Ordering::Release);
    }

    fn map<F, R>(&self, f: F) -> R
    where
        F: Fn(&T) -> R,
    {
        f(&self.read())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A restore (`set`) counts on the shared counter and is visible through every clone; the
    /// plugin's own writes do not count.
    #[test]
    fn restores_are_counted_and_shared() {
        let restores = Arc::new(AtomicU32::new(0));
        let a = Persisted::new(Some(1u32), restores.clone());
        let b = Persisted::new(String::from("x"), restores.clone());
        let a2 = a.clone();
        *a.write() = Some(2);
        assert_eq!(restores.load(Ordering::Acquire), 0);
        PersistentField::set(&a2, Some(3));
        PersistentField::set(&b, "y".to_string());
        assert_eq!(restores.load(Ordering::Acquire), 2);
        assert_eq!(a.snapshot(), Some(3));
        assert_eq!(b.map(|s| s.clone()), "y");
    }
}
