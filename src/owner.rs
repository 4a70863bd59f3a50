//! How the HTTP handlers reach the one task that owns the engine: a question
//! goes over a bounded channel with a reply slot, and the owner
//! ([`crate::daemon`]) answers it between two lines of input, so an answer
//! sees every event processed before it and never races the model.
//!
//! One channel per kind of question: the gate's proposals
//! ([`crate::gate::Asker`]) and the incident page's people
//! ([`crate::page::Asker`]).

use tokio::sync::{mpsc, oneshot};

/// One question waiting for the engine's owner.
#[derive(Debug)]
pub struct Request<Q, A> {
    /// The question.
    pub query: Q,
    /// Where the answer goes.
    pub reply: oneshot::Sender<A>,
}

/// The engine's owner stopped (the daemon is shutting down).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the detection engine is not running")]
pub struct Unavailable;

/// The handlers' side of the channel (cheap to clone).
#[derive(Debug)]
pub struct Asker<Q, A>(mpsc::Sender<Request<Q, A>>);

impl<Q, A> Clone for Asker<Q, A> {
    fn clone(&self) -> Self {
        Asker(self.0.clone())
    }
}

/// Questions waiting at most: past it a handler waits for room, so a flood
/// of requests slows its senders rather than growing memory.
const QUEUE: usize = 64;

/// A new channel: the handlers' end and the owner's.
pub fn channel<Q, A>() -> (Asker<Q, A>, mpsc::Receiver<Request<Q, A>>) {
    let (tx, rx) = mpsc::channel(QUEUE);
    (Asker(tx), rx)
}

impl<Q, A> Asker<Q, A> {
    /// Asks the engine's owner and waits for its answer.
    pub async fn ask(&self, query: Q) -> Result<A, Unavailable> {
        let (reply, answer) = oneshot::channel();
        self.0
            .send(Request { query, reply })
            .await
            .map_err(|_| Unavailable)?;
        answer.await.map_err(|_| Unavailable)
    }
}
