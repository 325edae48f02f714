//! Which connection thread the current thread is.
//!
//! The server runs each downstream connection on one of its connection threads (thread per
//! core). Per-thread state elsewhere, such as the upstream pool's idle connections, is keyed by
//! this index so that a request reuses connections driven by its own thread's runtime.
//! 0 = not a connection thread (the main runtime, tests).

use std::cell::Cell;

thread_local! {
    static INDEX: Cell<usize> = const { Cell::new(0) };
}

/// Mark the current thread as connection thread `i` (so its index is `i + 1`).
pub fn enter(i: usize) {
    INDEX.with(|c| c.set(i + 1));
}

/// The current thread's index: `i + 1` on connection thread `i`, 0 elsewhere.
pub fn index() -> usize {
    INDEX.with(Cell::get)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_is_per_thread() {
        assert_eq!(index(), 0);
        std::thread::spawn(|| {
            enter(2);
            assert_eq!(index(), 3);
        })
        .join()
        .unwrap_or_else(|_| panic!("thread panicked"));
        assert_eq!(index(), 0);
    }
}
