//! `reachguard restore`: undo a revocation through the restore hooks.
//!
//! Runs as its own process, with or without the daemon running. The grant must
//! have a revocation in the action journal that executed and was not restored
//! yet. The restore is journaled like a revocation — intent (with who asked and
//! why) fsynced before any hook runs, outcome after — under the journal's lock
//! (see [`journal`](super::journal)), so it never races the daemon's own
//! records. The revocation itself stays journaled: the grant is never revoked
//! again for the same trace, while a grant given again under a new grant id is
//! judged afresh.
//!
//! Restore hooks are `[[response.restore_hooks]]`, the same shape as
//! `[[response.hooks]]`. They receive the revocation's payload with
//! `"action":"restore"`, the idempotency key `reachguard-restore-<grant_id>`,
//! `reason` (from `--reason`) and `requested_by`, signed the same way. Two
//! restores at once on one state dir are refused (an advisory lock on the
//! state directory, released by the kernel if the process dies), and a restore
//! interrupted by a crash, or whose hooks failed, may simply be run again.

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::finding::ActionStatus;
use crate::state::StateDir;

pub use super::journal::Requester;
use super::journal::{FlockOperation, Journal, RestoreRefused, flock};
use super::{Hook, HookSpec, run_hooks};

/// Why a restore did not happen (or did not succeed).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RestoreError {
    /// No `[[response.restore_hooks]]`: nothing could undo it.
    #[error(
        "no restore hook is configured: add a [[response.restore_hooks]] entry (same keys as [[response.hooks]])"
    )]
    NoRestoreHooks,
    /// A restore hook could not be set up (e.g. its secret is missing).
    #[error("{0}")]
    Hook(String),
    /// The journal does not show an executed revocation of the grant.
    #[error("cannot restore grant {grant_id}: it was never revoked ({detail})")]
    NeverRevoked {
        /// The grant.
        grant_id: String,
        /// What the journal shows instead.
        detail: String,
    },
    /// The grant was restored before.
    #[error("cannot restore grant {grant_id}: it was already restored by {by} at {at}")]
    AlreadyRestored {
        /// The grant.
        grant_id: String,
        /// Who asked that time.
        by: String,
        /// When (RFC 3339).
        at: String,
    },
    /// Another `reachguard restore` is running on the same state directory.
    #[error("another `reachguard restore` is running on {0}; try again when it has finished")]
    Busy(PathBuf),
    /// The state directory or journal could not be used.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The restore hooks kept failing; the restore is journaled as failed and
    /// may be run again.
    #[error("restore of grant {grant_id} failed: {detail}")]
    Failed {
        /// The grant.
        grant_id: String,
        /// The hooks' errors.
        detail: String,
    },
}

/// A completed restore.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restored {
    /// The grant given back.
    pub grant_id: String,
    /// The restore's idempotency key.
    pub key: String,
    /// Who asked.
    pub requester: String,
    /// Hook attempts made.
    pub attempts: u32,
}

/// The stable idempotency key of a grant's restore.
pub fn restore_key(grant_id: &str) -> String {
    format!("reachguard-restore-{grant_id}")
}

impl Requester {
    /// The user running this process: its real uid, the name `/etc/passwd`
    /// gives that uid, else `$USER` / `$LOGNAME`; and `by`, the person it is
    /// done for, when given.
    pub fn current(by: Option<String>) -> Requester {
        let uid = Some(rustix::process::getuid().as_raw());
        let from_passwd = uid.and_then(|uid| {
            let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
            passwd_name(&passwd, uid)
        });
        let os_user = from_passwd
            .or_else(|| std::env::var("USER").ok().filter(|u| !u.is_empty()))
            .or_else(|| std::env::var("LOGNAME").ok().filter(|u| !u.is_empty()))
            .or_else(|| uid.map(|u| format!("uid:{u}")))
            .unwrap_or_else(|| "unknown".to_owned());
        Requester {
            os_user,
            uid,
            by: by.filter(|b| !b.trim().is_empty()),
        }
    }
}

/// The user name of `uid` in `/etc/passwd` text.
fn passwd_name(passwd: &str, uid: u32) -> Option<String> {
    passwd.lines().find_map(|l| {
        let mut fields = l.split(':');
        let name = fields.next()?;
        let _password = fields.next()?;
        let id: u32 = fields.next()?.parse().ok()?;
        (id == uid && !name.is_empty()).then(|| name.to_owned())
    })
}

/// Restores `grant_id`: checks the journal in `state_dir`, journals the
/// intent, calls every restore hook (`[[response.restore_hooks]]`), journals
/// the outcome.
pub async fn restore(
    restore_hooks: &[HookSpec],
    state_dir: &Path,
    grant_id: &str,
    requester: &Requester,
    reason: Option<&str>,
) -> Result<Restored, RestoreError> {
    if restore_hooks.is_empty() {
        return Err(RestoreError::NoRestoreHooks);
    }
    let hooks = restore_hooks
        .iter()
        .cloned()
        .map(Hook::new)
        .collect::<Result<Vec<_>, _>>()
        .map_err(RestoreError::Hook)?;
    let never = |detail: &str| RestoreError::NeverRevoked {
        grant_id: grant_id.to_owned(),
        detail: detail.to_owned(),
    };
    let dir = state_dir;
    if !dir.is_dir() {
        return Err(never(&format!(
            "there is no state directory {}",
            dir.display()
        )));
    }
    let state = StateDir::open(dir).map_err(|e| RestoreError::Io {
        path: dir.to_owned(),
        source: std::io::Error::other(e.to_string()),
    })?;
    let _busy = lock_dir(state.path())?;
    let path = state.journal_path();
    let mut journal = match Journal::open_existing(&path) {
        Ok(j) => j,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(never(&format!(
                "there is no action journal {}",
                path.display()
            )));
        }
        Err(source) => return Err(RestoreError::Io { path, source }),
    };

    let revoke_key = super::revoke_key(grant_id);
    let key = restore_key(grant_id);
    let who = requester.name().to_owned();
    let reason_text = reason
        .map(str::to_owned)
        .unwrap_or_else(|| format!("restored by {who}"));
    let body = journal
        .begin_restore(&revoke_key, &key, requester, reason, |revoked| {
            let mut p = revoked.clone();
            p["action"] = "restore".into();
            p["idempotency_key"] = key.clone().into();
            p["reason"] = reason_text.clone().into();
            p["requested_by"] = who.clone().into();
            p
        })
        .map_err(|r| match r {
            RestoreRefused::NeverRevoked(detail) => never(&detail),
            RestoreRefused::AlreadyRestored { by, at } => RestoreError::AlreadyRestored {
                grant_id: grant_id.to_owned(),
                by,
                at,
            },
            RestoreRefused::Io(source) => RestoreError::Io {
                path: path.clone(),
                source,
            },
        })?;
    tracing::info!(grant = grant_id, key = %key, by = %who, os_user = %requester.os_user, "restoring a revoked grant");
    let body = serde_json::to_vec(&body).expect("payload serialises");
    let (status, attempts, err) = run_hooks(&hooks, &body, &key).await;
    journal
        .finish_restore(&revoke_key, &key, status, attempts)
        .map_err(|source| RestoreError::Io {
            path: path.clone(),
            source,
        })?;
    if status != ActionStatus::Executed {
        return Err(RestoreError::Failed {
            grant_id: grant_id.to_owned(),
            detail: err.unwrap_or_else(|| "a restore hook failed".to_owned()),
        });
    }
    Ok(Restored {
        grant_id: grant_id.to_owned(),
        key,
        requester: who,
        attempts,
    })
}

/// Takes the exclusive advisory lock on the state directory that serialises
/// restores; held until the returned handle is dropped (or the process dies).
fn lock_dir(dir: &Path) -> Result<File, RestoreError> {
    let io = |source| RestoreError::Io {
        path: dir.to_owned(),
        source,
    };
    let handle = File::open(dir).map_err(io)?;
    match flock(&handle, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(handle),
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
            Err(RestoreError::Busy(dir.to_owned()))
        }
        Err(e) => Err(io(e)),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;

    #[test]
    fn passwd_names_are_found_by_uid() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\n# comment\nalice:x:1000:1000::/home/alice:/bin/sh\nbroken\n";
        assert_eq!(passwd_name(passwd, 0).as_deref(), Some("root"));
        assert_eq!(passwd_name(passwd, 1000).as_deref(), Some("alice"));
        assert_eq!(passwd_name(passwd, 1001), None);
    }

    #[test]
    fn the_current_requester_has_this_process_uid() {
        let r = Requester::current(Some("  ".into()));
        let uid = std::fs::metadata("/proc/self").unwrap().uid();
        assert_eq!(r.uid, Some(uid), "the real uid owns this process");
        assert!(!r.os_user.is_empty());
        assert_eq!(r.by, None, "a blank --by names nobody");
        assert_eq!(Requester::current(Some("alice".into())).name(), "alice");
    }

    #[test]
    fn a_second_restore_on_the_same_state_dir_is_refused_while_the_first_holds_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let first = lock_dir(dir.path()).unwrap();
        assert!(matches!(lock_dir(dir.path()), Err(RestoreError::Busy(_))));
        drop(first);
        lock_dir(dir.path()).unwrap();
    }
}
