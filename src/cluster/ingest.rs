//! Shared ingestion: raw lines in, normalised events out, decoded once.
//!
//! Every instance pulls from the one durable consumer of the raw stream (a
//! work queue: each line goes to one instance). A raw message is one line, or
//! several separated by newlines; its format and source come from the subject
//! (`<prefix>.raw.<format>.<source>`) or from the `Reachguard-Format` and
//! `Reachguard-Source` headers. The events decoded from a batch are
//! republished in the compact encoding of [`super::wire`], grouped into
//! one message per subject (their partition's, or the control subject: see
//! [`route`]), with each event's position (raw sequence and index) in the
//! `Reachguard-Positions` header. A line republished after a crash carries the
//! same positions and is dropped as a duplicate (by JetStream when it lands in
//! an identical message, by the partition workers otherwise). The raw
//! messages are acknowledged only after every event of the batch is stored.
//!
//! After a batch the instance reads the raw stream's first unacknowledged
//! sequence and, when it moved, publishes it as a watermark marker on every
//! event subject; [`super::reseq`] explains why that orders everything.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::AckKind;
use async_nats::jetstream::consumer::{Consumer, pull};
use async_nats::jetstream::message::PublishMessage;
use futures_util::StreamExt;
use tokio::sync::watch;

use super::headers;
use super::partition::Shared;
use super::route::{self, Position, Route};
use super::wire;
use crate::decode::{Decoder, Format};
use crate::event::{EventRef, Events};

/// Distinct `source` label values before the rest are counted as `other`.
const MAX_SOURCE_LABELS: usize = 64;
/// How long an idle ingest loop waits before asking for lines again.
const IDLE_WAIT: Duration = Duration::from_millis(50);
/// How often the watermark is checked when this loop took no lines.
const MARK_ANYWAY: Duration = Duration::from_millis(500);
/// How long a fetch's reply may take.
const FETCH_REPLY: Duration = Duration::from_secs(5);
/// Most events in one normalised message.
const MAX_EVENTS_PER_MESSAGE: usize = 512;
/// About the largest normalised message (NATS' default limit is 1 MiB).
const MAX_MESSAGE_BYTES: usize = 256 * 1024;

/// The ingest task of an instance.
pub struct Ingest {
    shared: Arc<Shared>,
    decoders: HashMap<Format, Box<dyn Decoder>>,
    sources: HashSet<String>,
    errors_logged: u64,
    last_marker: u64,
    scratch: Events,
}

impl Ingest {
    /// An ingest stage over the shared instance state.
    pub fn new(shared: Arc<Shared>) -> Ingest {
        Ingest {
            shared,
            decoders: HashMap::new(),
            sources: HashSet::new(),
            errors_logged: 0,
            last_marker: 0,
            scratch: crate::event::Events::default(),
        }
    }

    /// Pulls, decodes and republishes until `stop`.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) -> Result<(), String> {
        let consumer = self
            .shared
            .jet
            .ingest_consumer(&self.shared.cluster)
            .await
            .map_err(|e| e.to_string())?;
        let batch = self.shared.cluster.ingest_batch;
        let mut last_check = tokio::time::Instant::now();
        while !*stop.borrow() {
            let taken = tokio::select! {
                _ = stop.changed() => break,
                taken = take(&consumer, batch) => taken,
            };
            let took_some = matches!(&taken, Ok(m) if !m.is_empty());
            match taken {
                Ok(msgs) if !msgs.is_empty() => {
                    let t0 = std::time::Instant::now();
                    let n = msgs.len();
                    let first = msgs
                        .first()
                        .and_then(|m| m.info().ok().map(|i| i.stream_sequence));
                    self.process(msgs).await;
                    tracing::debug!(n, ?first, took = ?t0.elapsed(), "ingest batch");
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "pulling raw lines failed; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
            // After this loop's own acks, and now and then in any case (an
            // instance whose marker was lost must not hold everyone back).
            if took_some || last_check.elapsed() >= MARK_ANYWAY {
                last_check = tokio::time::Instant::now();
                if let Err(e) = self.mark().await {
                    tracing::warn!(error = %e, "cannot publish the watermark");
                }
            }
        }
        Ok(())
    }

    /// Publishes the raw stream's first unacknowledged sequence on every
    /// event subject when it moved.
    async fn mark(&mut self) -> Result<(), String> {
        let jet = &self.shared.jet;
        let w = jet.raw_watermark().await.map_err(|e| e.to_string())?;
        if w <= self.last_marker {
            return Ok(());
        }
        let mut h = HeaderMap::new();
        h.insert(headers::WATERMARK, w.to_string().as_str());
        let subjects = std::iter::once(jet.names.control())
            .chain((0..self.shared.cluster.partitions).map(|p| jet.names.partition(p)));
        for s in subjects {
            jet.client
                .publish_with_headers(s, h.clone(), Vec::new().into())
                .await
                .map_err(|e| e.to_string())?;
        }
        self.last_marker = w;
        Ok(())
    }

    fn source_label(&mut self, source: &str) -> String {
        if self.sources.contains(source) {
            source.to_owned()
        } else if self.sources.len() < MAX_SOURCE_LABELS {
            self.sources.insert(source.to_owned());
            source.to_owned()
        } else {
            "other".into()
        }
    }

    fn decode_error(&mut self, label: &str, at: &str, error: &dyn std::fmt::Display) {
        self.shared
            .metrics
            .decode_errors
            .with_label_values(&[label])
            .inc();
        self.errors_logged += 1;
        if self.errors_logged <= 100 || self.errors_logged % 1000 == 0 {
            tracing::warn!(source = %label, at, error = %error, "line skipped: cannot decode");
        }
    }

    /// Decodes and republishes a batch, then acknowledges it.
    async fn process(&mut self, msgs: Vec<async_nats::jetstream::Message>) {
        let shared = Arc::clone(&self.shared);
        let names = &shared.jet.names;
        let partitions = shared.cluster.partitions;
        let read_ms = chrono::Utc::now().timestamp_millis().to_string();
        // Events grouped by subject (and trust), each group in position order.
        let mut groups: BTreeMap<(String, bool), Group> = BTreeMap::new();
        for m in &msgs {
            let raw = match m.info() {
                Ok(i) => {
                    if i.delivered > 1 {
                        tracing::debug!(
                            raw = i.stream_sequence,
                            delivered = i.delivered,
                            "raw line redelivered"
                        );
                    }
                    i.stream_sequence
                }
                Err(e) => {
                    tracing::warn!(error = %e, "raw message without JetStream metadata");
                    continue;
                }
            };
            let header = |n: &str| {
                m.headers
                    .as_ref()
                    .and_then(|h| h.get(n))
                    .map(|v| v.as_str().to_owned())
            };
            let (fmt_tok, src_tok) = names.parse_raw(m.subject.as_str()).unwrap_or(("", ""));
            let fmt_name = header(headers::FORMAT).unwrap_or_else(|| fmt_tok.to_owned());
            let source = header(headers::SOURCE).unwrap_or_else(|| src_tok.to_owned());
            let label = self.source_label(&source);
            let untrusted = shared.cluster.untrusted_sources.contains(&source);
            let format = match Format::from_str(&fmt_name) {
                Ok(f) => f,
                Err(e) => {
                    shared.metrics.lines.with_label_values(&[&label]).inc();
                    self.decode_error(&label, &format!("{}#{raw}", m.subject), &e);
                    continue;
                }
            };
            let mut idx = 0u32;
            let payload = m.payload.strip_suffix(b"\n").unwrap_or(&m.payload);
            for (n, line) in payload.split(|b| *b == b'\n').enumerate() {
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                shared.metrics.lines.with_label_values(&[&label]).inc();
                let decoder = self
                    .decoders
                    .entry(format)
                    .or_insert_with(|| format.decoder());
                let mut out = std::mem::take(&mut self.scratch);
                out.clear();
                if let Err(e) = decoder.decode(line, &mut out) {
                    self.scratch = out;
                    self.decode_error(&label, &format!("{}#{raw}:{}", m.subject, n + 1), &e);
                    continue;
                }
                if out.is_empty() {
                    shared.metrics.skipped.with_label_values(&[&label]).inc();
                }
                for ev in out.iter() {
                    let subject = match route::route(ev, partitions) {
                        Route::Partition(p) => names.partition(p),
                        Route::Control => names.control(),
                    };
                    groups
                        .entry((subject, untrusted))
                        .or_default()
                        .push(Position::new(raw, idx), ev);
                    idx += 1;
                }
                self.scratch = out;
            }
        }
        let mut acks = Vec::new();
        let mut failed = None;
        'groups: for ((subject, untrusted), group) in groups {
            for chunk in group.chunks() {
                let first = chunk.positions.first().expect("chunks are not empty");
                let last = chunk.positions.last().expect("chunks are not empty");
                let positions = chunk
                    .positions
                    .iter()
                    .map(Position::to_string)
                    .collect::<Vec<_>>()
                    .join(",");
                // The same lines republished in the same batch get the same id
                // and are dropped by JetStream; in another batch they are
                // dropped by position by the partition workers.
                let mut msg = PublishMessage::build()
                    .payload(chunk.payload.into())
                    .message_id(format!("{subject}@{first}-{last}"))
                    .header(headers::POSITIONS, positions.as_str())
                    .header(headers::READ_MS, read_ms.as_str());
                if untrusted {
                    msg = msg.header(headers::UNTRUSTED, "1");
                }
                match shared.jet.js.send_publish(subject.clone(), msg).await {
                    Ok(ack) => acks.push(ack),
                    Err(e) => {
                        failed = Some(e.to_string());
                        break 'groups;
                    }
                }
            }
        }
        for ack in acks {
            if let Err(e) = ack.await {
                failed.get_or_insert(e.to_string());
            }
        }
        if let Some(e) = failed {
            // Nothing of this batch is acknowledged: JetStream gives every line
            // out again and the events already stored are dropped as duplicates.
            tracing::warn!(error = %e, lines = msgs.len(), "republishing failed; the batch is retried");
            for m in &msgs {
                let _ = m
                    .ack_with(AckKind::Nak(Some(Duration::from_millis(500))))
                    .await;
            }
            return;
        }
        let Some((last, rest)) = msgs.split_last() else {
            return;
        };
        for m in rest {
            if let Err(e) = m.ack().await {
                tracing::warn!(error = %e, "raw ack failed; the line will be redelivered");
            }
        }
        // Acks are applied in order: once the last is confirmed, all are, and
        // the watermark read next accounts for them.
        if let Err(e) = last.double_ack().await {
            tracing::warn!(error = %e, "raw ack failed; the line will be redelivered");
        }
    }
}

/// The events of a batch bound for one subject: their positions, and their
/// frames one after the other (`ends[i]` is where the `i`-th ends).
#[derive(Default)]
struct Group {
    positions: Vec<Position>,
    frames: Vec<u8>,
    ends: Vec<usize>,
}

/// One message's worth of a group: event frames and their positions.
struct Chunk {
    positions: Vec<Position>,
    payload: Vec<u8>,
}

impl Group {
    fn push(&mut self, pos: Position, ev: EventRef<'_>) {
        self.positions.push(pos);
        wire::encode(ev, &mut self.frames);
        self.ends.push(self.frames.len());
    }

    /// Splits the group into messages of at most [`MAX_EVENTS_PER_MESSAGE`]
    /// events and about [`MAX_MESSAGE_BYTES`].
    fn chunks(self) -> Vec<Chunk> {
        let mut out: Vec<Chunk> = Vec::new();
        let mut cur = Chunk {
            positions: Vec::new(),
            payload: Vec::new(),
        };
        let mut start = 0;
        for (pos, end) in self.positions.into_iter().zip(self.ends) {
            let frame = &self.frames[start..end];
            start = end;
            if !cur.positions.is_empty()
                && (cur.positions.len() >= MAX_EVENTS_PER_MESSAGE
                    || cur.payload.len() + frame.len() > MAX_MESSAGE_BYTES)
            {
                out.push(std::mem::replace(
                    &mut cur,
                    Chunk {
                        positions: Vec::new(),
                        payload: Vec::new(),
                    },
                ));
            }
            cur.payload.extend_from_slice(frame);
            cur.positions.push(pos);
        }
        if !cur.positions.is_empty() {
            out.push(cur);
        }
        out
    }
}

/// Takes up to `n` raw messages that are available now (none: waits
/// [`IDLE_WAIT`] and returns nothing).
///
/// A no-wait fetch, not a pull that waits on the server: nats-server 2.9 does
/// not end a waiting pull that got only part of its batch when it expires, so
/// the client would sit on those lines past their ack deadline.
async fn take(
    consumer: &Consumer<pull::Config>,
    n: usize,
) -> Result<Vec<async_nats::jetstream::Message>, String> {
    let mut batch = consumer
        .fetch()
        .max_messages(n)
        .messages()
        .await
        .map_err(|e| e.to_string())?;
    let mut out = Vec::with_capacity(n);
    loop {
        // A bound on a reply that never comes; a no-wait fetch is not held by
        // the server, so nothing is delivered to it afterwards.
        match tokio::time::timeout(FETCH_REPLY, batch.next()).await {
            Ok(Some(Ok(m))) => out.push(m),
            Ok(Some(Err(e))) => {
                if out.is_empty() {
                    return Err(e.to_string());
                }
                tracing::warn!(error = %e, taken = out.len(), "fetch ended early");
                break;
            }
            Ok(None) => break,
            Err(_) => {
                tracing::warn!(taken = out.len(), "fetch reply timed out");
                break;
            }
        }
    }
    if out.is_empty() {
        tokio::time::sleep(IDLE_WAIT).await;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{Decoder, NativeDecoder};

    #[test]
    fn a_group_splits_into_messages_the_partitions_read_back() {
        let mut g = Group::default();
        let mut events = Vec::new();
        for i in 0..(MAX_EVENTS_PER_MESSAGE + 3) {
            let mut out = NativeDecoder
                .decode_owned(
                    format!(r#"{{"ts":"2026-03-18T09:00:00Z","type":"access","principal":"u{i}","resource":"r"}}"#)
                        .as_bytes(),
                )
                .unwrap();
            g.push(
                Position::new(7 + i as u64 / 2, i as u32 % 2),
                EventRef::from(&out[0]),
            );
            events.push(out.remove(0));
        }
        let chunks = g.chunks();
        assert_eq!(
            chunks.iter().map(|c| c.positions.len()).collect::<Vec<_>>(),
            [MAX_EVENTS_PER_MESSAGE, 3]
        );
        let mut back = Events::default();
        for c in &chunks {
            for frame in wire::frames(&c.payload) {
                wire::decode(frame.unwrap(), &mut back).unwrap();
            }
        }
        assert_eq!(back.to_vec(), events);
        assert_eq!(chunks[1].positions[0], Position::new(7 + 256, 0));
    }
}
