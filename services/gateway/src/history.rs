//! Shared, paged reads of a board's recent history stream: concurrent resumes and gap
//! fills of one board read each page once and share its encoded frames.
//!
//! History is read in pages of [`PAGE`] seqs aligned on the seq (`1..=256`,
//! `257..=512`, …), on the broker's command connection (never the subscription
//! connection, whose replies Redis limits as pub/sub output). A page whose last seq is
//! present can no longer change but for trimming at its head, so it is kept for a few
//! seconds and served to every reader. A page that is still filling (the newest) is
//! shared only with readers that need nothing newer than the moment the read was
//! issued: each reader says from when on it receives the board's events live
//! (`not_before`), and everything published before a read was issued is in it.

use crate::hub::RoomEvent;
use crate::metrics::GatewayMetrics;
use kanban_protocol::events::EventEnvelope;
use kanban_protocol::redis_keys;
use kanban_redis::Connection;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::OnceCell;

/// Seqs per page: one XRANGE returns at most this many entries.
pub const PAGE: i64 = 256;

/// How long a read page is kept for later readers.
const KEEP: Duration = Duration::from_secs(5);

/// At most this many pages are kept (about 256 × 256 frames of a few hundred bytes).
const MAX_PAGES: usize = 256;

/// The page that holds `seq` (seqs start at 1).
pub fn page_of(seq: i64) -> i64 {
    (seq.max(1) - 1) / PAGE
}

/// The last seq of page `page`.
pub fn page_end(page: i64) -> i64 {
    (page + 1) * PAGE
}

/// Events of one page that history still holds, oldest first.
pub type Page = Arc<[RoomEvent]>;

/// A board and one of its pages.
type PageKey = (Arc<str>, i64);

struct Read {
    /// No later than the moment the XRANGE was sent.
    issued: Instant,
    result: OnceCell<Result<Page, String>>,
}

impl Read {
    /// The page is final: its last seq is in it.
    fn is_final(&self, page: i64) -> bool {
        matches!(self.result.get(), Some(Ok(events)) if events.last().is_some_and(|e| e.seq == page_end(page)))
    }
}

pub struct HistoryReader {
    conn: Connection,
    prefix: String,
    metrics: Arc<GatewayMetrics>,
    reads: Mutex<HashMap<PageKey, Arc<Read>>>,
}

impl HistoryReader {
    pub fn new(conn: Connection, prefix: String, metrics: Arc<GatewayMetrics>) -> Self {
        HistoryReader {
            conn,
            prefix,
            metrics,
            reads: Mutex::new(HashMap::new()),
        }
    }

    /// The events of `page` of `project` for a reader that receives the board's events
    /// live from `not_before` on: every event published before then is in the answer.
    pub async fn page(
        &self,
        project: &Arc<str>,
        page: i64,
        not_before: Instant,
    ) -> Result<Page, String> {
        // Two rounds at most: a read already running when the reader came may turn out
        // too old (and not final); the one issued after it cannot.
        for _ in 0..2 {
            let read = self.read_for(project, page, not_before);
            let mut issued_here = false;
            let result = read
                .result
                .get_or_init(|| {
                    issued_here = true;
                    self.xrange(project, page)
                })
                .await
                .clone();
            if read.issued >= not_before || read.is_final(page) {
                if !issued_here && result.is_ok() {
                    self.metrics.history_pages_shared_total.inc();
                }
                return result;
            }
        }
        self.xrange(project, page).await
    }

    /// The read a reader should wait for: the kept one when it is final or recent enough,
    /// or still running (it may turn out final); else a new one.
    fn read_for(&self, project: &Arc<str>, page: i64, not_before: Instant) -> Arc<Read> {
        let fresh = || {
            Arc::new(Read {
                issued: Instant::now(),
                result: OnceCell::new(),
            })
        };
        let mut reads = crate::locks::lock(
            &self.reads,
            "history reads",
            &self.metrics.poisoned_locks_total,
        );
        let now = Instant::now();
        if reads.len() >= MAX_PAGES {
            reads.retain(|_, read| now.duration_since(read.issued) < KEEP);
            if reads.len() >= MAX_PAGES {
                reads.clear();
            }
        }
        let key = (Arc::clone(project), page);
        if let Some(read) = reads.get(&key) {
            let usable = match read.result.get() {
                None => true,
                Some(Ok(_)) => {
                    now.duration_since(read.issued) < KEEP
                        && (read.issued >= not_before || read.is_final(page))
                }
                Some(Err(_)) => false,
            };
            if usable {
                return Arc::clone(read);
            }
        }
        let read = fresh();
        reads.insert(key, Arc::clone(&read));
        read
    }

    async fn xrange(&self, project: &str, page: i64) -> Result<Page, String> {
        self.metrics.history_reads_total.inc();
        let mut conn = self.conn.clone();
        let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
            .arg(redis_keys::history(&self.prefix, project))
            .arg(format!("{}-0", page * PAGE + 1))
            .arg(format!("{}-0", page_end(page)))
            .query_async(&mut conn)
            .await
            .map_err(|error| error.to_string())?;
        let mut events = Vec::with_capacity(reply.ids.len());
        for entry in reply.ids {
            let Some(raw) = entry.get::<String>("e") else {
                continue;
            };
            match serde_json::from_str::<EventEnvelope>(&raw) {
                Ok(envelope) => events.push(RoomEvent::from_envelope(envelope)),
                Err(error) => tracing::warn!(%error, "undecodable history entry"),
            }
        }
        Ok(events.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_aligned_on_the_seq() {
        assert_eq!(page_of(1), 0);
        assert_eq!(page_of(PAGE), 0);
        assert_eq!(page_of(PAGE + 1), 1);
        assert_eq!(
            page_of(0),
            0,
            "seq 0 (nothing seen) reads from the first page"
        );
        assert_eq!(page_end(0), PAGE);
        assert_eq!(page_end(page_of(1000)), 1024);
    }
}
