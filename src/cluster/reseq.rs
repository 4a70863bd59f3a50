//! Putting a partition's events back into the cluster's total order.
//!
//! Several instances ingest raw lines at once, so the events stream holds
//! their normalised events interleaved: an event of raw line 7 can be stored
//! after one of line 9. A partition worker reads two subjects (its partition's
//! and the control subject) and must apply both in raw-line order, exactly as
//! a single node reading the lines would.
//!
//! The ingest stage makes that possible with *watermarks*: an instance
//! acknowledges a raw line only after every event decoded from it is stored,
//! so once the raw stream's first unacknowledged sequence is `W`, every event
//! of a line below `W` is already in the events stream. Reading `W` and then
//! publishing a marker carrying it on every event subject places the marker
//! after all those events. A reader that has seen a marker `W` on a subject
//! has therefore received every event of that subject from lines below `W`;
//! once both of its subjects have passed `W`, it can apply everything below
//! `W` in position order. [`Resequencer`] is that logic, pure and synchronous.
//!
//! Events at or before the last applied position are dropped: they are
//! duplicates (a raw line republished after an ingesting instance died, or a
//! consumer redelivering).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::route::Position;

/// Which of a partition worker's two subjects a message came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Src {
    /// The control subject.
    Control = 0,
    /// The partition's own subject.
    Partition = 1,
}

/// What a snapshot keeps of a resequencer, to resume exactly where it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ReseqState {
    /// The last applied position (`None`: nothing applied yet).
    pub done: Option<Position>,
    /// Per subject (control, partition), the highest watermark among the
    /// markers before `resume`. (Not the highest seen: a marker read after an
    /// event that is still buffered vouches for that event's delivery, which a
    /// new owner must repeat by reading again from `resume`.)
    pub watermark: [u64; 2],
    /// Stream sequence to resume reading from per subject (control,
    /// partition): nothing before it is still needed.
    pub resume: [u64; 2],
}

/// Whether an offered event was kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offer {
    /// Buffered until its turn.
    Kept,
    /// Already applied or already buffered.
    Duplicate,
}

#[derive(Debug)]
struct Pending<T> {
    src: Src,
    seq: u64,
    item: T,
}

/// Buffers a partition's events until the watermarks say they can be applied
/// in position order.
#[derive(Debug)]
pub struct Resequencer<T> {
    pending: BTreeMap<Position, Pending<T>>,
    watermark: [u64; 2],
    /// Markers per subject not yet known to lie before the resume point:
    /// stream sequence -> watermark.
    markers: [BTreeMap<u64, u64>; 2],
    /// Highest watermark of the markers folded out of `markers`.
    floor: [u64; 2],
    /// Highest stream sequence delivered per subject.
    delivered: [u64; 2],
    /// Stream sequences of buffered events per subject, with how many
    /// buffered events each message still holds (a message carries a batch).
    buffered: [BTreeMap<u64, u32>; 2],
    done: Option<Position>,
}

impl<T> Resequencer<T> {
    /// A resequencer resuming from `state` (the default state starts from the
    /// beginning: sequence 1 on both subjects).
    pub fn new(state: ReseqState) -> Self {
        Resequencer {
            pending: BTreeMap::new(),
            watermark: state.watermark,
            markers: [BTreeMap::new(), BTreeMap::new()],
            floor: state.watermark,
            delivered: state.resume.map(|r| r.saturating_sub(1)),
            buffered: [BTreeMap::new(), BTreeMap::new()],
            done: state.done,
        }
    }

    /// An event at `pos`, delivered in stream sequence `seq` of `src` (one
    /// message may carry several events).
    pub fn offer(&mut self, src: Src, seq: u64, pos: Position, item: T) -> Offer {
        let s = src as usize;
        self.delivered[s] = self.delivered[s].max(seq);
        if self.done.is_some_and(|d| pos <= d) || self.pending.contains_key(&pos) {
            return Offer::Duplicate;
        }
        *self.buffered[s].entry(seq).or_default() += 1;
        self.pending.insert(pos, Pending { src, seq, item });
        Offer::Kept
    }

    /// A watermark marker `w`, delivered as stream sequence `seq` of `src`.
    pub fn watermark(&mut self, src: Src, seq: u64, w: u64) {
        let s = src as usize;
        self.delivered[s] = self.delivered[s].max(seq);
        self.watermark[s] = self.watermark[s].max(w);
        self.markers[s].insert(seq, w);
        if self.markers[s].len() > 64 {
            self.fold(s);
        }
    }

    /// The stream sequence of `s` a new owner would read again from.
    fn resume(&self, s: usize) -> u64 {
        self.buffered[s]
            .first_key_value()
            .map(|(seq, _)| *seq)
            .unwrap_or(self.delivered[s] + 1)
    }

    /// Folds the markers before the resume point into the floor. The resume
    /// point only moves forward (new events come after everything delivered),
    /// so what is folded stays before it.
    fn fold(&mut self, s: usize) {
        let resume = self.resume(s);
        let keep = self.markers[s].split_off(&resume);
        let before = std::mem::replace(&mut self.markers[s], keep);
        if let Some(w) = before.values().max() {
            self.floor[s] = self.floor[s].max(*w);
        }
    }

    /// Raw lines below this are complete on both subjects.
    pub fn bound(&self) -> u64 {
        self.watermark[0].min(self.watermark[1])
    }

    /// The next event to apply, if its turn has come.
    pub fn pop(&mut self) -> Option<(Position, T)> {
        let bound = self.bound();
        let entry = self.pending.first_entry()?;
        if entry.key().raw >= bound {
            return None;
        }
        let (pos, p) = entry.remove_entry();
        let held = &mut self.buffered[p.src as usize];
        if let Some(n) = held.get_mut(&p.seq) {
            *n -= 1;
            if *n == 0 {
                held.remove(&p.seq);
            }
        }
        self.done = Some(pos);
        Some((pos, p.item))
    }

    /// Events waiting for their turn.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// The last applied position.
    pub fn done(&self) -> Option<Position> {
        self.done
    }

    /// What to save: everything applied is covered by `done`; everything
    /// buffered is re-read from `resume`.
    pub fn state(&self) -> ReseqState {
        let resume = [0, 1].map(|s| self.resume(s));
        let watermark = [0, 1].map(|s| {
            self.markers[s]
                .range(..resume[s])
                .map(|(_, w)| *w)
                .fold(self.floor[s], u64::max)
        });
        ReseqState {
            done: self.done,
            watermark,
            resume,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::synth::Rng;

    /// One message of an event subject, as the events stream holds it: a
    /// batch of events, or a marker.
    #[derive(Debug, Clone)]
    enum Msg {
        Events(Vec<Position>),
        Marker(u64),
    }

    /// Simulates instances ingesting `lines` raw lines concurrently: each
    /// takes a batch, publishes its events (interleaved with the others'),
    /// then acknowledges the batch and publishes a marker with the first
    /// unacknowledged line. Returns the two subjects' messages with their
    /// stream sequences, and every event in position order.
    #[allow(clippy::type_complexity)]
    fn ingest(rng: &mut Rng, lines: u64) -> ([Vec<(u64, Msg)>; 2], Vec<(Src, Position)>) {
        let mut subjects: [Vec<(u64, Msg)>; 2] = [Vec::new(), Vec::new()];
        let mut all = Vec::new();
        let mut seq = 0u64;
        let mut next_line = 1u64;
        let mut acked = BTreeSet::new();
        // In-flight batches: (remaining events to publish, lines of the batch).
        let mut flight: Vec<(Vec<(Src, Position)>, Vec<u64>)> = Vec::new();
        while next_line <= lines || !flight.is_empty() {
            if next_line <= lines && (flight.len() < 3 && rng.chance(0.5) || flight.is_empty()) {
                let n = 1 + rng.below(4) as u64;
                let batch: Vec<u64> = (next_line..(next_line + n).min(lines + 1)).collect();
                next_line += batch.len() as u64;
                let mut evs = Vec::new();
                for &l in &batch {
                    for i in 0..rng.below(3) as u32 {
                        let src = if rng.chance(0.3) {
                            Src::Control
                        } else {
                            Src::Partition
                        };
                        evs.push((src, Position::new(l, i)));
                        all.push((src, Position::new(l, i)));
                    }
                }
                evs.reverse();
                flight.push((evs, batch));
                continue;
            }
            let k = rng.below(flight.len());
            if let Some((src, pos)) = flight[k].0.pop() {
                // A message carries up to four events of one subject, in order.
                let mut batch = vec![pos];
                let more = rng.below(4);
                while batch.len() <= more && flight[k].0.last().is_some_and(|(s, _)| *s == src) {
                    batch.push(flight[k].0.pop().expect("just seen").1);
                }
                seq += 1;
                subjects[src as usize].push((seq, Msg::Events(batch.clone())));
                if rng.chance(0.05) {
                    // The same events republished (a redelivery after a crash).
                    seq += 1;
                    subjects[src as usize].push((seq, Msg::Events(batch)));
                }
            } else {
                let (_, batch) = flight.swap_remove(k);
                acked.extend(batch);
                let mut w = 1;
                while acked.contains(&w) {
                    w += 1;
                }
                for s in &mut subjects {
                    seq += 1;
                    s.push((seq, Msg::Marker(w)));
                }
            }
        }
        all.sort_by_key(|(_, p)| *p);
        (subjects, all)
    }

    /// Reads both subjects from `from` in a random interleaving, stopping
    /// after `limit` messages; returns what was applied.
    fn read(
        rng: &mut Rng,
        r: &mut Resequencer<Src>,
        subjects: &[Vec<(u64, Msg)>; 2],
        from: [u64; 2],
        limit: usize,
    ) -> Vec<(Src, Position)> {
        let mut at = [0, 1].map(|s| subjects[s].partition_point(|(q, _)| *q < from[s]));
        let mut out = Vec::new();
        for _ in 0..limit {
            let live: Vec<usize> = (0..2).filter(|&s| at[s] < subjects[s].len()).collect();
            if live.is_empty() {
                break;
            }
            let s = live[rng.below(live.len())];
            let (seq, msg) = subjects[s][at[s]].clone();
            at[s] += 1;
            let src = if s == 0 { Src::Control } else { Src::Partition };
            match msg {
                Msg::Events(batch) => {
                    for pos in batch {
                        r.offer(src, seq, pos, src);
                    }
                }
                Msg::Marker(w) => r.watermark(src, seq, w),
            }
            while let Some((pos, src)) = r.pop() {
                out.push((src, pos));
            }
        }
        out
    }

    #[test]
    fn events_come_out_in_position_order_exactly_once() {
        for seed in 0..200 {
            let mut rng = Rng::new(seed);
            let (subjects, all) = ingest(&mut rng, 40);
            let mut r = Resequencer::new(ReseqState::default());
            let out = read(&mut rng, &mut r, &subjects, [1, 1], usize::MAX);
            assert_eq!(out, all, "seed {seed}");
            assert!(r.is_empty());
        }
    }

    #[test]
    fn restored_states_resume_without_loss_or_repeat() {
        for seed in 0..200 {
            let mut rng = Rng::new(1000 + seed);
            let (subjects, all) = ingest(&mut rng, 40);
            let total = subjects[0].len() + subjects[1].len();
            let mut r = Resequencer::new(ReseqState::default());
            let mut from = [1, 1];
            let mut out = Vec::new();
            // Up to three owners in turn, each stopping after a random number
            // of messages; each new owner starts from the last one's state
            // (its buffer is lost).
            for _ in 0..3 {
                let cut = rng.below(total / 2 + 1);
                out.extend(read(&mut rng, &mut r, &subjects, from, cut));
                let state = r.state();
                from = state.resume;
                r = Resequencer::new(state);
            }
            out.extend(read(&mut rng, &mut r, &subjects, from, usize::MAX));
            assert_eq!(out, all, "seed {seed}");
        }
    }

    #[test]
    fn nothing_is_applied_before_both_subjects_pass_the_watermark() {
        let mut r = Resequencer::new(ReseqState::default());
        assert_eq!(
            r.offer(Src::Partition, 1, Position::new(2, 0), "b"),
            Offer::Kept
        );
        assert_eq!(
            r.offer(Src::Control, 1, Position::new(1, 0), "a"),
            Offer::Kept
        );
        r.watermark(Src::Partition, 2, 3);
        assert!(r.pop().is_none(), "control has not passed line 3 yet");
        r.watermark(Src::Control, 2, 2);
        assert_eq!(r.pop(), Some((Position::new(1, 0), "a")));
        assert!(r.pop().is_none(), "line 2 is not complete on control");
        r.watermark(Src::Control, 3, 3);
        assert_eq!(r.pop(), Some((Position::new(2, 0), "b")));
        assert_eq!(
            r.offer(Src::Partition, 4, Position::new(2, 0), "b"),
            Offer::Duplicate
        );
        assert_eq!(
            r.state(),
            ReseqState {
                done: Some(Position::new(2, 0)),
                watermark: [3, 3],
                resume: [4, 5],
            }
        );
    }
}
