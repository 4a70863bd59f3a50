//! Sources: where lines come from.
//!
//! The first stage of the data flow. [`file`] follows files and globs like
//! `tail -F` (rotation by rename and copytruncate, partial lines held back) and
//! reports each complete line with its file identity and offset, plus the files
//! it opens and forgets. The pipeline acknowledges a line into [`Positions`]
//! once its effects are recorded, and every source's [`Cursor`] is saved with
//! the model under the source's stable id ([`cursor`], `state`). [`otlp`]
//! receives agent telemetry over OTLP/HTTP and OTLP/gRPC and hands each
//! request on as one line of the source `otlp`.

pub mod cursor;
pub mod file;
pub mod otlp;

pub use cursor::{Cursor, Cursors, Positions};

pub use file::{
    Checkpoints, FileKey, FilePosition, Line, PollStats, SourceSpec, StartAt, TailEvent, Tailer,
    run, run_events,
};
