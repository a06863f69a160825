//! The cores the embedded models share. On a small machine the chat model and the document
//! embedder each want every core, and run together their llama.cpp threads (which spin at
//! their barriers) slow each other several times over: a chat's first token took 5× longer
//! while documents were being read (bench/README.md). A person waits for the chat; nobody
//! watches a document's embedding. So while the local model has answers under way it holds
//! [`Foreground`], and background embedding waits between its batches
//! ([`CpuShare::wait_while_busy`]), running one batch at least every so often so documents
//! still move under steady chat. Questions' own embeddings are not background work.

use std::sync::{Condvar, Mutex, PoisonError};
use std::time::Duration;

/// The one share of this process's cores.
pub static SHARE: CpuShare = CpuShare::new();

pub struct CpuShare {
    /// Holders of [`Foreground`].
    foreground: Mutex<usize>,
    idle: Condvar,
}

/// Work a person is waiting for is running while this lives.
pub struct Foreground<'a>(&'a CpuShare);

impl CpuShare {
    pub const fn new() -> Self {
        Self {
            foreground: Mutex::new(0),
            idle: Condvar::new(),
        }
    }

    pub fn foreground(&self) -> Foreground<'_> {
        *self.foreground.lock().unwrap_or_else(PoisonError::into_inner) += 1;
        Foreground(self)
    }

    /// Waits until no foreground work runs, `up_to` at most; whether it is idle now.
    pub fn wait_while_busy(&self, up_to: Duration) -> bool {
        let held = self.foreground.lock().unwrap_or_else(PoisonError::into_inner);
        let (held, _) = self
            .idle
            .wait_timeout_while(held, up_to, |n| *n > 0)
            .unwrap_or_else(PoisonError::into_inner);
        *held == 0
    }
}

impl Default for CpuShare {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Foreground<'_> {
    fn drop(&mut self) {
        let mut held = self.0.foreground.lock().unwrap_or_else(PoisonError::into_inner);
        *held -= 1;
        if *held == 0 {
            self.0.idle.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn background_waits_for_foreground_work_and_no_longer_than_asked() {
        let share = CpuShare::new();
        assert!(share.wait_while_busy(Duration::from_secs(5)), "idle: no wait");
        let chat = share.foreground();
        assert!(
            !share.wait_while_busy(Duration::from_millis(30)),
            "still busy when it gives up"
        );
        std::thread::scope(|s| {
            let waiter = s.spawn(|| share.wait_while_busy(Duration::from_secs(60)));
            std::thread::sleep(Duration::from_millis(20));
            drop(chat);
            assert!(waiter.join().unwrap(), "woken when the foreground work ends");
        });
        let (a, b) = (share.foreground(), share.foreground());
        drop(a);
        assert!(
            !share.wait_while_busy(Duration::from_millis(1)),
            "one holder is left"
        );
        drop(b);
        assert!(share.wait_while_busy(Duration::from_millis(1)));
    }
}
