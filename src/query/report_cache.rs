//! A report over a long range reads mostly facts that can no longer change: counted
//! events, responses and message tallies are written once, at the instant they are
//! about (the writer's clock), and never changed. So the timeline of each finished UTC
//! day is read from the store once and kept here; a report reads from the store only
//! its conversations (which do change: status, team, assignee, satisfaction), the SLA
//! clocks met (a reopened conversation's resolution clock runs again) and the timeline
//! of the parts of its range no kept day covers. A year's report then reads about
//! 100,000 rows instead of 700,000 for the scale desk (BENCHMARKS.md).
//!
//! A day is kept only once it ended [`SETTLE_MS`] ago, by the daemon's clock: another
//! daemon's clock may lag, and a transaction commits a little after its `now`. Erasure
//! keeps a conversation's facts (it empties texts), and the facts of a conversation
//! that is gone drop out with it, since every fact is joined to its conversation as
//! read now. Kept days are bounded by [`MAX_FACTS`], the least recently read leaving
//! first.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rustc_hash::FxHashSet;

use super::Visibility;
use super::reports::{ClockMetFact, Grouping, ReportConversation, ReportFacts, ReportRequest, StoredFacts, Timeline};
use crate::store::StoreResult;

/// What reports read from the store.
#[async_trait]
pub trait ReportSource: Send + Sync {
    /// The timeline of `[from, to)`, of every conversation.
    async fn report_timeline(&self, from: i64, to: i64) -> StoreResult<Timeline>;
    /// See [`ReportRequest`].
    async fn report_facts(&self, request: &ReportRequest) -> StoreResult<StoredFacts>;
    /// These conversations as reports read them (those that exist), with the grouping's value.
    async fn report_conversations(
        &self,
        grouping: Option<Grouping>,
        ids: &[i64],
    ) -> StoreResult<Vec<ReportConversation>>;
}

const DAY_MS: i64 = 86_400_000;

/// How long after its end a day's timeline is taken as final.
pub const SETTLE_MS: i64 = 3_600_000;

/// The most facts kept: about 35 bytes each, so some 270 MiB at most; a year of the
/// scale desk (1,000,000 messages) is about 600,000.
pub const MAX_FACTS: usize = 8_000_000;

/// How many days before today [`ReportCache::warm`] reads: the longest report's range.
const WARM_DAYS: i64 = 367;

struct Kept {
    timeline: Arc<Timeline>,
    last_read: u64,
}

#[derive(Default)]
struct Days {
    by_day: BTreeMap<i64, Kept>,
    facts: usize,
    reads: u64,
}

impl Days {
    /// The kept days of `[first, end)`, marked as read; `None` for each one not kept.
    fn take(&mut self, first: i64, end: i64) -> Vec<Option<Arc<Timeline>>> {
        self.reads += 1;
        let stamp = self.reads;
        (first..end)
            .map(|day| {
                self.by_day.get_mut(&day).map(|kept| {
                    kept.last_read = stamp;
                    Arc::clone(&kept.timeline)
                })
            })
            .collect()
    }

    fn keep(&mut self, day: i64, timeline: Arc<Timeline>, limit: usize) {
        self.facts += timeline.len();
        if let Some(old) = self.by_day.insert(
            day,
            Kept {
                timeline,
                last_read: self.reads,
            },
        ) {
            self.facts -= old.timeline.len();
        }
        while self.facts > limit {
            let Some((&oldest, _)) = self.by_day.iter().min_by_key(|(_, kept)| kept.last_read) else {
                break;
            };
            if let Some(gone) = self.by_day.remove(&oldest) {
                self.facts -= gone.timeline.len();
            }
        }
    }
}

impl Default for ReportCache {
    fn default() -> ReportCache {
        ReportCache::new()
    }
}

/// The finished days' timelines, kept between reports (one per daemon).
pub struct ReportCache {
    days: Mutex<Days>,
    /// The most facts kept.
    limit: usize,
    /// Held while days are read from the store, so reports asking at once read them once.
    filling: tokio::sync::Mutex<()>,
}

/// The days wholly inside `[from, to)` that ended [`SETTLE_MS`] before `now`, as day
/// numbers `[first, end)` (empty when `first >= end`).
fn settled_days(from: i64, to: i64, now: i64) -> (i64, i64) {
    let first = from.div_euclid(DAY_MS) + i64::from(from.rem_euclid(DAY_MS) != 0);
    let end = to.div_euclid(DAY_MS).min((now - SETTLE_MS).div_euclid(DAY_MS));
    (first, end)
}

/// Cuts `timeline` (of the days from `first`) into one timeline per day, by each
/// fact's instant.
fn by_day(timeline: Timeline, first: i64, days: usize) -> Vec<Timeline> {
    let mut parts: Vec<(Vec<_>, Vec<_>, Vec<_>)> = (0..days).map(|_| Default::default()).collect();
    let part = |at: i64| {
        usize::try_from(at.div_euclid(DAY_MS) - first)
            .ok()
            .filter(|i| *i < days)
    };
    for fact in timeline.events {
        if let Some(i) = part(fact.at) {
            parts[i].0.push(fact);
        }
    }
    for fact in timeline.responses {
        if let Some(i) = part(fact.answered_at) {
            parts[i].1.push(fact);
        }
    }
    for fact in timeline.tallies {
        if let Some(i) = part(fact.at) {
            parts[i].2.push(fact);
        }
    }
    parts
        .into_iter()
        .map(|(events, responses, tallies)| Timeline::new(events, responses, tallies))
        .collect()
}

impl ReportCache {
    pub fn new() -> ReportCache {
        ReportCache::keeping(MAX_FACTS)
    }

    /// One that keeps at most `limit` facts.
    pub fn keeping(limit: usize) -> ReportCache {
        ReportCache {
            days: Mutex::default(),
            limit,
            filling: tokio::sync::Mutex::new(()),
        }
    }

    /// How many facts are kept now.
    pub fn kept_facts(&self) -> usize {
        self.days.lock().map(|days| days.facts).unwrap_or_default()
    }

    /// The timelines of days `[first, end)`, reading from the store those not kept.
    async fn days(&self, source: &dyn ReportSource, first: i64, end: i64) -> StoreResult<Vec<Arc<Timeline>>> {
        if first >= end {
            return Ok(Vec::new());
        }
        let kept = self.lock().take(first, end);
        if kept.iter().all(Option::is_some) {
            return Ok(kept.into_iter().flatten().collect());
        }
        let _filling = self.filling.lock().await;
        // Another report may have read them while this one waited.
        let kept = self.lock().take(first, end);
        let mut timelines: Vec<Option<Arc<Timeline>>> = kept;
        let mut day = first;
        while day < end {
            if timelines[(day - first) as usize].is_some() {
                day += 1;
                continue;
            }
            // A run of days not kept is read at once.
            let run_end = (day..end)
                .find(|later| timelines[(later - first) as usize].is_some())
                .unwrap_or(end);
            let read = source.report_timeline(day * DAY_MS, run_end * DAY_MS).await?;
            let days = (run_end - day) as usize;
            let mut kept = self.lock();
            for (offset, timeline) in by_day(read, day, days).into_iter().enumerate() {
                let timeline = Arc::new(timeline);
                kept.keep(day + offset as i64, Arc::clone(&timeline), self.limit);
                timelines[(day - first) as usize + offset] = Some(timeline);
            }
            day = run_end;
        }
        Ok(timelines.into_iter().flatten().collect())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Days> {
        // A panic while holding it leaves whole entries only: insertions and removals.
        self.days.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Reads the settled days of the longest report's range before `now`, so the first
    /// report after a start does not wait for them. Returns how many facts are kept.
    pub async fn warm(&self, source: &dyn ReportSource, now: i64) -> StoreResult<usize> {
        let (first, end) = settled_days(now - WARM_DAYS * DAY_MS, now, now);
        self.days(source, first, end).await?;
        Ok(self.kept_facts())
    }

    /// The facts of a report of `[from, to)` that `reader` may see.
    pub async fn facts(
        &self,
        source: &dyn ReportSource,
        from: i64,
        to: i64,
        grouping: Option<Grouping>,
        reader: &Visibility,
        now: i64,
    ) -> StoreResult<ReportFacts> {
        let (first, end) = settled_days(from, to, now);
        let (pieces, timeline) = if first < end {
            let pieces = self.days(source, first, end).await?;
            let around = [(from, first * DAY_MS), (end * DAY_MS, to)];
            (pieces, around.into_iter().filter(|(start, end)| start < end).collect())
        } else {
            (Vec::new(), vec![(from, to)])
        };
        let stored = source
            .report_facts(&ReportRequest {
                from,
                to,
                grouping,
                timeline,
            })
            .await?;
        let mut read: FxHashSet<i64> = stored.conversations.iter().map(|row| row.fact.id).collect();
        let mut missing: Vec<i64> = pieces
            .iter()
            .flat_map(|piece| piece.conversations().iter().copied())
            .filter(|id| !read.contains(id))
            .collect::<FxHashSet<i64>>()
            .into_iter()
            .collect();
        missing.sort_unstable();
        let more = if missing.is_empty() {
            Vec::new()
        } else {
            source.report_conversations(grouping, &missing).await?
        };
        read.extend(more.iter().map(|row| row.fact.id));
        Ok(finish(stored, more, read, pieces, reader))
    }
}

/// The facts with their conversations, of what the reader may see only.
/// `visible`: the ids of the conversations read, of which those the reader may not see
/// are dropped here.
fn finish(
    stored: StoredFacts,
    more: Vec<ReportConversation>,
    mut visible: FxHashSet<i64>,
    pieces: Vec<Arc<Timeline>>,
    reader: &Visibility,
) -> ReportFacts {
    let mut rows: Vec<ReportConversation> = stored.conversations;
    rows.extend(more);
    rows.retain(|row| {
        let allowed = reader.allows(row.fact.team.as_deref(), row.assignee_id);
        if !allowed {
            visible.remove(&row.fact.id);
        }
        allowed
    });
    // The store reads them about in id order, which makes this sort cheap.
    rows.sort_unstable_by_key(|row| row.fact.id);
    rows.dedup_by_key(|row| row.fact.id);
    let seen = |id: i64| visible.contains(&id);
    // A kept day is shared as it is when the reader sees all its conversations.
    let mut timeline: Vec<Arc<Timeline>> = pieces
        .into_iter()
        .map(|piece| {
            if piece.conversations().iter().all(|id| seen(*id)) {
                piece
            } else {
                Arc::new(piece.only(seen))
            }
        })
        .collect();
    if !stored.timeline.is_empty() {
        timeline.push(Arc::new(stored.timeline.only(seen)));
    }
    let clocks_met: Vec<ClockMetFact> = stored
        .clocks_met
        .into_iter()
        .filter(|fact| seen(fact.conversation_id))
        .collect();
    ReportFacts {
        conversations: rows.into_iter().map(|row| row.fact).collect(),
        timeline,
        clocks_met,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::reports::{ConversationFact, EventFact, EventKind, ResponseFact, TallyFact};

    const HOUR: i64 = 3_600_000;

    /// A store of a few conversations and their facts, counting the timeline it reads.
    #[derive(Default)]
    struct Desk {
        conversations: Vec<ReportConversation>,
        events: Vec<EventFact>,
        responses: Vec<ResponseFact>,
        tallies: Vec<TallyFact>,
        timeline_reads: Mutex<Vec<(i64, i64)>>,
    }

    impl Desk {
        fn timeline(&self, from: i64, to: i64) -> Timeline {
            let inside = |at: i64| from <= at && at < to;
            Timeline::new(
                self.events.iter().filter(|fact| inside(fact.at)).cloned().collect(),
                self.responses
                    .iter()
                    .filter(|fact| inside(fact.answered_at))
                    .cloned()
                    .collect(),
                self.tallies.iter().filter(|fact| inside(fact.at)).cloned().collect(),
            )
        }

        fn reads(&self) -> Vec<(i64, i64)> {
            std::mem::take(&mut *self.timeline_reads.lock().unwrap())
        }
    }

    #[async_trait]
    impl ReportSource for Desk {
        async fn report_timeline(&self, from: i64, to: i64) -> StoreResult<Timeline> {
            self.timeline_reads.lock().unwrap().push((from, to));
            Ok(self.timeline(from, to))
        }

        async fn report_facts(&self, request: &ReportRequest) -> StoreResult<StoredFacts> {
            let timeline = Timeline::join(
                request
                    .timeline
                    .iter()
                    .map(|(from, to)| self.timeline(*from, *to))
                    .collect(),
            );
            let conversations = self
                .conversations
                .iter()
                .filter(|row| {
                    let own = request.from <= row.fact.created_at && row.fact.created_at < request.to;
                    own || timeline.conversations().contains(&row.fact.id)
                })
                .cloned()
                .collect();
            Ok(StoredFacts {
                conversations,
                timeline,
                clocks_met: Vec::new(),
            })
        }

        async fn report_conversations(
            &self,
            _grouping: Option<Grouping>,
            ids: &[i64],
        ) -> StoreResult<Vec<ReportConversation>> {
            Ok(self
                .conversations
                .iter()
                .filter(|row| ids.contains(&row.fact.id))
                .cloned()
                .collect())
        }
    }

    fn conversation(id: i64, team: &str, created_at: i64) -> ReportConversation {
        ReportConversation {
            fact: ConversationFact::opened(id, team, created_at),
            assignee_id: None,
        }
    }

    /// Conversation `id` of `team` opened at `at`, with a message then, a reply an hour
    /// later and its resolution two hours later.
    fn converse(desk: &mut Desk, id: i64, team: &str, at: i64) {
        desk.conversations.push(conversation(id, team, at));
        desk.tallies.push(TallyFact {
            conversation_id: id,
            at: at.div_euclid(SLOT_MS_FOR_TESTS) * SLOT_MS_FOR_TESTS,
            counts: [1, 0, 0, 0],
        });
        desk.responses.push(ResponseFact {
            conversation_id: id,
            waited_from: at,
            answered_at: at + HOUR,
            first: true,
            sla_breached: None,
        });
        desk.events.push(EventFact {
            conversation_id: id,
            at: at + 2 * HOUR,
            kind: EventKind::Resolved,
        });
    }

    const SLOT_MS_FOR_TESTS: i64 = crate::query::reports::SLOT_MS;

    /// Facts as (conversation, instant), sorted.
    type Instants = Vec<(i64, i64)>;

    /// Every fact of a report (conversations, events, responses, tallies), comparable
    /// whatever pieces it came in.
    fn flat(facts: &ReportFacts) -> (Vec<i64>, Instants, Instants, Instants) {
        let mut events: Vec<(i64, i64)> = facts.events().map(|fact| (fact.conversation_id, fact.at)).collect();
        let mut responses: Vec<(i64, i64)> = facts
            .responses()
            .map(|fact| (fact.conversation_id, fact.answered_at))
            .collect();
        let mut tallies: Vec<(i64, i64)> = facts.tallies().map(|fact| (fact.conversation_id, fact.at)).collect();
        events.sort_unstable();
        responses.sort_unstable();
        tallies.sort_unstable();
        let ids = facts.conversations.iter().map(|fact| fact.id).collect();
        (ids, events, responses, tallies)
    }

    /// 2026-11-30 00:00 UTC, a day number's start.
    const MONDAY: i64 = 1_796_083_200_000;

    #[tokio::test]
    async fn finished_days_are_read_once_and_a_report_is_the_same_as_read_whole() {
        assert_eq!(MONDAY % DAY_MS, 0);
        let mut desk = Desk::default();
        // One conversation a day from Monday to Thursday at 22:30, so each one's reply
        // and resolution fall on the next day; one more opened before the range.
        for day in 0..4 {
            converse(
                &mut desk,
                day + 1,
                "support",
                MONDAY + day * DAY_MS + 22 * HOUR + HOUR / 2,
            );
        }
        converse(&mut desk, 9, "billing", MONDAY - 90 * 60_000);
        let cache = ReportCache::new();
        let (from, to) = (MONDAY - HOUR, MONDAY + 4 * DAY_MS + 5 * HOUR);
        // Thursday 02:00: Monday to Wednesday are over, Wednesday only just.
        let now = MONDAY + 3 * DAY_MS + 2 * HOUR;
        let facts = cache.facts(&desk, from, to, None, &Visibility::All, now).await.unwrap();
        assert_eq!(
            desk.reads(),
            [(MONDAY, MONDAY + 3 * DAY_MS)],
            "the three finished days, at once"
        );
        let whole = ReportCache::new()
            .facts(&desk, from, to, None, &Visibility::All, from)
            .await
            .unwrap();
        assert_eq!(flat(&facts), flat(&whole), "a report read with none of its days kept");
        assert_eq!(flat(&facts).0, [1, 2, 3, 4, 9], "9 by its reply and resolution");
        assert_eq!(flat(&facts).1.len(), 5);

        // A day is kept an hour after it ends: Thursday at 00:59 is too early for it.
        let later = cache
            .facts(&desk, from, to, None, &Visibility::All, MONDAY + 4 * DAY_MS + HOUR - 1)
            .await
            .unwrap();
        assert!(desk.reads().is_empty(), "the kept days are not read again");
        assert_eq!(flat(&later), flat(&whole));
        cache
            .facts(&desk, from, to, None, &Visibility::All, MONDAY + 4 * DAY_MS + HOUR)
            .await
            .unwrap();
        assert_eq!(
            desk.reads(),
            [(MONDAY + 3 * DAY_MS, MONDAY + 4 * DAY_MS)],
            "only Thursday"
        );
        // Three facts of each of 1 to 4 but 4's resolution on Friday, and 9's resolution.
        assert_eq!(cache.kept_facts(), 12);
    }

    #[tokio::test]
    async fn a_reader_gets_the_facts_of_what_they_may_see_and_a_conversation_gone_takes_its_facts() {
        let mut desk = Desk::default();
        converse(&mut desk, 1, "support", MONDAY + HOUR);
        converse(&mut desk, 2, "billing", MONDAY + HOUR);
        // Opened the week before, answered on Monday: read by id for its fact.
        converse(&mut desk, 3, "support", MONDAY - 7 * DAY_MS);
        desk.responses.push(ResponseFact {
            conversation_id: 3,
            waited_from: MONDAY,
            answered_at: MONDAY + 3 * HOUR,
            first: false,
            sla_breached: None,
        });
        let cache = ReportCache::new();
        let support = Visibility::Teams {
            agent_id: 7,
            teams: vec!["support".into()],
        };
        let (from, to, now) = (MONDAY, MONDAY + DAY_MS, MONDAY + 2 * DAY_MS);
        let facts = cache.facts(&desk, from, to, None, &support, now).await.unwrap();
        let (ids, events, responses, _) = flat(&facts);
        assert_eq!(ids, [1, 3]);
        assert_eq!(events, [(1, MONDAY + 3 * HOUR)]);
        assert_eq!(responses, [(1, MONDAY + 2 * HOUR), (3, MONDAY + 3 * HOUR)]);
        let everyone = cache.facts(&desk, from, to, None, &Visibility::All, now).await.unwrap();
        assert_eq!(
            flat(&everyone).0,
            [1, 2, 3],
            "the kept day is whole for a reader of all"
        );

        desk.conversations.retain(|row| row.fact.id != 1);
        let gone = cache.facts(&desk, from, to, None, &Visibility::All, now).await.unwrap();
        let (ids, events, _, tallies) = flat(&gone);
        assert_eq!(ids, [2, 3]);
        assert!(
            events.iter().chain(&tallies).all(|(id, _)| *id != 1),
            "{events:?} {tallies:?}"
        );
    }

    #[tokio::test]
    async fn the_least_recently_read_days_leave_first_beyond_the_limit() {
        let mut desk = Desk::default();
        for day in 0..3 {
            converse(&mut desk, day + 1, "support", MONDAY + day * DAY_MS);
        }
        // Each day holds three facts; room for two days.
        let cache = ReportCache::keeping(6);
        let now = MONDAY + 10 * DAY_MS;
        let report = async |from: i64| {
            cache
                .facts(&desk, from, from + DAY_MS, None, &Visibility::All, now)
                .await
                .unwrap()
        };
        report(MONDAY).await;
        report(MONDAY + DAY_MS).await;
        report(MONDAY).await;
        assert_eq!(desk.reads().len(), 2);
        report(MONDAY + 2 * DAY_MS).await;
        assert_eq!(cache.kept_facts(), 6);
        report(MONDAY).await;
        assert!(desk.reads().len() == 1, "Monday was read last and stayed");
        report(MONDAY + DAY_MS).await;
        assert_eq!(desk.reads(), [(MONDAY + DAY_MS, MONDAY + 2 * DAY_MS)], "Tuesday left");
    }
}
