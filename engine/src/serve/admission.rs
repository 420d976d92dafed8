//! Admission and concurrency in `enf serve`: how many items may be admitted
//! (`--queue` places: running or waiting their turn), how many run in the
//! pipeline at once (`--concurrency`, as `enf run`), and what a refused
//! client is told.
//!
//! An admitted item waits for a pipeline slot in a FIFO (tokio's semaphore
//! is fair), so the wasm instance pool, sized from `--concurrency`, never
//! runs out for an admitted item. A request that finds too few free places
//! — or, once the service time is known, whose last item would likely
//! finish after its deadline — is refused at once with 503 and a
//! `Retry-After` computed from the measured service rate: the time the
//! items ahead of it need to clear the places it lacks.
//!
//! What "likely" means is [`super::service_time`]'s.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::service_time::ServiceTime;
#[cfg(test)]
use super::service_time::WARM_ITEMS;

/// Bounds of `Retry-After`, in seconds.
const RETRY_AFTER_RANGE: (u64, u64) = (1, 300);

/// Why a request was not admitted.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Refusal {
    /// What the client is told.
    pub(crate) message: String,
    /// Seconds after which a retry is likely to be admitted.
    pub(crate) retry_after_s: u64,
}

/// Places, pipeline slots and the measured service time (see the module docs).
pub(crate) struct Admission {
    places: Arc<Semaphore>,
    capacity: usize,
    slots: Arc<Semaphore>,
    concurrency: usize,
    service: Mutex<ServiceTime>,
}

/// Places held by an admitted request, given back when it is dropped.
pub(crate) struct Places {
    _permit: OwnedSemaphorePermit,
}

/// A pipeline slot held by a running item.
pub(crate) struct Slot<'a> {
    _permit: OwnedSemaphorePermit,
    admission: &'a Admission,
    started: std::time::Instant,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.admission.record(self.started.elapsed());
    }
}

impl Admission {
    /// `capacity` places in front of `concurrency` pipeline slots.
    pub(crate) fn new(capacity: usize, concurrency: usize) -> Self {
        Self {
            places: Arc::new(Semaphore::new(capacity)),
            capacity,
            slots: Arc::new(Semaphore::new(concurrency.max(1))),
            concurrency: concurrency.max(1),
            service: Mutex::new(ServiceTime::default()),
        }
    }

    /// Places in all.
    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// Items admitted now (running or waiting for a slot).
    pub(crate) fn depth(&self) -> usize {
        self.capacity - self.places.available_permits()
    }

    /// Items running in the pipeline now.
    pub(crate) fn running(&self) -> usize {
        self.concurrency - self.slots.available_permits()
    }

    /// The mean of an item's recent times in the pipeline, once measured.
    pub(crate) fn mean_item_time(&self) -> Option<Duration> {
        self.service().mean().map(Duration::from_secs_f64)
    }

    fn service(&self) -> std::sync::MutexGuard<'_, ServiceTime> {
        self.service.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn record(&self, took: Duration) {
        self.service().record(took.as_secs_f64());
    }

    /// Seconds until `needed` more places are likely free with `depth`
    /// items admitted: the items that must finish first, at the measured
    /// rate of `concurrency` items per mean item time.
    fn seconds_until_free(&self, needed: usize, depth: usize) -> f64 {
        let Some(mean) = self.mean_item_time() else { return 1.0 };
        let must_finish = (depth + needed).saturating_sub(self.capacity).max(1);
        must_finish as f64 * mean.as_secs_f64() / self.concurrency as f64
    }

    /// A refusal now, for one item that waited its turn until its deadline.
    pub(crate) fn late(&self, deadline: Duration) -> Refusal {
        self.refusal(
            format!("busy: no pipeline slot came free within the deadline of {deadline:?}"),
            self.seconds_until_free(1, self.depth()),
        )
    }

    fn refusal(&self, message: String, seconds: f64) -> Refusal {
        let (low, high) = RETRY_AFTER_RANGE;
        Refusal { message, retry_after_s: (seconds.ceil() as u64).clamp(low, high) }
    }

    /// Admits `items` items (a `/v1/filter` request: one per candidate),
    /// or refuses them at once. `deadline` is the request's: once the
    /// service time is known, items whose turn would come too late to
    /// finish within it are refused rather than admitted to time out.
    pub(crate) fn admit(&self, items: usize, deadline: Duration) -> Result<Places, Refusal> {
        let depth = self.depth();
        let wanted = u32::try_from(items).unwrap_or(u32::MAX);
        let Ok(permit) = self.places.clone().try_acquire_many_owned(wanted) else {
            return Err(self.refusal(
                format!("busy: {items} place(s) wanted, {} of {} free", self.capacity - depth, self.capacity),
                self.seconds_until_free(items, depth),
            ));
        };
        let likely_done = self.service().likely_done(depth + items, self.concurrency);
        if let (Some(expected), Some(mean)) = (likely_done, self.mean_item_time()) {
            if expected > deadline.as_secs_f64() {
                drop(permit);
                let over = expected - deadline.as_secs_f64();
                let message = if depth == 0 {
                    // Even an idle server cannot: waiting will not help.
                    format!(
                        "{items} item(s) at the measured {:.1} s per item, {} at a time, likely take ~{expected:.0} s: over the deadline of {deadline:?} even on an idle server; send fewer candidates",
                        mean.as_secs_f64(),
                        self.concurrency
                    )
                } else {
                    format!(
                        "busy: with {depth} item(s) ahead this request would likely finish in ~{expected:.1} s, over the deadline of {deadline:?}"
                    )
                };
                return Err(self.refusal(message, over.max(mean.as_secs_f64())));
            }
        }
        Ok(Places { _permit: permit })
    }

    /// Waits (FIFO) for a pipeline slot for one admitted item.
    pub(crate) async fn slot(&self) -> Slot<'_> {
        let permit = self.slots.clone().acquire_owned().await.unwrap_or_else(|_| unreachable!("never closed"));
        Slot { _permit: permit, admission: self, started: std::time::Instant::now() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LONG: Duration = Duration::from_secs(3600);

    #[test]
    fn places_are_counted_and_given_back() {
        let admission = Admission::new(4, 2);
        let three = admission.admit(3, LONG).unwrap();
        assert_eq!(admission.depth(), 3);
        let refused = admission.admit(2, LONG).err().expect("only one place is free");
        assert!(refused.message.contains("1 of 4 free"), "{}", refused.message);
        assert_eq!(refused.retry_after_s, 1, "no service time measured yet");
        let one = admission.admit(1, LONG).unwrap();
        drop(three);
        assert_eq!(admission.depth(), 1);
        drop(one);
        assert!(admission.admit(4, LONG).is_ok(), "a request as large as the queue fits an idle server");
    }

    #[test]
    fn retry_after_follows_the_measured_service_rate() {
        let admission = Admission::new(8, 2);
        for _ in 0..WARM_ITEMS {
            admission.record(Duration::from_secs(4));
        }
        let _full = admission.admit(8, LONG).unwrap();
        // One place wanted: one item must finish; 2 run at a time, 4 s each → 2 s.
        assert_eq!(admission.admit(1, LONG).err().unwrap().retry_after_s, 2);
        // Five wanted: five must finish → 10 s.
        assert_eq!(admission.admit(5, LONG).err().unwrap().retry_after_s, 10);
    }

    #[test]
    fn items_that_would_finish_after_the_deadline_are_refused_once_the_rate_is_known() {
        let admission = Admission::new(100, 2);
        let _ahead = admission.admit(10, LONG).unwrap();
        // Cold: the service time is unknown, so the deadline cannot be judged.
        assert!(admission.admit(1, Duration::from_secs(1)).is_ok());
        for _ in 0..WARM_ITEMS {
            admission.record(Duration::from_secs(1));
        }
        // 10 items ahead and 1 more, 2 at a time, 1 s each → ~6 s: within
        // 10 s, not within 3 s.
        assert!(admission.admit(1, Duration::from_secs(10)).is_ok());
        let refused = admission.admit(1, Duration::from_secs(3)).err().expect("would finish after its deadline");
        assert!(refused.message.contains("over the deadline"), "{}", refused.message);
        assert!(refused.retry_after_s >= 1);
        assert_eq!(admission.depth(), 10, "a refused request holds no place");
        // On an idle server, a request too large for its deadline is told so.
        let idle = Admission::new(100, 2);
        for _ in 0..WARM_ITEMS {
            idle.record(Duration::from_secs(1));
        }
        let refused = idle.admit(20, Duration::from_secs(5)).err().expect("20 items take ~10 s");
        assert!(refused.message.contains("even on an idle server"), "{}", refused.message);
    }

    #[test]
    fn items_whose_time_varies_get_a_margin_before_the_deadline() {
        let steady = Admission::new(100, 1);
        let varied = Admission::new(100, 1);
        for i in 0..40 {
            steady.record(Duration::from_secs(10));
            varied.record(Duration::from_secs(if i % 2 == 0 { 4 } else { 16 }));
        }
        // Both average ~10 s per item; 5 items ahead of 1, one at a time.
        let (_a, _b) = (steady.admit(5, LONG).unwrap(), varied.admit(5, LONG).unwrap());
        assert!(steady.admit(1, Duration::from_secs(65)).is_ok(), "6 steady items take 60 s");
        let refused = varied.admit(1, Duration::from_secs(65)).err().expect("varied items need a margin");
        assert!(refused.message.contains("likely finish"), "{}", refused.message);
        assert!(varied.admit(1, Duration::from_secs(120)).is_ok());
    }

    #[tokio::test]
    async fn slots_bound_the_items_running_and_are_handed_out_in_order() {
        let admission = Arc::new(Admission::new(10, 1));
        let first = admission.slot().await;
        assert_eq!(admission.running(), 1);
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut waiters = Vec::new();
        for i in 0..3 {
            let (admission, order) = (admission.clone(), order.clone());
            waiters.push(tokio::spawn(async move {
                let _slot = admission.slot().await;
                order.lock().unwrap().push(i);
            }));
            tokio::task::yield_now().await;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        drop(first);
        for waiter in waiters {
            waiter.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), vec![0, 1, 2], "first come, first served");
        assert!(admission.mean_item_time().is_some(), "each finished slot is measured");
    }
}
