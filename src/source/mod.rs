//! Sources: where lines come from.
//!
//! The first stage of the data flow. [`file`] follows files and globs like
//! `tail -F` (rotation by rename and copytruncate, partial lines held back) and
//! reports each complete line with its file identity and offset, plus the files
//! it opens and forgets. The pipeline acknowledges a line into [`Checkpoints`]
//! once its effects are recorded, and the checkpoint is saved with the model
//! (see `state`). [`otlp`] receives agent telemetry over OTLP/HTTP and
//! OTLP/gRPC and hands each request on as one line of the source `otlp`.

pub mod file;
pub mod otlp;

pub use file::{
    Checkpoints, FileKey, FilePosition, Line, PollStats, SourceSpec, StartAt, TailEvent, Tailer,
    run, run_events,
};
