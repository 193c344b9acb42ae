//! How often the media thread may wake up: receive moderation, as a network card does with its
//! interrupts (`ethtool -C rx-usecs`). Woken by every datagram, the thread switched in about once
//! per datagram (~2,300 times a second at 10 publishers on a 2-core machine), and those switches
//! were a fifth of the relay's CPU. So while wake-ups come close together, the thread, once it
//! has nothing left to do, sleeps out the rest of a window counted from its last wake-up before
//! it waits again: whatever arrived meanwhile is taken in one wake-up, at most one a window.
//! When they come further apart than that the thread waits for the socket as before, so a quiet
//! relay is never woken for nothing and a lone datagram is never held back.
//!
//! A datagram waits at most one window; its wait is counted in the relay's latency (the kernel
//! stamps its arrival: `receive`). Everything else on the media thread (timers, commands, the
//! audio workers' frames, the ingests' sockets) may wait as long.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;

/// The media thread's runtime (one thread, I/O and timers), moderated by `window` and counting
/// its wake-ups in `wakeups`.
pub fn runtime(window: Duration, wakeups: Counter) -> std::io::Result<tokio::runtime::Runtime> {
    let moderation = Arc::new(Mutex::new(Moderation::new(window)));
    let woke = moderation.clone();
    tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .on_thread_unpark(move || {
            wakeups.inc();
            woke.lock().unwrap_or_else(|p| p.into_inner()).woke(Instant::now());
        })
        // Runs once every task on the thread has had its turn, right before the thread waits for
        // the socket, its timers or its channels: so nothing already read waits on the rest, and
        // a sleep is precise to tens of microseconds where the runtime's timers round up to the
        // next millisecond.
        .on_thread_park(move || {
            let rest = moderation.lock().unwrap_or_else(|p| p.into_inner()).rest(Instant::now());
            if let Some(rest) = rest {
                std::thread::sleep(rest);
            }
        })
        .build()
}

/// Wake-ups further apart than this many windows mean the thread is not busy.
const BUSY_GAP_WINDOWS: u32 = 2;

#[derive(Debug)]
pub struct Moderation {
    window: Duration,
    last_wake: Option<Instant>,
    /// The last wake-up came soon after the one before: more work is on its way.
    busy: bool,
}

impl Moderation {
    /// At most one wake-up per `window` while busy; a zero window turns moderation off.
    pub fn new(window: Duration) -> Self {
        Self { window, last_wake: None, busy: false }
    }

    /// The thread woke up at `now`.
    pub fn woke(&mut self, now: Instant) {
        self.busy = self.last_wake.is_some_and(|last| now.saturating_duration_since(last) < self.window * BUSY_GAP_WINDOWS);
        self.last_wake = Some(now);
    }

    /// The thread has nothing left to do at `now`: how long it should sleep before it waits for
    /// work again, if at all.
    pub fn rest(&self, now: Instant) -> Option<Duration> {
        if !self.busy {
            return None;
        }
        let until = self.last_wake? + self.window;
        until.checked_duration_since(now).filter(|rest| !rest.is_zero())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: Duration = Duration::from_millis(2);

    fn after(t0: Instant, micros: u64) -> Instant {
        t0 + Duration::from_micros(micros)
    }

    #[test]
    fn a_quiet_thread_never_rests() {
        let t0 = Instant::now();
        let mut moderation = Moderation::new(WINDOW);
        assert_eq!(moderation.rest(t0), None, "nothing seen yet");
        moderation.woke(t0);
        assert_eq!(moderation.rest(after(t0, 100)), None, "a first wake-up is not busy");
        moderation.woke(after(t0, 10_000));
        assert_eq!(moderation.rest(after(t0, 10_100)), None, "wake-ups 10 ms apart");
    }

    #[test]
    fn close_wake_ups_rest_out_the_window_from_the_last_one() {
        let t0 = Instant::now();
        let mut moderation = Moderation::new(WINDOW);
        moderation.woke(t0);
        moderation.woke(after(t0, 300));
        assert_eq!(moderation.rest(after(t0, 400)), Some(Duration::from_micros(1_900)));
        assert_eq!(moderation.rest(after(t0, 2_300)), None, "the window is over");
        // Woken at the end of its rest with work waiting, it stays busy.
        moderation.woke(after(t0, 2_320));
        assert_eq!(moderation.rest(after(t0, 2_400)), Some(Duration::from_micros(1_920)));
        // Nothing came for a while: the next wake-up is the start of a quiet spell.
        moderation.woke(after(t0, 9_000));
        assert_eq!(moderation.rest(after(t0, 9_100)), None);
    }

    #[test]
    fn a_zero_window_turns_it_off() {
        let t0 = Instant::now();
        let mut moderation = Moderation::new(Duration::ZERO);
        moderation.woke(t0);
        moderation.woke(t0);
        assert_eq!(moderation.rest(t0), None);
    }
}
