//! The memory budget that all in-flight export requests share: request bodies as they
//! are read and inflated, the decoded request, and the batch it becomes until the
//! pipeline has taken it off the queue. A request that cannot reserve what it needs
//! within the queue wait is refused as retryable (503 / UNAVAILABLE); one that could never
//! fit is refused as too large.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::ingest::IngestError;

/// Reservations are made in units of this many bytes (a semaphore permit each).
const UNIT: u64 = 1024;

fn units(bytes: u64) -> u64 {
    bytes.div_ceil(UNIT)
}

/// Shared by both receivers and every request they serve.
#[derive(Debug, Clone)]
pub struct MemoryBudget {
    permits: Arc<Semaphore>,
    total_units: u64,
    /// Bytes reserved, shared with the metrics that report it.
    in_use: Arc<AtomicU64>,
}

impl MemoryBudget {
    /// A budget of `bytes`, reporting what is reserved into `in_use`.
    pub fn new(bytes: u64, in_use: Arc<AtomicU64>) -> Self {
        let total_units = units(bytes).clamp(1, Semaphore::MAX_PERMITS as u64);
        Self {
            permits: Arc::new(Semaphore::new(total_units as usize)),
            total_units,
            in_use,
        }
    }

    /// Bytes currently reserved by requests in flight or queued.
    pub fn in_use_bytes(&self) -> u64 {
        self.in_use.load(Ordering::Relaxed)
    }

    pub fn total_bytes(&self) -> u64 {
        self.total_units.saturating_mul(UNIT)
    }

    /// An empty reservation to grow as a request's cost becomes known.
    pub fn reservation(&self) -> Reservation {
        Reservation {
            budget: self.clone(),
            permit: None,
            units: 0,
        }
    }
}

impl Default for MemoryBudget {
    /// Unbounded, for library use and tests; the receivers set their own.
    fn default() -> Self {
        Self::new(u64::MAX, Arc::default())
    }
}

/// Budget held by one request; released when dropped.
#[derive(Debug)]
pub struct Reservation {
    budget: MemoryBudget,
    permit: Option<OwnedSemaphorePermit>,
    units: u64,
}

impl Reservation {
    pub fn bytes(&self) -> u64 {
        self.units * UNIT
    }

    /// Grows the reservation to `bytes`, waiting up to `wait` for others to release
    /// theirs. Never shrinks.
    pub async fn grow_to(&mut self, bytes: u64, wait: Duration) -> Result<(), IngestError> {
        let wanted = units(bytes);
        if wanted <= self.units {
            return Ok(());
        }
        self.within_whole_budget(bytes)?;
        let more = (wanted - self.units) as u32;
        let permits = self.budget.permits.clone();
        let acquired = match permits.clone().try_acquire_many_owned(more) {
            Ok(p) => Ok(p),
            Err(_) if wait.is_zero() => return Err(IngestError::OverBudget),
            Err(_) => match tokio::time::timeout(wait, permits.acquire_many_owned(more)).await {
                Ok(Ok(p)) => Ok(p),
                Ok(Err(_)) => return Err(IngestError::ShuttingDown),
                Err(_) => Err(IngestError::OverBudget),
            },
        }?;
        self.add(acquired, more);
        self.units = wanted;
        Ok(())
    }

    /// Grows the reservation to `bytes` if the budget has room now, without waiting
    /// (for bytes arriving on a connection: they are already here).
    pub fn try_grow_to(&mut self, bytes: u64) -> Result<(), IngestError> {
        let wanted = units(bytes);
        if wanted <= self.units {
            return Ok(());
        }
        self.within_whole_budget(bytes)?;
        let more = (wanted - self.units) as u32;
        let acquired = self
            .budget
            .permits
            .clone()
            .try_acquire_many_owned(more)
            .map_err(|_| IngestError::OverBudget)?;
        self.add(acquired, more);
        self.units = wanted;
        Ok(())
    }

    /// A request that needs more than the whole budget could never be served: it is
    /// too large, not worth retrying.
    fn within_whole_budget(&self, bytes: u64) -> Result<(), IngestError> {
        if units(bytes) > self.budget.total_units {
            return Err(IngestError::OverLimit(format!(
                "request needs {bytes} bytes, more than the receivers' whole memory budget of {}",
                self.budget.total_bytes()
            )));
        }
        Ok(())
    }

    fn add(&mut self, acquired: OwnedSemaphorePermit, units: u32) {
        match &mut self.permit {
            Some(held) => held.merge(acquired),
            None => self.permit = Some(acquired),
        }
        self.budget
            .in_use
            .fetch_add(u64::from(units) * UNIT, Ordering::Relaxed);
    }

    /// Gives back what is above `bytes` (a body that inflated to less than reserved,
    /// bytes freed once decoded).
    pub fn shrink_to(&mut self, bytes: u64) {
        let keep = units(bytes);
        if keep >= self.units {
            return;
        }
        let release = self.units - keep;
        if let Some(permit) = &mut self.permit {
            drop(permit.split(release as usize));
        }
        self.budget
            .in_use
            .fetch_sub(release * UNIT, Ordering::Relaxed);
        self.units = keep;
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget
            .in_use
            .fetch_sub(self.units * UNIT, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reservations_share_the_budget_and_release_on_drop() {
        let budget = MemoryBudget::new(10 * UNIT, Arc::default());
        let mut a = budget.reservation();
        a.grow_to(6 * UNIT, Duration::ZERO).await.unwrap();
        let mut b = budget.reservation();
        assert_eq!(
            b.grow_to(5 * UNIT, Duration::from_millis(10)).await,
            Err(IngestError::OverBudget)
        );
        assert_eq!(budget.in_use_bytes(), 6 * UNIT);
        a.shrink_to(2 * UNIT);
        b.grow_to(5 * UNIT, Duration::ZERO).await.unwrap();
        assert_eq!(budget.in_use_bytes(), 7 * UNIT);
        drop(a);
        drop(b);
        assert_eq!(budget.in_use_bytes(), 0);
        assert_eq!(budget.permits.available_permits(), 10);
    }

    #[tokio::test]
    async fn more_than_the_whole_budget_is_over_limit_not_retryable() {
        let budget = MemoryBudget::new(4 * UNIT, Arc::default());
        let mut r = budget.reservation();
        assert!(matches!(
            r.try_grow_to(5 * UNIT),
            Err(IngestError::OverLimit(_))
        ));
        assert!(matches!(
            r.grow_to(5 * UNIT, Duration::ZERO).await,
            Err(IngestError::OverLimit(_))
        ));
        let mut other = budget.reservation();
        other.try_grow_to(UNIT).unwrap();
        assert_eq!(r.try_grow_to(4 * UNIT), Err(IngestError::OverBudget));
    }

    #[tokio::test]
    async fn a_waiting_request_gets_room_that_frees_up() {
        let budget = MemoryBudget::new(4 * UNIT, Arc::default());
        let mut a = budget.reservation();
        a.grow_to(4 * UNIT, Duration::ZERO).await.unwrap();
        let mut b = budget.reservation();
        let release = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            drop(a);
        });
        b.grow_to(3 * UNIT, Duration::from_secs(5)).await.unwrap();
        release.await.unwrap();
        assert_eq!(b.bytes(), 3 * UNIT);
    }

    #[tokio::test]
    async fn more_than_the_whole_budget_is_never_retryable() {
        let budget = MemoryBudget::new(4 * UNIT, Arc::default());
        let mut a = budget.reservation();
        assert!(matches!(
            a.grow_to(5 * UNIT, Duration::from_secs(5)).await,
            Err(IngestError::OverLimit(_))
        ));
    }
}
