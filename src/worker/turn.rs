//! The worker's one Python turn when the app runs inline, on the connection's own thread.
//!
//! With one Python thread per worker (`--threads 1`, the default) the app never runs twice at
//! once, whichever thread runs it: requests run inline on the serving thread, and the few that
//! cannot (a body the app reads as it arrives, or an app that used `write()`) go to the one
//! pool thread. A [`Turn`] is the right to run the app: taken before the call, held by a
//! streamed response until its iterator is closed, and given back on drop. While no turn is
//! out the worker shows one free Python thread on the scoreboard, as a pool thread waiting for
//! work would, so balancing between workers sees the same thing in both modes.

use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::protocol::scoreboard::{Cell, Idle};

/// Hands out the one turn, first come first served.
#[derive(Debug)]
pub struct Turns {
    permits: Arc<Semaphore>,
    cell: Option<Cell>,
    /// Present while no turn is out: the free thread on the scoreboard.
    idle: Mutex<Option<Idle>>,
}

/// The right to run the app; dropping it lets the next request run.
#[derive(Debug)]
pub struct Turn {
    turns: Arc<Turns>,
    _permit: OwnedSemaphorePermit,
}

/// Counts a request waiting for the turn on the scoreboard (`--cheaper-algo backlog`) while it
/// waits, even if the wait is abandoned (the client left).
struct Queued<'a>(Option<&'a Cell>);

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        if let Some(c) = self.0 {
            c.job_taken();
        }
    }
}

impl Turns {
    /// One turn, free; `cell` is this worker's scoreboard cell.
    pub fn new(cell: Option<Cell>) -> Arc<Turns> {
        Arc::new(Turns {
            permits: Arc::new(Semaphore::new(1)),
            idle: Mutex::new(cell.as_ref().map(Cell::idle)),
            cell,
        })
    }

    /// Waits for the turn.
    pub async fn take(self: &Arc<Self>) -> Turn {
        let permit = match self.permits.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                let _queued = Queued(self.cell.as_ref().inspect(|c| c.job_queued()));
                // The semaphore is never closed.
                match self.permits.clone().acquire_owned().await {
                    Ok(p) => p,
                    Err(_) => unreachable!("the turn semaphore is never closed"),
                }
            }
        };
        self.set_idle(false);
        Turn {
            turns: self.clone(),
            _permit: permit,
        }
    }

    fn set_idle(&self, idle: bool) {
        let mut slot = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        *slot = if idle {
            self.cell.as_ref().map(Cell::idle)
        } else {
            None
        };
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        // Before the permit goes (fields drop after this): the next taker then clears it.
        self.turns.set_idle(true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn one_turn_at_a_time_in_arrival_order() {
        let turns = Turns::new(None);
        let first = turns.take().await;
        let (t2, t3) = (turns.clone(), turns.clone());
        let second = tokio::spawn(async move { t2.take().await });
        tokio::time::sleep(Duration::from_millis(1)).await;
        let third = tokio::spawn(async move { t3.take().await });
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert!(!second.is_finished() && !third.is_finished());
        drop(first);
        let second = second.await.unwrap();
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert!(!third.is_finished(), "the third ran beside the second");
        drop(second);
        drop(third.await.unwrap());
    }

    #[tokio::test(start_paused = true)]
    async fn an_abandoned_wait_leaves_the_turn_to_the_next() {
        let turns = Turns::new(None);
        let first = turns.take().await;
        let t2 = turns.clone();
        let abandoned = tokio::spawn(async move { t2.take().await });
        tokio::time::sleep(Duration::from_millis(1)).await;
        abandoned.abort();
        let _ = abandoned.await;
        drop(first);
        tokio::time::timeout(Duration::from_secs(1), turns.take())
            .await
            .expect("the turn is free again");
    }
}
