//! The bookkeeping of the `push` scenario: which notification each acknowledged booking
//! owes to which listener, and how late each arrived.
//!
//! A booking by writer `w` owes one notification to every listener of `w`'s group. A
//! receipt (listener `l` got a notification about appointment `a` at instant `t`) pays
//! that debt when `a` is a booking of `l`'s writer; its latency is `t − t_ack`, where
//! `t_ack` is when the writer had its 2xx answer. A push can beat the answer (the store
//! applies and notifies before the answer travels back through the API): it counts as 0.
//! Anything else (a booking nobody saw acknowledged, a listener outside the group, a
//! second copy) is unmatched.

use std::collections::{HashMap, HashSet};

use tokio::time::Instant;
use uuid::Uuid;

use crate::stats::{Latency, PushResult};

/// An acknowledged booking.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Booking {
    /// The appointment the booking created.
    pub(crate) appointment: Uuid,
    /// Index of the writer who booked.
    pub(crate) writer: usize,
    /// When the writer had its 2xx answer.
    pub(crate) acked: Instant,
}

/// A notification as a listener received it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Receipt {
    /// Index of the listener.
    pub(crate) listener: usize,
    /// `notification.payload.appointment_id`.
    pub(crate) appointment: Uuid,
    /// When the message came off the socket.
    pub(crate) at: Instant,
}

/// The debts of a set of bookings and the receipts paying them.
#[derive(Debug)]
pub(crate) struct Deliveries {
    /// Per booked appointment: its writer and when it was acknowledged.
    bookings: HashMap<Uuid, (usize, Instant)>,
    /// The writer whose group each listener is in.
    writer_of: Vec<usize>,
    expected: u64,
    paid: HashSet<(Uuid, usize)>,
    latencies_us: Vec<u64>,
    before_ack: u64,
    unmatched: u64,
}

impl Deliveries {
    /// The debts of `bookings` when listener `l` is in the group of writer `writer_of[l]`.
    pub(crate) fn new(bookings: &[Booking], writer_of: Vec<usize>) -> Self {
        let mut listeners_per_writer: HashMap<usize, u64> = HashMap::new();
        for &w in &writer_of {
            *listeners_per_writer.entry(w).or_default() += 1;
        }
        let bookings: HashMap<Uuid, (usize, Instant)> =
            bookings.iter().map(|b| (b.appointment, (b.writer, b.acked))).collect();
        let expected = bookings
            .values()
            .map(|(w, _)| listeners_per_writer.get(w).copied().unwrap_or(0))
            .sum();
        Self {
            bookings,
            writer_of,
            expected,
            paid: HashSet::new(),
            latencies_us: Vec::new(),
            before_ack: 0,
            unmatched: 0,
        }
    }

    /// Account for one receipt.
    pub(crate) fn record(&mut self, r: Receipt) {
        let owed = self
            .bookings
            .get(&r.appointment)
            .filter(|(writer, _)| self.writer_of.get(r.listener) == Some(writer));
        let Some(&(_, acked)) = owed else {
            self.unmatched += 1;
            return;
        };
        if !self.paid.insert((r.appointment, r.listener)) {
            self.unmatched += 1;
            return;
        }
        if r.at < acked {
            self.before_ack += 1;
        }
        let latency = r.at.saturating_duration_since(acked);
        self.latencies_us
            .push(u64::try_from(latency.as_micros()).unwrap_or(u64::MAX));
    }

    /// Owed notifications not received yet.
    pub(crate) fn pending(&self) -> u64 {
        self.expected - self.paid.len() as u64
    }

    /// The summary; `writers`, `lost_listeners` and `grace_s` are the caller's to fill.
    pub(crate) fn finish(mut self) -> PushResult {
        PushResult {
            writers: 0,
            listeners: self.writer_of.len(),
            bookings: self.bookings.len() as u64,
            expected: self.expected,
            delivered: self.paid.len() as u64,
            missing: self.pending(),
            before_ack: self.before_ack,
            unmatched: self.unmatched,
            lost_listeners: 0,
            grace_s: 0.0,
            latency: Latency::of(&mut self.latencies_us),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn each_booking_owes_one_notification_to_each_listener_of_its_group() {
        let t0 = Instant::now();
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let bookings = [
            Booking {
                appointment: a,
                writer: 0,
                acked: t0,
            },
            Booking {
                appointment: b,
                writer: 1,
                acked: t0 + ms(100),
            },
        ];
        // Listeners 0 and 2 in writer 0's group, 1 in writer 1's.
        let mut d = Deliveries::new(&bookings, vec![0, 1, 0]);
        assert_eq!(d.pending(), 3);
        d.record(Receipt {
            listener: 0,
            appointment: a,
            at: t0 + ms(10),
        });
        d.record(Receipt {
            listener: 2,
            appointment: a,
            at: t0 + ms(30),
        });
        // Arrived before the writer had its answer: 0 ms.
        d.record(Receipt {
            listener: 1,
            appointment: b,
            at: t0 + ms(95),
        });
        assert_eq!(d.pending(), 0);
        let r = d.finish();
        assert_eq!((r.bookings, r.expected, r.delivered, r.missing), (2, 3, 3, 0));
        assert_eq!(r.before_ack, 1);
        assert_eq!(r.unmatched, 0);
        assert!((r.latency.max_ms - 30.0).abs() < 1e-9, "{:?}", r.latency);
        assert!((r.latency.p50_ms - 10.0).abs() < 1e-9, "{:?}", r.latency);
        assert!(r.latency.mean_ms > 13.0 && r.latency.mean_ms < 14.0, "{:?}", r.latency);
    }

    #[test]
    fn strays_and_repeats_are_unmatched_and_absentees_missing() {
        let t0 = Instant::now();
        let a = Uuid::new_v4();
        let bookings = [Booking {
            appointment: a,
            writer: 0,
            acked: t0,
        }];
        let mut d = Deliveries::new(&bookings, vec![0, 0, 1]);
        assert_eq!(d.pending(), 2, "listener 2 is in another group");
        let at = t0 + ms(5);
        d.record(Receipt {
            listener: 0,
            appointment: a,
            at,
        });
        d.record(Receipt {
            listener: 0,
            appointment: a,
            at,
        });
        d.record(Receipt {
            listener: 2,
            appointment: a,
            at,
        });
        d.record(Receipt {
            listener: 1,
            appointment: Uuid::new_v4(),
            at,
        });
        d.record(Receipt {
            listener: 9,
            appointment: a,
            at,
        });
        assert_eq!(d.pending(), 1);
        let r = d.finish();
        assert_eq!((r.delivered, r.missing, r.unmatched), (1, 1, 4));
        assert_eq!(r.latency.count, 1);
    }

    #[test]
    fn a_writer_without_listeners_owes_nothing() {
        let bookings = [Booking {
            appointment: Uuid::new_v4(),
            writer: 3,
            acked: Instant::now(),
        }];
        let d = Deliveries::new(&bookings, vec![0, 1]);
        assert_eq!(d.pending(), 0);
        assert_eq!(d.finish().bookings, 1);
    }
}
