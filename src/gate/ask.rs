//! How the HTTP handlers reach the one task that owns the engine: a
//! proposal goes over a bounded channel with a reply slot, and the owner
//! ([`crate::daemon`]) judges it between two lines of input, so a decision
//! sees every event processed before it and never races the model.

use tokio::sync::{mpsc, oneshot};

use super::{Outcome, Proposal, ProposalError};

/// One proposal waiting for the engine's owner.
#[derive(Debug)]
pub struct Request {
    /// The proposed change.
    pub proposal: Proposal,
    /// Where the answer goes.
    pub reply: oneshot::Sender<Result<Outcome, ProposalError>>,
}

/// The engine's owner stopped (the daemon is shutting down).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the detection engine is not running")]
pub struct Unavailable;

/// The handlers' side of the channel (cheap to clone).
#[derive(Debug, Clone)]
pub struct Asker(mpsc::Sender<Request>);

/// Proposals waiting at most: past it a handler waits for room, so a flood
/// of requests slows its senders rather than growing memory.
const QUEUE: usize = 64;

/// A new channel: the handlers' end and the owner's.
pub fn channel() -> (Asker, mpsc::Receiver<Request>) {
    let (tx, rx) = mpsc::channel(QUEUE);
    (Asker(tx), rx)
}

impl Asker {
    /// Asks the engine's owner to judge `proposal`.
    pub async fn ask(
        &self,
        proposal: Proposal,
    ) -> Result<Result<Outcome, ProposalError>, Unavailable> {
        let (reply, answer) = oneshot::channel();
        self.0
            .send(Request { proposal, reply })
            .await
            .map_err(|_| Unavailable)?;
        answer.await.map_err(|_| Unavailable)
    }
}
