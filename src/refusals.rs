//! Aggregated log lines for connections refused before their handshake: one line per source
//! and reason per `INTERVAL`, with a count, instead of one line per connection.
//!
//! A flood of connections must not become a flood of log lines (disk, and the operator's
//! attention). The first refusal of a source for a reason is logged at once (`count=1`), so
//! the start of a flood is seen without delay; the ones that follow within `INTERVAL` are
//! counted and logged in one line when the interval ends; a quiet interval ends the series.
//! Only the admission thread (`server`) uses this, so it needs no lock.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use crate::audit;

/// How often a source that keeps being refused gets a line.
pub const INTERVAL: Duration = Duration::from_secs(10);

/// Sources tracked at once; refusals of further sources are counted under 0.0.0.0 ("other
/// sources") so that many addresses cannot grow the table without bound.
const MAX_SOURCES: usize = 4096;
const OTHER_SOURCES: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);

/// Why a connection was closed before its handshake began.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    TooManyFromSource,
    TooManyInTotal,
    NothingSent,
    ClosedBeforeSending,
}

impl Reason {
    /// The reason as `metrics::handshake_refused` knows it (a prefix of its table).
    fn metric_reason(self) -> &'static str {
        match self {
            Reason::TooManyFromSource | Reason::TooManyInTotal => {
                crate::metrics::TOO_MANY_HANDSHAKES
            }
            Reason::NothingSent => crate::metrics::NO_CLIENT_HELLO,
            Reason::ClosedBeforeSending => crate::metrics::CLOSED_BEFORE_SENDING,
        }
    }

    fn describe(self) -> String {
        use crate::gate::{MAX_PENDING_HANDSHAKES, MAX_PENDING_PER_SOURCE};
        match self {
            Reason::TooManyFromSource => format!(
                "{MAX_PENDING_PER_SOURCE} connections from this source already waiting for their handshake"
            ),
            Reason::TooManyInTotal => {
                format!("{MAX_PENDING_HANDSHAKES} connections already waiting for their handshake")
            }
            Reason::NothingSent => format!(
                "no TLS ClientHello within {}s",
                crate::server::FIRST_BYTES_TIMEOUT.as_secs()
            ),
            Reason::ClosedBeforeSending => "closed before sending anything".into(),
        }
    }
}

struct Series {
    /// When the current interval began.
    since: Instant,
    /// Refusals in the current interval not logged yet.
    unlogged: u64,
}

#[derive(Default)]
pub struct Tally {
    series: HashMap<(IpAddr, Reason), Series>,
}

impl Tally {
    /// Counts one refused connection from `source`, logging it at once if it starts a series.
    pub fn record(&mut self, source: IpAddr, reason: Reason, now: Instant) {
        crate::metrics::handshake_refused(reason.metric_reason());
        let tracked =
            self.series.len() < MAX_SOURCES || self.series.contains_key(&(source, reason));
        let key = (if tracked { source } else { OTHER_SOURCES }, reason);
        match self.series.get_mut(&key) {
            Some(series) => series.unlogged += 1,
            None => {
                audit::handshakes_refused(key.0, &reason.describe(), 1);
                let series = Series {
                    since: now,
                    unlogged: 0,
                };
                self.series.insert(key, series);
            }
        }
    }

    /// Logs the series whose interval has ended, and forgets those that stayed quiet.
    pub fn flush(&mut self, now: Instant) {
        self.series.retain(|(source, reason), series| {
            if now.duration_since(series.since) < INTERVAL {
                return true;
            }
            if series.unlogged == 0 {
                return false;
            }
            audit::handshakes_refused(*source, &reason.describe(), series.unlogged);
            series.unlogged = 0;
            series.since = now;
            true
        });
    }

    /// When `flush` next has something to do.
    pub fn next_flush(&self) -> Option<Instant> {
        self.series.values().map(|s| s.since + INTERVAL).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn unlogged(tally: &Tally, source: &str, reason: Reason) -> Option<u64> {
        tally.series.get(&(ip(source), reason)).map(|s| s.unlogged)
    }

    #[test]
    fn a_series_counts_until_its_interval_ends_and_stops_when_quiet() {
        let start = Instant::now();
        let mut tally = Tally::default();
        tally.record(ip("192.0.2.1"), Reason::NothingSent, start);
        assert_eq!(unlogged(&tally, "192.0.2.1", Reason::NothingSent), Some(0));
        for _ in 0..5 {
            tally.record(ip("192.0.2.1"), Reason::NothingSent, start);
        }
        tally.record(ip("192.0.2.1"), Reason::TooManyFromSource, start);
        assert_eq!(unlogged(&tally, "192.0.2.1", Reason::NothingSent), Some(5));
        assert_eq!(tally.next_flush(), Some(start + INTERVAL));

        tally.flush(start + INTERVAL / 2);
        assert_eq!(unlogged(&tally, "192.0.2.1", Reason::NothingSent), Some(5));
        tally.flush(start + INTERVAL);
        assert_eq!(unlogged(&tally, "192.0.2.1", Reason::NothingSent), Some(0));
        // The series with nothing new since its first line is over.
        assert_eq!(
            unlogged(&tally, "192.0.2.1", Reason::TooManyFromSource),
            None
        );
        tally.flush(start + INTERVAL * 2);
        assert_eq!(unlogged(&tally, "192.0.2.1", Reason::NothingSent), None);
        assert_eq!(tally.next_flush(), None);
    }

    #[test]
    fn sources_beyond_the_table_are_counted_together() {
        let now = Instant::now();
        let mut tally = Tally::default();
        for n in 0..MAX_SOURCES as u32 + 10 {
            let source = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + n));
            tally.record(source, Reason::NothingSent, now);
        }
        assert_eq!(tally.series.len(), MAX_SOURCES + 1);
        assert_eq!(unlogged(&tally, "0.0.0.0", Reason::NothingSent), Some(9));
    }
}
