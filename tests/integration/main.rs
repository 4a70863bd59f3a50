//! Integration tests: the real `reachguard` binary, real files, real sockets on
//! 127.0.0.1, real signals. One test binary; shared helpers in `helpers`.

mod helpers;

mod hostile;

mod agents;
mod cli;
mod cluster;
mod crash;
mod detection;
mod formats;
mod gate;
mod incident;
mod layouts;
mod page;
mod prometheus;
mod response;
mod rotation;
mod security;
mod undo;
