//! Simulated time for live readings: a tick every `interval / speed` of wall time, with simulated time running
//! `speed` times faster than the wall clock. Readings are stamped with the wall clock (whole seconds).

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::model::Timestamp;

pub struct LiveClock {
    every: tokio::time::Interval,
    start: i64,
    speed: i64,
}

impl LiveClock {
    pub fn new(interval: Duration, speed: u32) -> Self {
        let wall_step = (interval / speed.max(1)).max(Duration::from_millis(100));
        let mut every = tokio::time::interval(wall_step);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Self {
            every,
            start: Timestamp::now().0,
            speed: speed.max(1) as i64,
        }
    }

    /// The next tick as (simulated time, stamp), or `None` once `shutdown` is cancelled.
    pub async fn next(&mut self, shutdown: &CancellationToken) -> Option<(Timestamp, Timestamp)> {
        tokio::select! {
            _ = shutdown.cancelled() => return None,
            _ = self.every.tick() => {}
        }
        let wall = Timestamp::now().0;
        let stamp = Timestamp(wall - wall.rem_euclid(1000));
        Some((
            Timestamp(self.start + (wall - self.start) * self.speed),
            stamp,
        ))
    }
}
