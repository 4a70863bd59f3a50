//! The state directory: everything that must survive a restart.
//!
//! - `checkpoint.json`: source offsets and the model, saved together so that the
//!   model always matches the offsets it was built from. Written as temp file +
//!   fsync + rename + directory fsync, with a `version` tag so older formats stay
//!   readable.
//! - `findings.jsonl`: findings (see `sink`).
//! - `actions.jsonl`: the action journal (see `respond::journal`).
//! - `http.addr`: the address the HTTP server bound (useful with port 0).
//!
//! The directory is created with mode 0700: it holds who-can-reach-what.

use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::model::Model;
use crate::source::Checkpoints;

/// The on-disk checkpoint, by format version.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "version")]
enum OnDisk {
    /// Version 1: offsets and the model.
    #[serde(rename = "1")]
    V1 {
        /// Source offsets.
        checkpoints: Checkpoints,
        /// The model as of those offsets.
        model: Model,
    },
}

/// Opened state directory.
#[derive(Debug, Clone)]
pub struct StateDir {
    dir: PathBuf,
}

/// A problem with the state directory.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Could not create or write.
    #[error("state dir {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The checkpoint exists but cannot be read; refusing to start from scratch
    /// silently, which would re-process (and re-revoke) everything.
    #[error("checkpoint {path} is unreadable ({message}); move it away to start from scratch")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> StateError + '_ {
    move |source| StateError::Io {
        path: path.to_owned(),
        source,
    }
}

impl StateDir {
    /// Creates the directory (0700) if needed.
    pub fn open(dir: &Path) -> Result<StateDir, StateError> {
        if !dir.exists() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(io_err(dir))?;
        }
        let meta = fs::metadata(dir).map_err(io_err(dir))?;
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(dir = %dir.display(), mode = format!("{:o}", meta.permissions().mode() & 0o777), "state dir is readable by others; 0700 is recommended");
        }
        Ok(StateDir {
            dir: dir.to_owned(),
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// `findings.jsonl`.
    pub fn findings_path(&self) -> PathBuf {
        self.dir.join("findings.jsonl")
    }

    /// `actions.jsonl`.
    pub fn journal_path(&self) -> PathBuf {
        self.dir.join("actions.jsonl")
    }

    fn checkpoint_path(&self) -> PathBuf {
        self.dir.join("checkpoint.json")
    }

    /// The saved offsets and model, if any.
    pub fn load(&self) -> Result<Option<(Checkpoints, Model)>, StateError> {
        let path = self.checkpoint_path();
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(&path)(e)),
        };
        match serde_json::from_slice::<OnDisk>(&bytes) {
            Ok(OnDisk::V1 { checkpoints, model }) => Ok(Some((checkpoints, model))),
            Err(e) => Err(StateError::Corrupt {
                path,
                message: e.to_string(),
            }),
        }
    }

    /// Saves offsets and model atomically.
    pub fn save(&self, checkpoints: &Checkpoints, model: &Model) -> Result<(), StateError> {
        #[derive(Serialize)]
        #[serde(tag = "version")]
        enum OnDiskRef<'a> {
            #[serde(rename = "1")]
            V1 {
                checkpoints: &'a Checkpoints,
                model: &'a Model,
            },
        }
        let bytes =
            serde_json::to_vec(&OnDiskRef::V1 { checkpoints, model }).expect("state serialises");
        let path = self.checkpoint_path();
        write_atomic(&path, &bytes)
    }
}

/// temp file + fsync + rename + directory fsync.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StateError> {
    let tmp = path.with_extension("tmp");
    let mut f = File::create(&tmp).map_err(io_err(&tmp))?;
    f.write_all(bytes).map_err(io_err(&tmp))?;
    f.sync_all().map_err(io_err(&tmp))?;
    drop(f);
    fs::rename(&tmp, path).map_err(io_err(path))?;
    if let Some(parent) = path.parent() {
        File::open(parent)
            .and_then(|d| d.sync_all())
            .map_err(io_err(parent))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Grant, GranteeType, Ts};

    #[test]
    fn checkpoint_round_trips_and_dir_is_private() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("state");
        let s = StateDir::open(&dir).unwrap();
        assert_eq!(
            fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
            0o700
        );
        assert!(s.load().unwrap().is_none());
        let mut model = Model::default();
        model.record_grant(
            &Grant {
                grant_id: "g1".into(),
                actor: "a".into(),
                grantee: "b".into(),
                grantee_type: GranteeType::User,
                resource: "r".into(),
                role: None,
                reference: None,
                actor_type: None,
            },
            Ts(5),
        );
        s.save(&Checkpoints::default(), &model).unwrap();
        let (cp, m) = s.load().unwrap().unwrap();
        assert_eq!(cp, Checkpoints::default());
        assert_eq!(m, model);
        let raw: serde_json::Value =
            serde_json::from_slice(&fs::read(dir.join("checkpoint.json")).unwrap()).unwrap();
        assert_eq!(raw["version"], "1");
    }

    #[test]
    fn a_corrupt_checkpoint_is_an_error_not_a_fresh_start() {
        let tmp = tempfile::tempdir().unwrap();
        let s = StateDir::open(tmp.path()).unwrap();
        fs::write(
            tmp.path().join("checkpoint.json"),
            b"{\"version\":\"1\",\"check",
        )
        .unwrap();
        assert!(matches!(s.load(), Err(StateError::Corrupt { .. })));
        fs::write(tmp.path().join("checkpoint.json"), b"{\"version\":\"99\"}").unwrap();
        assert!(matches!(s.load(), Err(StateError::Corrupt { .. })));
    }
}
