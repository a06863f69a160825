//! Loops Stoa runs beside its requests (provider health probes, answer leases, the
//! ingestion worker): started in
//! one place, and stopped together at shutdown before the database closes, so none of them
//! writes to a store that is going away.

use std::{future::Future, ops::ControlFlow, time::Duration};

use tokio_util::{sync::CancellationToken, task::TaskTracker};

#[derive(Clone, Default)]
pub struct Background {
    tasks: TaskTracker,
    stop: CancellationToken,
}

impl Background {
    /// Runs `tick` every `interval` (first after one interval) until it breaks or
    /// [`Self::stop`] is called; a tick under way when stopping is abandoned.
    pub fn every<F, Fut>(&self, name: &'static str, interval: Duration, mut tick: F)
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = ControlFlow<()>> + Send,
    {
        let stop = self.stop.clone();
        self.tasks.spawn(async move {
            loop {
                let flow = tokio::select! {
                    _ = stop.cancelled() => ControlFlow::Break(()),
                    flow = async {
                        tokio::time::sleep(interval).await;
                        tick().await
                    } => flow,
                };
                if flow.is_break() {
                    break;
                }
            }
            tracing::debug!(task = name, "background loop ended");
        });
    }

    /// Runs `task` until it ends or [`Self::stop`] is called (then it is dropped where it
    /// was waiting: a long-running worker's unfinished item is left to its lease).
    pub fn run<Fut>(&self, name: &'static str, task: Fut)
    where
        Fut: Future<Output = ()> + Send + 'static,
    {
        let stop = self.stop.clone();
        self.tasks.spawn(async move {
            tokio::select! {
                _ = stop.cancelled() => {}
                _ = task => {}
            }
            tracing::debug!(task = name, "background task ended");
        });
    }

    /// Stops every loop and waits until they have ended.
    pub async fn stop(&self) {
        self.stop.cancel();
        self.tasks.close();
        self.tasks.wait().await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{
        Arc,
        atomic::{AtomicU32, Ordering},
    };

    use super::*;

    #[tokio::test]
    async fn loops_tick_until_stopped_or_done_and_stop_waits_for_them() {
        let background = Background::default();
        let (forever, thrice) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
        let count = Arc::clone(&forever);
        background.every("forever", Duration::from_millis(2), move || {
            let count = Arc::clone(&count);
            async move {
                count.fetch_add(1, Ordering::SeqCst);
                ControlFlow::Continue(())
            }
        });
        let count = Arc::clone(&thrice);
        background.every("thrice", Duration::from_millis(2), move || {
            let count = Arc::clone(&count);
            async move {
                let n = count.fetch_add(1, Ordering::SeqCst) + 1;
                if n == 3 {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            }
        });
        let ticks = |count: &AtomicU32| count.load(Ordering::SeqCst);
        while ticks(&thrice) < 3 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // The loop that broke runs no more while the other goes on.
        let later = ticks(&forever) + 5;
        while ticks(&forever) < later {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(ticks(&thrice), 3);
        background.stop().await;
        // Stopped means stopped: no tick after stop returned.
        let stopped_at = ticks(&forever);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(ticks(&forever), stopped_at);
    }
}
