//! Bounds on sign-in attempts. A password check (argon2id) takes 19 MiB and tens of milliseconds of a core, on a
//! machine whose two cores also run the pipeline; unbounded, a flood of sign-ins would take both and the blocking
//! pool's memory. So one check runs at a time and few wait for it, and each client address may be refused only a
//! few times a minute before it must wait (the per-account lockout alone lets one address try every name).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, SemaphorePermit};

/// Why a sign-in was not tried.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum Throttled {
    #[error("too many refused sign-ins from this address; try again in {} s", retry_after.as_secs().max(1))]
    TooMany { retry_after: Duration },
    #[error("too many sign-ins at once; try again in a few seconds")]
    Busy,
}

/// Password checks waiting for the one running, at most; more are answered "busy" at once.
pub const MAX_WAITING: usize = 8;
/// How long a sign-in waits for its turn before it is answered "busy".
const MAX_WAIT: Duration = Duration::from_secs(10);
/// Client addresses followed at once. When full, those whose allowance has refilled are forgotten; a new address
/// past that is answered "busy" until some refill (at most a minute).
pub const MAX_ADDRESSES: usize = 4096;

/// Shared by every `POST /api/login`.
pub struct SignInGate {
    refused: Mutex<HashMap<IpAddr, Allowance>>,
    checks: Semaphore,
    waiting: AtomicUsize,
}

/// A token bucket: `left` attempts, refilled at the configured rate since `at`.
#[derive(Debug, Clone, Copy)]
struct Allowance {
    left: f64,
    at: Instant,
    /// The address was told to wait and has not had an attempt since: logged once per episode.
    told: bool,
}

impl Default for SignInGate {
    fn default() -> Self {
        Self {
            refused: Mutex::new(HashMap::new()),
            checks: Semaphore::new(1),
            waiting: AtomicUsize::new(0),
        }
    }
}

impl SignInGate {
    /// Take one attempt from `addr`'s allowance (`per_minute` at once, refilled at `per_minute` a minute). The
    /// attempt comes back when dropped unless the sign-in was refused ([`Attempt::refused`]).
    pub fn attempt(
        &self,
        addr: IpAddr,
        per_minute: u32,
        now: Instant,
    ) -> Result<Attempt<'_>, Throttled> {
        let addr = client(addr);
        let full = f64::from(per_minute.max(1));
        let rate = full / 60.0;
        let mut map = self.refused.lock().unwrap_or_else(|e| e.into_inner());
        if !map.contains_key(&addr) && map.len() >= MAX_ADDRESSES {
            map.retain(|_, a| refilled(a, rate, full, now) < full);
            if map.len() >= MAX_ADDRESSES {
                return Err(Throttled::Busy);
            }
        }
        let a = map.entry(addr).or_insert(Allowance {
            left: full,
            at: now,
            told: false,
        });
        *a = Allowance {
            left: refilled(a, rate, full, now),
            at: now,
            told: a.told,
        };
        if a.left >= 1.0 {
            a.left -= 1.0;
            a.told = false;
            return Ok(Attempt {
                gate: self,
                addr,
                per_minute,
                refused: false,
            });
        }
        if !std::mem::replace(&mut a.told, true) {
            tracing::warn!(client = %addr, "Sign-ins from this address are refused for a while: too many were refused.");
        }
        Err(Throttled::TooMany {
            retry_after: Duration::from_secs_f64((1.0 - a.left) / rate),
        })
    }

    fn give_back(&self, addr: IpAddr, per_minute: u32) {
        let mut map = self.refused.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(a) = map.get_mut(&addr) {
            a.left = (a.left + 1.0).min(f64::from(per_minute.max(1)));
        }
    }

    /// Wait for the turn to check a password (one at a time); "busy" when [`MAX_WAITING`] wait already or the turn
    /// does not come within [`MAX_WAIT`].
    pub async fn check_turn(&self) -> Result<SemaphorePermit<'_>, Throttled> {
        // Counted down when this call ends, even dropped mid-wait (the client went away): a count left behind
        // would answer "busy" to everyone once it reached the limit.
        let waiting = Waiting::count(&self.waiting);
        if waiting.before >= MAX_WAITING {
            return Err(Throttled::Busy);
        }
        let turn = tokio::time::timeout(MAX_WAIT, self.checks.acquire()).await;
        drop(waiting);
        match turn {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(Throttled::Busy),
        }
    }
}

/// One caller waiting for its turn, counted in `waiting` while it lives.
struct Waiting<'a> {
    waiting: &'a AtomicUsize,
    /// How many waited before it.
    before: usize,
}

impl<'a> Waiting<'a> {
    fn count(waiting: &'a AtomicUsize) -> Self {
        let before = waiting.fetch_add(1, Ordering::SeqCst);
        Waiting { waiting, before }
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.waiting.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Whom an address counts as: itself for IPv4 (an IPv4-mapped IPv6 address too), its /64 for IPv6, since one
/// host commonly has a whole /64 to pick addresses from.
fn client(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V4(_) => addr,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !u128::from(u64::MAX)).into()),
        },
    }
}

/// One sign-in's use of its address's allowance. Given back when dropped unless [`Attempt::refused`] was called:
/// only refusals use the allowance up, not a success, a "busy", a failure of ours, nor a client that went away.
#[must_use]
pub struct Attempt<'a> {
    gate: &'a SignInGate,
    addr: IpAddr,
    per_minute: u32,
    refused: bool,
}

impl Attempt<'_> {
    /// The sign-in was refused: the attempt stays used.
    pub fn refused(mut self) {
        self.refused = true;
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if !self.refused {
            self.gate.give_back(self.addr, self.per_minute);
        }
    }
}

/// Attempts `a` holds at `now`.
fn refilled(a: &Allowance, rate: f64, full: f64, now: Instant) -> f64 {
    let secs = now.saturating_duration_since(a.at).as_secs_f64();
    (a.left + secs * rate).min(full)
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    fn addr(n: u32) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + n))
    }

    /// A sign-in from `addr` that is refused: what the gate said.
    fn refused(
        gate: &SignInGate,
        addr: IpAddr,
        per_minute: u32,
        now: Instant,
    ) -> Result<(), Throttled> {
        gate.attempt(addr, per_minute, now).map(Attempt::refused)
    }

    #[test]
    fn an_address_gets_its_allowance_then_waits_for_the_refill() {
        let gate = SignInGate::default();
        let t0 = Instant::now();
        for _ in 0..6 {
            assert_eq!(refused(&gate, addr(1), 6, t0), Ok(()));
        }
        // Six a minute: the next one in ten seconds.
        assert_eq!(
            refused(&gate, addr(1), 6, t0),
            Err(Throttled::TooMany {
                retry_after: Duration::from_secs(10)
            })
        );
        // Another address is not held up.
        assert_eq!(refused(&gate, addr(2), 6, t0), Ok(()));
        assert!(gate
            .attempt(addr(1), 6, t0 + Duration::from_secs(9))
            .is_err());
        assert_eq!(
            refused(&gate, addr(1), 6, t0 + Duration::from_secs(10)),
            Ok(())
        );
        assert!(gate
            .attempt(addr(1), 6, t0 + Duration::from_secs(10))
            .is_err());
    }

    #[test]
    fn ipv6_addresses_of_one_64_share_an_allowance_and_mapped_ipv4_is_ipv4() {
        let gate = SignInGate::default();
        let t0 = Instant::now();
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(refused(&gate, a, 1, t0), Ok(()));
        assert!(refused(&gate, b, 1, t0).is_err());
        assert_eq!(refused(&gate, other, 1, t0), Ok(()));
        let mapped: IpAddr = "::ffff:10.0.0.7".parse().unwrap();
        assert_eq!(refused(&gate, mapped, 1, t0), Ok(()));
        assert!(refused(&gate, addr(7), 1, t0).is_err());
    }

    #[test]
    fn sign_ins_not_refused_use_up_nothing() {
        let gate = SignInGate::default();
        let t0 = Instant::now();
        for _ in 0..50 {
            // Succeeded, answered "busy", or the client went away: the attempt is dropped, not refused.
            let attempt = gate.attempt(addr(1), 3, t0);
            assert!(attempt.is_ok());
        }
    }

    #[test]
    fn a_full_table_forgets_refilled_addresses_and_refuses_new_ones_while_none_has() {
        let gate = SignInGate::default();
        let t0 = Instant::now();
        for n in 0..MAX_ADDRESSES as u32 {
            refused(&gate, addr(n), 60, t0).unwrap();
        }
        // Every address has used one attempt, none has refilled: a new one cannot be followed.
        assert_eq!(
            refused(&gate, addr(MAX_ADDRESSES as u32), 60, t0),
            Err(Throttled::Busy)
        );
        // A second later every allowance is full again: they are forgotten and the new address is followed.
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(refused(&gate, addr(MAX_ADDRESSES as u32), 60, t1), Ok(()));
        assert_eq!(gate.refused.lock().unwrap().len(), 1);
    }

    /// Let the spawned callers run until `n` wait for their turn (at most 1,000 yields).
    async fn waiters(gate: &SignInGate, n: usize) {
        for _ in 0..1000 {
            if gate.waiting.load(Ordering::SeqCst) >= n {
                return;
            }
            tokio::task::yield_now().await;
        }
        panic!("{n} callers did not start waiting");
    }

    #[tokio::test(start_paused = true)]
    async fn one_check_runs_at_a_time_and_few_wait() {
        let gate = std::sync::Arc::new(SignInGate::default());
        let running = gate.check_turn().await.unwrap();
        // Waiters queue behind it, up to the limit; past it the answer is "busy" at once.
        let mut waiting = Vec::new();
        for _ in 0..MAX_WAITING {
            let g = gate.clone();
            waiting.push(tokio::spawn(async move { g.check_turn().await.map(drop) }));
        }
        waiters(&gate, MAX_WAITING).await;
        assert_eq!(gate.check_turn().await.err(), Some(Throttled::Busy));
        drop(running);
        for w in waiting {
            assert_eq!(w.await.unwrap(), Ok(()));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiter_that_goes_away_is_no_longer_counted() {
        let gate = std::sync::Arc::new(SignInGate::default());
        let running = gate.check_turn().await.unwrap();
        let g = gate.clone();
        let waiter = tokio::spawn(async move { g.check_turn().await.map(drop) });
        waiters(&gate, 1).await;
        // The client disconnects: hyper drops the request's future mid-wait.
        waiter.abort();
        assert!(waiter.await.unwrap_err().is_cancelled());
        assert_eq!(gate.waiting.load(Ordering::SeqCst), 0);
        drop(running);
        assert!(gate.check_turn().await.is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn a_turn_that_does_not_come_within_the_wait_is_busy() {
        let gate = SignInGate::default();
        let _running = gate.check_turn().await.unwrap();
        assert_eq!(gate.check_turn().await.err(), Some(Throttled::Busy));
        assert_eq!(gate.waiting.load(Ordering::SeqCst), 0);
    }
}
