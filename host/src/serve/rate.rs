//! A tenant's rate (`limits.calls_per_minute`): a token bucket, and the front door's wait for
//! its next token. Holding a request before it is read, instead of refusing it at once, is
//! what makes a client that retries at once (or floods) cost the host a request per token.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::locks::lock;

/// A token bucket: `per_minute` calls a minute, bursts up to that many.
pub(crate) struct RateBucket {
    per_minute: f64,
    state: Mutex<(f64, Instant)>,
    /// Requests waiting at the front door for this rate's next token.
    waiting: tokio::sync::Semaphore,
}

/// How many requests of one tenant may wait at the front door for its rate at once; past
/// that they are refused there (429) without being read.
const DOOR_WAITERS: usize = 16;

/// What the front door does with a request of a tenant, by its rate.
pub(crate) enum Door {
    /// In: its rate has a token.
    Open,
    /// Still no token after waiting: in only if its body is small; else refused, with how
    /// long until the next token.
    SmallOnly(Duration),
    /// Too many of the tenant's requests wait already: refused, with how long to wait.
    Refused(Duration),
}

/// The longest a request waits at the front door for its tenant's rate.
const MAX_DOOR_WAIT: Duration = Duration::from_secs(1);

impl RateBucket {
    pub(crate) fn new(per_minute: u32) -> Self {
        let per_minute = f64::from(per_minute);
        Self {
            per_minute,
            state: Mutex::new((per_minute, Instant::now())),
            waiting: tokio::sync::Semaphore::new(DOOR_WAITERS),
        }
    }

    /// The tokens there are now (refilled since the last look).
    fn refill(&self, state: &mut (f64, Instant)) {
        let now = Instant::now();
        state.0 = (state.0 + now.duration_since(state.1).as_secs_f64() * self.per_minute / 60.0)
            .min(self.per_minute);
        state.1 = now;
    }

    /// Takes a token, or says how long until one is there.
    pub(crate) fn take(&self) -> Result<(), Duration> {
        let mut state = lock(&self.state);
        self.refill(&mut state);
        if state.0 >= 1.0 {
            state.0 -= 1.0;
            Ok(())
        } else {
            Err(self.time_to(1.0 - state.0))
        }
    }

    /// How long until the bucket holds a token (zero if it does).
    pub(crate) fn until_token(&self) -> Duration {
        let mut state = lock(&self.state);
        self.refill(&mut state);
        self.time_to((1.0 - state.0).max(0.0))
    }

    /// How long the bucket takes to refill `tokens`.
    fn time_to(&self, tokens: f64) -> Duration {
        Duration::from_secs_f64(tokens * 60.0 / self.per_minute)
    }

    /// Holds a request of its tenant at the front door, before it is read, while its rate
    /// has no token: until the next one is due, the waiters spaced a token apart (at most
    /// [`MAX_DOOR_WAIT`]). A client that retries a refusal at once, or floods requests that
    /// are refused anyway, then costs the host a request per token instead of all it can
    /// send. A request still without a token after its wait goes in only if it is small (an
    /// answer to an elicitation, a cancellation, a notification: nothing a client should
    /// lose); past [`DOOR_WAITERS`] waiting at once, the answer is how long to wait.
    pub(crate) async fn wait_at_door(&self) -> Door {
        let due = self.until_token();
        if due.is_zero() {
            return Door::Open;
        }
        let ahead = DOOR_WAITERS - self.waiting.available_permits();
        let Ok(_waiting) = self.waiting.try_acquire() else {
            return Door::Refused(due.max(MAX_DOOR_WAIT));
        };
        let spacing = Duration::from_secs_f64(60.0 / self.per_minute);
        tokio::time::sleep((due + spacing * ahead as u32).min(MAX_DOOR_WAIT)).await;
        match self.until_token() {
            due if due.is_zero() => Door::Open,
            due => Door::SmallOnly(due),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::RateBucket;

    #[test]
    fn an_empty_bucket_says_when_its_next_token_is_due() {
        let bucket = RateBucket::new(120);
        assert!(bucket.until_token().is_zero());
        while bucket.take().is_ok() {}
        let due = bucket.until_token();
        assert!(
            due > std::time::Duration::ZERO && due <= std::time::Duration::from_millis(500),
            "{due:?}"
        );
    }

    #[test]
    fn a_bucket_allows_its_rate_then_says_when() {
        let bucket = RateBucket::new(3);
        assert!(bucket.take().is_ok() && bucket.take().is_ok() && bucket.take().is_ok());
        let wait = bucket.take().unwrap_err();
        assert!(
            wait.as_secs_f64() > 0.0 && wait.as_secs_f64() <= 20.0,
            "{wait:?}"
        );
    }
}
