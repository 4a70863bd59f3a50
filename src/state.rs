//! The state directory: everything that must survive a restart.
//!
//! - `checkpoint.json`: every source's cursor (under its stable id, see
//!   `source::cursor`) and the model, saved together so that the model always
//!   matches the positions it was built from. Written as temp file + fsync +
//!   rename + directory fsync, with a `version` tag so older formats stay
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

use crate::detect::Reach;
use crate::model::Model;
use crate::source::Checkpoints;
use crate::source::cursor::{self, Cursors};

/// The first thing read from a checkpoint: which format it is.
#[derive(Deserialize)]
struct Version {
    version: String,
}

/// Format version 1: offsets and the model (before baselines existed).
#[derive(Deserialize)]
struct V1 {
    checkpoints: Checkpoints,
    model: Model,
}

/// Format version 2: offsets (by source index), the model, and reach
/// baselines with peer groups.
#[derive(Deserialize)]
struct V2 {
    checkpoints: Checkpoints,
    model: Model,
    reach: Reach,
}

/// Format version 3: each source's cursor under its stable id, the model,
/// and reach baselines with peer groups.
#[derive(Serialize)]
struct V3<'a> {
    version: &'static str,
    cursors: &'a Cursors,
    model: &'a Model,
    reach: &'a Reach,
}

#[derive(Deserialize)]
struct V3Owned {
    cursors: Cursors,
    model: Model,
    reach: Reach,
}

/// Index-keyed offsets of a checkpoint before format 3, as cursors under
/// their legacy ids.
fn legacy(checkpoints: &Checkpoints) -> Cursors {
    cursor::split(checkpoints)
        .into_iter()
        .map(|(i, c)| (cursor::legacy_id(i), c))
        .collect()
}

/// What a checkpoint restores.
#[derive(Debug, Default)]
pub struct Saved {
    /// Every source's cursor, by its stable id.
    pub cursors: Cursors,
    /// Who holds what.
    pub model: Model,
    /// Baselines and peer groups.
    pub reach: Reach,
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
    /// Another process (a running daemon, or `train`) owns the state dir.
    #[error(
        "state dir {path} is in use by another reachguard process (`run` or `train`); stop it first"
    )]
    InUse {
        /// The state dir.
        path: PathBuf,
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

    /// Takes the owner lock (`owner.lock`, an advisory `flock` the kernel
    /// drops when the process dies): the daemon and `train` both write the
    /// checkpoint, so only one of them may run on a state dir at a time.
    /// `restore` does not need it and works beside a running daemon.
    pub fn lock_owner(&self) -> Result<OwnerLock, StateError> {
        let path = self.dir.join("owner.lock");
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_err(&path))?;
        match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(OwnerLock { _file: file }),
            Err(e) if e == rustix::io::Errno::WOULDBLOCK => Err(StateError::InUse {
                path: self.dir.clone(),
            }),
            Err(e) => Err(io_err(&path)(e.into())),
        }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// `findings.jsonl`.
    pub fn findings_path(&self) -> PathBuf {
        self.dir.join("findings.jsonl")
    }

    /// `uses.jsonl`: uses of reported grants ([`crate::uses`]).
    pub fn uses_path(&self) -> PathBuf {
        self.dir.join("uses.jsonl")
    }

    /// `actions.jsonl`.
    pub fn journal_path(&self) -> PathBuf {
        self.dir.join("actions.jsonl")
    }

    /// Records the address the HTTP server bound in `http.addr`, for tools
    /// and tests when the port was 0.
    pub fn record_http_addr(&self, addr: std::net::SocketAddr) -> Result<(), StateError> {
        write_atomic(&self.dir.join("http.addr"), format!("{addr}\n").as_bytes())
    }

    /// Records the admission webhook's address (`gate.addr`), for tests and
    /// tools that ask for port 0.
    pub fn record_gate_addr(&self, addr: std::net::SocketAddr) -> Result<(), StateError> {
        write_atomic(&self.dir.join("gate.addr"), format!("{addr}\n").as_bytes())
    }

    /// Records the OTLP receivers' addresses (`otlp-http.addr`,
    /// `otlp-grpc.addr`), for tests and tools that ask for port 0.
    pub fn record_otlp_addrs(
        &self,
        addrs: &[(&str, std::net::SocketAddr)],
    ) -> Result<(), StateError> {
        for (kind, addr) in addrs {
            write_atomic(
                &self.dir.join(format!("otlp-{kind}.addr")),
                format!("{addr}\n").as_bytes(),
            )?;
        }
        Ok(())
    }

    fn checkpoint_path(&self) -> PathBuf {
        self.dir.join("checkpoint.json")
    }

    /// The saved cursors, model and baselines, if any.
    pub fn load(&self) -> Result<Option<Saved>, StateError> {
        let path = self.checkpoint_path();
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(&path)(e)),
        };
        let corrupt = |e: serde_json::Error| StateError::Corrupt {
            path: path.clone(),
            message: e.to_string(),
        };
        // The version is read first so the body is parsed straight into its
        // typed form (an internally tagged enum would buffer the whole state).
        let version = serde_json::from_slice::<Version>(&bytes)
            .map_err(corrupt)?
            .version;
        let (cursors, mut model, reach) = match version.as_str() {
            "1" => {
                let v: V1 = serde_json::from_slice(&bytes).map_err(corrupt)?;
                (legacy(&v.checkpoints), v.model, Reach::default())
            }
            "2" => {
                let v: V2 = serde_json::from_slice(&bytes).map_err(corrupt)?;
                (legacy(&v.checkpoints), v.model, v.reach)
            }
            "3" => {
                let v: V3Owned = serde_json::from_slice(&bytes).map_err(corrupt)?;
                (v.cursors, v.model, v.reach)
            }
            other => {
                return Err(StateError::Corrupt {
                    path,
                    message: format!(
                        "unknown checkpoint format version {other:?} (written by a newer reachguard?)"
                    ),
                });
            }
        };
        model.rebuild_indexes();
        Ok(Some(Saved {
            cursors,
            model,
            reach,
        }))
    }

    /// Saves cursors, model and baselines atomically (format version 3).
    pub fn save(&self, cursors: &Cursors, model: &Model, reach: &Reach) -> Result<(), StateError> {
        let bytes = serde_json::to_vec(&V3 {
            version: "3",
            cursors,
            model,
            reach,
        })
        .expect("state serialises");
        let path = self.checkpoint_path();
        write_atomic(&path, &bytes)
    }
}

/// Held while a process owns the state dir; released on drop or death.
#[derive(Debug)]
pub struct OwnerLock {
    _file: File,
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
                target: None,
            },
            Ts(5),
        );
        let mut reach = Reach::default();
        let p = reach.principals.intern("b");
        let r = reach.resources.intern("r");
        reach.learn(p, r, Ts(5));
        let mut cursors = Cursors::new();
        cursors.insert(
            "otlp".into(),
            crate::source::Cursor::Requests { answered: 7 },
        );
        s.save(&cursors, &model, &reach).unwrap();
        let saved = s.load().unwrap().unwrap();
        assert_eq!(saved.cursors, cursors);
        assert_eq!(saved.model, model);
        assert_eq!(saved.reach, reach);
        let raw: serde_json::Value =
            serde_json::from_slice(&fs::read(dir.join("checkpoint.json")).unwrap()).unwrap();
        assert_eq!(raw["version"], "3");
        assert_eq!(raw["cursors"]["otlp"]["kind"], "requests");
    }

    #[test]
    fn a_version_2_checkpoint_loads_its_offsets_under_legacy_ids() {
        let tmp = tempfile::tempdir().unwrap();
        let s = StateDir::open(tmp.path()).unwrap();
        // As reachguard wrote it before cursors had ids: offsets by the
        // source's index in the config.
        let v2 = format!(
            r#"{{"version":"2","checkpoints":{{"files":[{{"source":0,"key":{{"dev":1,"ino":10}},"position":{{"path":"/var/log/app.jsonl","offset":120,"line_no":3,"fingerprint":77,"epoch":0}}}},{{"source":1,"key":{{"dev":1,"ino":11}},"position":{{"path":"/var/log/audit.jsonl","offset":40,"line_no":1,"fingerprint":78}}}}],"retired":[{{"source":1,"fingerprint":79,"offset":500,"line_no":9}}]}},"model":{{"grants":{{}},"members":{{}},"advice":{{}},"channels":{{}},"sightings":{{}},"principals":[],"latest":"2026-03-18T09:07:02Z"}},"reach":{}}}"#,
            serde_json::to_string(&Reach::default()).unwrap()
        );
        fs::write(tmp.path().join("checkpoint.json"), v2).unwrap();
        let saved = s.load().unwrap().unwrap();
        let ids: Vec<&str> = saved.cursors.keys().map(String::as_str).collect();
        assert_eq!(ids, ["#0", "#1"]);
        let positions = crate::source::Positions::restore(
            saved.cursors,
            &["app".to_owned(), "audit".to_owned()],
        );
        let files = positions.files();
        let app = files
            .get(0, crate::source::FileKey { dev: 1, ino: 10 })
            .unwrap();
        assert_eq!((app.offset, app.line_no, app.fingerprint), (120, 3, 77));
        let audit = files
            .get(1, crate::source::FileKey { dev: 1, ino: 11 })
            .unwrap();
        assert_eq!(audit.offset, 40);
        assert_eq!(files.retired().len(), 1);
        assert_eq!(files.retired()[0].source, 1);
        // Saved again, they are under the sources' own ids.
        let ids: Vec<String> = positions.cursors().into_keys().collect();
        assert_eq!(ids, ["files/app", "files/audit"]);
    }

    #[test]
    fn a_version_1_checkpoint_still_loads_with_empty_baselines() {
        let tmp = tempfile::tempdir().unwrap();
        let s = StateDir::open(tmp.path()).unwrap();
        // Written by reachguard before baselines existed.
        let v1 = r#"{"version":"1","checkpoints":{"files":[]},"model":{"grants":{"g1":{"actor":"a","grantee":"eng","grantee_type":"group","resource":"r","role":null,"ts":"2026-03-18T09:07:02Z","revoked":false}},"members":{"eng":["carol"]},"advice":{},"channels":{},"sightings":{},"principals":["carol"],"latest":"2026-03-18T09:07:02Z"}}"#;
        fs::write(tmp.path().join("checkpoint.json"), v1).unwrap();
        let saved = s.load().unwrap().unwrap();
        assert!(
            saved.model.holds("carol", "r"),
            "derived indexes are rebuilt"
        );
        assert_eq!(saved.reach, Reach::default());
    }

    #[test]
    fn only_one_owner_at_a_time() {
        let tmp = tempfile::tempdir().unwrap();
        let s = StateDir::open(tmp.path()).unwrap();
        let first = s.lock_owner().unwrap();
        assert!(matches!(s.lock_owner(), Err(StateError::InUse { .. })));
        drop(first);
        s.lock_owner().unwrap();
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
