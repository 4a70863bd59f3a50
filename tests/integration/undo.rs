//! Revocation end to end, per grant kind: a record of that kind
//! (`tests/fixtures/undo/<format>`, written from each vendor's documented
//! shape, the actor an agent) → its decoder → an `unverified_agent_grant`
//! with a revoke action → the payload a configured exec hook receives → the
//! shipped hook `deploy/hooks/<format> --dry-run` → the exact vendor call.
//! Grants whose undo cannot be told from the record end `no_undo`, never
//! `failed`. Also: routing by `formats`, and the public corpus replayed with
//! every actor an agent.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::helpers::BIN;

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// What a grant's revocation must come to.
enum Expect {
    /// The shipped hook's `--dry-run` output.
    Undo(&'static str),
    /// `no_undo`, the reason containing this.
    NoUndo(&'static str),
}

/// Replays `fixture` as `format` with every actor matching `*agent-runner*` an
/// agent and an exec hook that records each payload; returns the
/// `unverified_agent_grant` findings and the payloads, by grant id.
fn replay(
    format: &str,
    files: &[PathBuf],
    hooks_formats: &str,
) -> (
    HashMap<String, serde_json::Value>,
    HashMap<String, serde_json::Value>,
    String,
) {
    let dir = tempfile::tempdir().unwrap();
    let payloads = dir.path().join("payloads.jsonl");
    let cfg = dir.path().join("reachguard.toml");
    let record = format!(
        "cat >> '{}'; echo >> '{}'",
        payloads.display(),
        payloads.display()
    );
    std::fs::write(
        &cfg,
        format!(
            "[state]\ndir = \"{}\"\n\n[agents]\npatterns = [\"*agent-runner*\"]\n\n[response]\nmax_revocations_per_hour = 100000\n\n[[response.hooks]]\ntype = \"exec\"\ncommand = [\"sh\", \"-c\", {record:?}]\nmax_attempts = 1\n{hooks_formats}\n",
            dir.path().join("state").display()
        ),
    )
    .unwrap();
    let out = Command::new(BIN)
        .arg("replay")
        .arg("--config")
        .arg(&cfg)
        .arg("--format")
        .arg(format)
        .args(files)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "replay failed: {stderr}");
    let findings = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|f| f["kind"] == "unverified_agent_grant")
        .map(|f| (f["grant_id"].as_str().unwrap().to_owned(), f))
        .collect();
    let payloads = std::fs::read_to_string(&payloads)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .map(|p| (p["grant_id"].as_str().unwrap().to_owned(), p))
        .collect();
    (findings, payloads, stderr)
}

/// Runs the shipped hook with `args` and `payload` on stdin.
fn hook(format: &str, args: &[&str], env: &[(&str, &str)], payload: &str) -> (i32, String, String) {
    let mut cmd = Command::new(repo("deploy/hooks").join(format));
    cmd.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), payload.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

const OKTA_ENV: [(&str, &str); 1] = [("OKTA_ORG_URL", "https://example.okta.com")];

/// The chain for every record of `fixture`: each grant id in `cases` must come
/// to what it says, and every traced grant must be in `cases`.
fn check(format: &str, fixture: &str, cases: &[(&str, Expect)]) {
    let (findings, payloads, stderr) = replay(
        format,
        &[repo("tests/fixtures/undo").join(fixture)],
        &format!("formats = [{format:?}]"),
    );
    let mut ids: Vec<&String> = findings.keys().collect();
    ids.sort();
    let mut expected: Vec<&str> = cases.iter().map(|(id, _)| *id).collect();
    expected.sort();
    assert_eq!(ids, expected, "traced grants of {fixture}; {stderr}");
    let env: &[(&str, &str)] = if format == "okta" { &OKTA_ENV } else { &[] };
    for (id, expect) in cases {
        let action = &findings[*id]["action"];
        assert_eq!(action["kind"], "revoke", "{id}: {action}");
        match expect {
            Expect::Undo(command) => {
                assert_eq!(action["status"], "executed", "{id}: {action}");
                let payload = &payloads[*id];
                assert_eq!(payload["format"], format, "{id}");
                assert!(payload["target"]["type"].is_string(), "{id}: {payload}");
                let (code, out, err) = hook(format, &["--dry-run"], env, &payload.to_string());
                assert_eq!(code, 0, "{id}: {err}");
                assert_eq!(out, *command, "{id}: {payload}");
            }
            Expect::NoUndo(why) => {
                assert_eq!(action["status"], "no_undo", "{id}: {action}");
                let reason = action["reason"].as_str().unwrap();
                assert!(
                    reason.contains("no undo known") && reason.contains(why),
                    "{id}: {reason}"
                );
                assert!(!payloads.contains_key(*id), "{id} never reaches a hook");
            }
        }
    }
}

const ADMIN: &str = "arn:aws:iam::aws:policy/AdministratorAccess";

#[test]
fn every_cloudtrail_grant_kind_is_undone_by_the_cloudtrail_hook_or_reported_as_no_undo() {
    let attach_user =
        format!("aws iam detach-user-policy --user-name mallory --policy-arn {ADMIN}\n");
    let attach_role =
        format!("aws iam detach-role-policy --role-name deployer --policy-arn {ADMIN}\n");
    let attach_group =
        format!("aws iam detach-group-policy --group-name eng-all --policy-arn {ADMIN}\n");
    let leak = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
    check(
        "cloudtrail",
        "cloudtrail.jsonl",
        &[
            ("ct:ct-0001", Expect::Undo(leak(attach_user))),
            ("ct:ct-0002", Expect::Undo(leak(attach_role))),
            ("ct:ct-0003", Expect::Undo(leak(attach_group))),
            (
                "ct:ct-0004",
                Expect::Undo("aws iam delete-user-policy --user-name mallory --policy-name full\n"),
            ),
            (
                "ct:ct-0005",
                Expect::Undo(
                    "aws iam remove-user-from-group --group-name Admins --user-name dave\n",
                ),
            ),
            (
                "ct:ct-0006:0",
                Expect::Undo(
                    "aws iam get-role --role-name prod-admin --query Role.AssumeRolePolicyDocument --output json\naws iam update-assume-role-policy --role-name prod-admin --policy-document <that document without arn:aws:iam::444455556666:root>\n",
                ),
            ),
            (
                "ct:ct-0007",
                Expect::Undo(
                    "aws iam update-access-key --user-name alice --access-key-id AKIAIOSFODNN7EXAMPLE --status Inactive\n",
                ),
            ),
            (
                "ct:ct-0008",
                Expect::Undo("aws iam delete-login-profile --user-name alice\n"),
            ),
            (
                "ct:ct-0009:0",
                Expect::Undo(
                    "aws ec2 modify-snapshot-attribute --snapshot-id snap-0123456789abcdef0 --attribute createVolumePermission --operation-type remove --user-ids 444455556666\n",
                ),
            ),
            (
                "ct:ct-0010:0",
                Expect::Undo(
                    "aws ec2 modify-image-attribute --image-id ami-0123456789abcdef0 --attribute launchPermission --operation-type remove --user-groups all\n",
                ),
            ),
            (
                "ct:ct-0011:0",
                Expect::Undo(
                    "aws rds modify-db-snapshot-attribute --db-snapshot-identifier prod-db-snap --attribute-name restore --values-to-remove 444455556666\n",
                ),
            ),
            (
                "ct:ct-0012:0",
                Expect::Undo(
                    "aws rds modify-db-cluster-snapshot-attribute --db-cluster-snapshot-identifier prod-cluster-snap --attribute-name restore --values-to-remove all\n",
                ),
            ),
            (
                "ct:ct-0013:0",
                Expect::Undo(
                    "aws lambda remove-permission --function-name billing-export --statement-id agent-share\n",
                ),
            ),
            ("ct:ct-0014:0", Expect::NoUndo("whole new policy")),
            (
                "ct:ct-0015",
                Expect::Undo(
                    "aws iam delete-role-policy --role-name deployer --policy-name s3-all\n",
                ),
            ),
            (
                "ct:ct-0016",
                Expect::Undo(
                    "aws iam delete-group-policy --group-name eng-all --policy-name s3-all\n",
                ),
            ),
            ("ct:ct-0017", Expect::NoUndo("console password")),
            ("ct:ct-0018:0", Expect::NoUndo("whole new policy or ACL")),
            ("ct:ct-0019:0", Expect::NoUndo("whole new policy")),
            ("ct:ct-0020:0", Expect::NoUndo("whole new policy")),
        ],
    );
}

#[test]
fn kubernetes_bindings_lose_exactly_the_one_subject_through_the_k8s_audit_hook() {
    check(
        "k8s-audit",
        "k8s-audit.jsonl",
        &[
            (
                "k8s:k8s-0001:0",
                Expect::Undo(
                    "kubectl patch clusterrolebinding ops-admin --type json --patch '[{\"op\":\"test\",\"path\":\"/subjects/0/kind\",\"value\":\"User\"},{\"op\":\"test\",\"path\":\"/subjects/0/name\",\"value\":\"mallory\"},{\"op\":\"remove\",\"path\":\"/subjects/0\"}]'\n",
                ),
            ),
            (
                "k8s:k8s-0002:0",
                Expect::Undo(
                    "kubectl patch rolebinding agent-suggested-view --namespace payments --type json --patch '[{\"op\":\"test\",\"path\":\"/subjects/0/kind\",\"value\":\"Group\"},{\"op\":\"test\",\"path\":\"/subjects/0/name\",\"value\":\"eng-all\"},{\"op\":\"remove\",\"path\":\"/subjects/0\"}]'\n",
                ),
            ),
        ],
    );
}

#[test]
fn gcp_bindings_keys_and_gke_bindings_are_undone_by_the_gcp_audit_hook() {
    check(
        "gcp-audit",
        "gcp-audit.jsonl",
        &[
            (
                "gcp:gcp-0001:0",
                Expect::Undo(
                    "gcloud projects remove-iam-policy-binding proj-1 --member=user:mallory@example.com --role=roles/owner --quiet\n",
                ),
            ),
            (
                "gcp:gcp-0002:0",
                Expect::Undo(
                    "gcloud iam service-accounts keys delete 0123456789abcdef0123456789abcdef01234567 --iam-account deployer@proj-1.iam.gserviceaccount.com --quiet\n",
                ),
            ),
            (
                "gcp:gcp-0003:0",
                Expect::Undo(
                    "kubectl patch clusterrolebinding gke-admin --type json --patch '[{\"op\":\"test\",\"path\":\"/subjects/0/kind\",\"value\":\"User\"},{\"op\":\"test\",\"path\":\"/subjects/0/name\",\"value\":\"mallory@example.com\"},{\"op\":\"remove\",\"path\":\"/subjects/0\"}]'\n",
                ),
            ),
            (
                "gcp:gcp-0004:0",
                Expect::Undo(
                    "kubectl patch rolebinding agent-edit --namespace payments --type json --patch '[{\"op\":\"test\",\"path\":\"/subjects/0/kind\",\"value\":\"ServiceAccount\"},{\"op\":\"test\",\"path\":\"/subjects/0/name\",\"value\":\"deployer\"},{\"op\":\"remove\",\"path\":\"/subjects/0\"}]'\n",
                ),
            ),
        ],
    );
}

#[test]
fn okta_roles_apps_memberships_and_support_access_are_undone_by_the_okta_hook() {
    const CURL: &str = "curl --silent --show-error --fail --request";
    const H: &str = "--header @- --header 'Accept: application/json' https://example.okta.com";
    let leak = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
    check(
        "okta",
        "okta.jsonl",
        &[
            (
                "okta:okta-0001:0",
                Expect::Undo(leak(format!(
                    "{CURL} GET {H}/api/v1/users/00u1mallory/roles\n{CURL} DELETE {H}/api/v1/users/00u1mallory/roles/<id of its SUPER_ADMIN assignment>\n"
                ))),
            ),
            (
                "okta:okta-0002:0",
                Expect::Undo(leak(format!(
                    "{CURL} GET {H}/api/v1/groups/00g1engall/roles\n{CURL} DELETE {H}/api/v1/groups/00g1engall/roles/<id of its READ_ONLY_ADMIN assignment>\n"
                ))),
            ),
            (
                "okta:okta-0003",
                Expect::Undo(leak(format!(
                    "{CURL} DELETE {H}/api/v1/apps/0oa1payroll/users/00u1mallory\n"
                ))),
            ),
            (
                "okta:okta-0004",
                Expect::Undo(leak(format!(
                    "{CURL} DELETE {H}/api/v1/apps/0oa1payroll/groups/00g1engall\n"
                ))),
            ),
            (
                "okta:okta-0005",
                Expect::Undo(leak(format!(
                    "{CURL} POST {H}/api/v1/org/privacy/oktaSupport/revoke\n"
                ))),
            ),
            (
                "okta:okta-0006",
                Expect::Undo(leak(format!(
                    "{CURL} DELETE {H}/api/v1/groups/00g1engall/users/00u1mallory\n"
                ))),
            ),
        ],
    );
}

#[test]
fn github_memberships_and_permissions_are_undone_by_the_github_audit_hook() {
    check(
        "github-audit",
        "github-audit.jsonl",
        &[
            (
                "gh:gh-0001",
                Expect::Undo("gh api --method DELETE /orgs/acme/members/mallory\n"),
            ),
            (
                "gh:gh-0002",
                Expect::Undo("gh api --method DELETE /orgs/acme/teams/sre/memberships/mallory\n"),
            ),
            (
                "gh:gh-0003",
                Expect::Undo("gh api --method DELETE /repos/acme/payments/collaborators/mallory\n"),
            ),
            (
                "gh:gh-0004",
                Expect::Undo("gh api --method DELETE /orgs/acme/teams/sre/repos/acme/payments\n"),
            ),
            (
                "gh:gh-0005",
                Expect::Undo(
                    "gh api --method PUT /orgs/acme/memberships/mallory --field role=member\n",
                ),
            ),
            ("gh:gh-0006", Expect::NoUndo("enterprise owner")),
            (
                "gh:gh-0007",
                Expect::Undo(
                    "gh api --method PUT /orgs/acme/teams/sre/memberships/mallory --field role=member\n",
                ),
            ),
            ("gh:gh-0008", Expect::NoUndo("moderator")),
            ("gh:gh-0009", Expect::NoUndo("installation")),
        ],
    );
}

#[test]
fn linux_group_adds_are_undone_with_gpasswd_by_the_linux_auth_hook() {
    let (findings, _, _) = replay(
        "linux-auth",
        &[repo("tests/fixtures/undo/linux-auth.log")],
        "formats = [\"linux-auth\"]",
    );
    let mut ids: Vec<&String> = findings.keys().collect();
    ids.sort();
    assert_eq!(ids.len(), 3, "{ids:?}");
    // The host in the fixture is not this one: the call goes through ssh.
    check(
        "linux-auth",
        "linux-auth.log",
        &[
            (
                ids[0].as_str(),
                Expect::Undo("ssh -- web-1 gpasswd --delete mallory sudo\n"),
            ),
            (
                ids[1].as_str(),
                Expect::Undo("ssh -- web-1 gpasswd --delete dave docker\n"),
            ),
            (
                ids[2].as_str(),
                Expect::Undo("ssh -- web-2 gpasswd --delete erin wheel\n"),
            ),
        ],
    );
}

#[test]
fn a_revocation_no_hook_handles_is_reported_unhandled_not_failed() {
    let (findings, payloads, _) = replay(
        "cloudtrail",
        &[repo("tests/fixtures/undo/cloudtrail.jsonl")],
        "formats = [\"k8s-audit\"]",
    );
    assert!(
        payloads.is_empty(),
        "the k8s-audit hook got no CloudTrail grant"
    );
    let a = &findings["ct:ct-0001"]["action"];
    assert_eq!(a["status"], "unhandled", "{a}");
    assert!(
        a["reason"].as_str().unwrap().contains("\"cloudtrail\""),
        "{a}"
    );
    // A grant with no undo known says so first.
    assert_eq!(findings["ct:ct-0014:0"]["action"]["status"], "no_undo");
}

#[test]
fn check_config_rejects_an_unknown_format_in_hook_routing() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        "[[response.hooks]]\ntype = \"exec\"\ncommand = [\"/bin/true\"]\nformats = [\"cloudtrial\"]\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cloudtrial") && err.contains("cloudtrail"),
        "{err}"
    );
    std::fs::write(
        &cfg,
        "[[response.restore_hooks]]\ntype = \"exec\"\ncommand = [\"/bin/true\"]\nformats = []\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("formats"));
}

#[test]
fn hooks_refuse_hostile_targets_and_payloads_without_one() {
    for (format, payload, why) in [
        (
            "cloudtrail",
            r#"{"action":"revoke","target":{"type":"iam_policy_attachment","principal_type":"user","principal":"bob; rm -rf /","policy_arn":"arn:aws:iam::aws:policy/ReadOnlyAccess"}}"#,
            "is not a valid name",
        ),
        (
            "cloudtrail",
            r#"{"action":"revoke","target":{"type":"iam_group_membership","group":"--debug","user":"dave"}}"#,
            "is not a valid name",
        ),
        (
            "github-audit",
            r#"{"action":"revoke","target":{"type":"github_org_member","org":"../../user","user":"x"}}"#,
            "is not a valid name",
        ),
        (
            "k8s-audit",
            r#"{"action":"revoke","target":{"type":"iam_login_profile","user":"alice"}}"#,
            "is not a Kubernetes binding",
        ),
        (
            "linux-auth",
            r#"{"action":"revoke","kind":"grant","resource":"acl/x","grantee":"bob"}"#,
            "has no target",
        ),
        ("okta", "not json", "not JSON"),
    ] {
        let (code, out, err) = hook(format, &["--dry-run"], &OKTA_ENV, payload);
        assert_eq!(code, 2, "{format} must refuse {payload}; printed {out:?}");
        assert!(out.is_empty(), "{out:?}");
        assert!(err.contains(why), "{payload}: {err}");
    }
}

#[test]
fn restore_re_applies_the_grant_where_the_payload_allows() {
    for (format, payload, expected) in [
        (
            "cloudtrail",
            r#"{"action":"restore","target":{"type":"iam_policy_attachment","principal_type":"role","principal":"deployer","policy_arn":"arn:aws:iam::aws:policy/AdministratorAccess"}}"#,
            "aws iam attach-role-policy --role-name deployer --policy-arn arn:aws:iam::aws:policy/AdministratorAccess\n",
        ),
        (
            "cloudtrail",
            r#"{"action":"restore","target":{"type":"iam_access_key","user":"alice","access_key_id":"AKIAIOSFODNN7EXAMPLE"}}"#,
            "aws iam update-access-key --user-name alice --access-key-id AKIAIOSFODNN7EXAMPLE --status Active\n",
        ),
        (
            "gcp-audit",
            r#"{"action":"restore","target":{"type":"gcp_binding","resource":"projects/proj-1","role":"roles/owner","member":"user:mallory@example.com"}}"#,
            "gcloud projects add-iam-policy-binding proj-1 --member=user:mallory@example.com --role=roles/owner --quiet\n",
        ),
        (
            "github-audit",
            r#"{"action":"restore","target":{"type":"github_team_member","org":"acme","team":"sre","user":"mallory"}}"#,
            "gh api --method PUT /orgs/acme/teams/sre/memberships/mallory --field role=member\n",
        ),
        (
            "linux-auth",
            r#"{"action":"restore","target":{"type":"linux_group_membership","host":"localhost","group":"docker","user":"dave"}}"#,
            "gpasswd --add dave docker\n",
        ),
    ] {
        let (code, out, err) = hook(format, &["--dry-run"], &OKTA_ENV, payload);
        assert_eq!(code, 0, "{payload}: {err}");
        assert_eq!(out, expected, "{payload}");
    }
    let (code, _, err) = hook(
        "cloudtrail",
        &["--dry-run"],
        &[],
        r#"{"action":"restore","target":{"type":"iam_login_profile","user":"alice"}}"#,
    );
    assert_eq!(code, 2);
    assert!(err.contains("cannot be put back"), "{err}");
}

#[test]
fn the_corpus_replayed_with_every_actor_an_agent_fails_no_revocation() {
    let corpus = repo("tests/corpus");
    let mut total = 0;
    let mut executed = 0;
    for (format, dir) in [
        ("cloudtrail", "cloudtrail"),
        ("k8s-audit", "k8s_audit"),
        ("okta", "okta"),
        ("gcp-audit", "gcp_audit"),
        ("github-audit", "github_audit"),
        ("linux-auth", "linux_auth"),
    ] {
        let mut files: Vec<PathBuf> = std::fs::read_dir(corpus.join(dir))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                let name = p.file_name().unwrap().to_string_lossy().into_owned();
                !name.contains(".index.") && !name.contains(".labels.")
            })
            .collect();
        files.sort();
        let (findings, _, stderr) = replay_all_agents(format, &files);
        let mut by_status: HashMap<String, usize> = HashMap::new();
        for f in findings.values() {
            *by_status
                .entry(f["action"]["status"].as_str().unwrap_or("none").to_owned())
                .or_default() += 1;
        }
        total += findings.len();
        assert_eq!(
            by_status.get("failed"),
            None,
            "{format}: {by_status:?}; {stderr}"
        );
        assert_eq!(by_status.get("unhandled"), None, "{format}: {by_status:?}");
        executed += by_status.get("executed").copied().unwrap_or(0);
        eprintln!("{format}: {by_status:?}");
    }
    // The corpus holds 47 traced grants; most are undone, the rest no_undo.
    assert!(total >= 40, "revocations decided over the corpus: {total}");
    assert!(executed * 2 > total, "{executed} of {total} executed");
}

/// [`replay`] with every actor an agent and the shipped hook in `--dry-run`
/// as the one hook for `format`.
fn replay_all_agents(
    format: &str,
    files: &[PathBuf],
) -> (HashMap<String, serde_json::Value>, (), String) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("reachguard.toml");
    let hook = repo("deploy/hooks").join(format);
    std::fs::write(
        &cfg,
        format!(
            "[state]\ndir = \"{}\"\n\n[agents]\npatterns = [\"*\"]\n\n[response]\nmax_revocations_per_hour = 1000000\n\n[[response.hooks]]\ntype = \"exec\"\ncommand = [{:?}, \"--dry-run\"]\nmax_attempts = 1\nformats = [{format:?}]\n",
            dir.path().join("state").display(),
            hook.display().to_string()
        ),
    )
    .unwrap();
    let out = Command::new(BIN)
        .arg("replay")
        .arg("--config")
        .arg(&cfg)
        .arg("--format")
        .arg(format)
        .args(files)
        .env("OKTA_ORG_URL", "https://example.okta.com")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "replay failed: {stderr}");
    let findings = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|f| f["kind"] == "unverified_agent_grant" && f["action"].is_object())
        .map(|f| (f["finding_id"].as_str().unwrap().to_owned(), f))
        .collect();
    (findings, (), stderr)
}

/// A stand-in for a vendor CLI (none can reach a real account here): records
/// its name and arguments, one call per line, and answers `get` with `answer`.
fn stand_in(dir: &Path, name: &str, calls: &Path, answer: &Path) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(
        &path,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"{name} $*\" >> '{}'\nif [ \"$1\" = get ]; then cat '{}'; fi\nexit 0\n",
            calls.display(),
            answer.display()
        ),
    )
    .unwrap();
    let mut perms = std::fs::metadata(&path).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&path, perms).unwrap();
    path
}

#[test]
fn a_live_daemon_revokes_one_grant_per_vendor_through_the_shipped_hooks() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let calls = d.join("calls.log");
    let binding = d.join("binding.json");
    std::fs::write(
        &binding,
        r#"{"kind":"ClusterRoleBinding","metadata":{"name":"ops-admin"},"subjects":[{"kind":"User","apiGroup":"rbac.authorization.k8s.io","name":"alice"},{"kind":"User","apiGroup":"rbac.authorization.k8s.io","name":"mallory"}],"roleRef":{"kind":"ClusterRole","name":"cluster-admin"}}"#,
    )
    .unwrap();
    let fixtures = repo("tests/fixtures/undo");
    // One grant per vendor: the fixture line, the source file, the format.
    let grants = [
        ("cloudtrail", "cloudtrail.jsonl", 1, "AWS_CLI", "aws"),
        ("k8s-audit", "k8s-audit.jsonl", 0, "KUBECTL", "kubectl"),
        ("gcp-audit", "gcp-audit.jsonl", 0, "GCLOUD", "gcloud"),
        ("okta", "okta.jsonl", 5, "CURL", "curl"),
        ("github-audit", "github-audit.jsonl", 0, "GH", "gh"),
        ("linux-auth", "linux-auth.log", 1, "SSH", "ssh"),
    ];
    let mut cfg = format!(
        "[state]\ndir = \"{}\"\ncheckpoint_interval = \"100ms\"\n\n[server]\nlisten = \"127.0.0.1:0\"\n\n[agents]\npatterns = [\"*agent-runner*\"]\n",
        d.join("state").display()
    );
    for (format, _, _, var, cli) in grants {
        std::fs::write(d.join(format!("{format}.log")), "").unwrap();
        let fake = stand_in(d, cli, &calls, &binding);
        cfg.push_str(&format!(
            "\n[[sources]]\npath = \"{}\"\nformat = \"{format}\"\n",
            d.join(format!("{format}.log")).display()
        ));
        cfg.push_str(&format!(
            "\n[[response.hooks]]\ntype = \"exec\"\ncommand = [\"env\", \"{var}={}\", \"OKTA_ORG_URL=https://example.okta.com\", \"OKTA_API_TOKEN=t\", {:?}]\nmax_attempts = 1\nformats = [{format:?}]\n",
            fake.display(),
            repo("deploy/hooks").join(format).display().to_string()
        ));
    }
    let daemon = crate::helpers::Daemon::start(d, &cfg);
    for (format, fixture, line, _, _) in grants {
        let text = std::fs::read_to_string(fixtures.join(fixture)).unwrap();
        let record = text.lines().nth(line).unwrap().to_owned();
        crate::helpers::append(&d.join(format!("{format}.log")), &[record]);
    }
    crate::helpers::wait_until(
        std::time::Duration::from_secs(30),
        "six executed revocations",
        || daemon.metric(r#"reachguard_revocations_total{status="executed"}"#) >= 6.0,
    );
    assert_eq!(
        daemon.metric(r#"reachguard_revocations_total{status="failed"}"#),
        0.0
    );
    let mut seen: Vec<String> = std::fs::read_to_string(&calls)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    seen.sort();
    let mut expected = vec![
        "aws iam detach-role-policy --role-name deployer --policy-arn arn:aws:iam::aws:policy/AdministratorAccess".to_owned(),
        r#"kubectl patch clusterrolebinding ops-admin --type json --patch [{"op":"test","path":"/subjects/0/kind","value":"User"},{"op":"test","path":"/subjects/0/name","value":"mallory"},{"op":"remove","path":"/subjects/0"}]"#.to_owned(),
        "gcloud projects remove-iam-policy-binding proj-1 --member=user:mallory@example.com --role=roles/owner --quiet".to_owned(),
        "curl --silent --show-error --fail --request DELETE --header @- --header Accept: application/json https://example.okta.com/api/v1/groups/00g1engall/users/00u1mallory".to_owned(),
        "gh api --method DELETE /orgs/acme/members/mallory".to_owned(),
        "ssh -- web-1 gpasswd --delete dave docker".to_owned(),
    ];
    expected.sort();
    assert_eq!(seen, expected);
}

#[test]
fn read_modify_write_undos_change_only_the_one_principal_and_take_already_gone_as_done() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let calls = d.join("calls.log");
    let read = |name: &str| std::fs::read_to_string(d.join(name)).unwrap_or_default();
    // A trust policy that trusts two accounts: only the one added goes.
    let trust = d.join("trust.json");
    std::fs::write(
        &trust,
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":["arn:aws:iam::111122223333:root","arn:aws:iam::444455556666:root"]},"Action":"sts:AssumeRole"}]}"#,
    )
    .unwrap();
    let aws = stand_in(d, "aws", &calls, &trust);
    // The stand-in answers `get`; the AWS CLI reads with `iam get-role`.
    std::fs::write(
        &aws,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"aws $*\" >> '{}'\nif [ \"$2\" = get-role ]; then cat '{}'; fi\nexit 0\n",
            calls.display(),
            trust.display()
        ),
    )
    .unwrap();
    let payload = r#"{"action":"revoke","grant_id":"ct:1:1","target":{"type":"iam_trust","role":"prod-admin","principal":"arn:aws:iam::444455556666:root"}}"#;
    let aws_env = aws.display().to_string();
    let (code, _, err) = hook("cloudtrail", &[], &[("AWS_CLI", &aws_env)], payload);
    assert_eq!(code, 0, "{err}");
    let log = read("calls.log");
    let update = log.lines().nth(1).unwrap();
    assert_eq!(
        update,
        r#"aws iam update-assume-role-policy --role-name prod-admin --policy-document {"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":["arn:aws:iam::111122223333:root"]},"Action":"sts:AssumeRole"}]}"#
    );
    // The principal is no longer trusted: a repeat reads, changes nothing, succeeds.
    std::fs::write(
        &trust,
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"sts:AssumeRole"}]}"#,
    )
    .unwrap();
    std::fs::remove_file(&calls).unwrap();
    let (code, _, err) = hook("cloudtrail", &[], &[("AWS_CLI", &aws_env)], payload);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("already gone"), "{err}");
    assert_eq!(read("calls.log").lines().count(), 1, "only the read");

    // A binding whose subject was already removed: only the read, exit 0.
    let binding = d.join("binding.json");
    std::fs::write(
        &binding,
        r#"{"kind":"RoleBinding","subjects":[{"kind":"User","name":"alice"}]}"#,
    )
    .unwrap();
    let kubectl = stand_in(d, "kubectl", &calls, &binding);
    std::fs::remove_file(&calls).unwrap();
    let payload = r#"{"action":"revoke","target":{"type":"k8s_binding","kind":"RoleBinding","namespace":"payments","name":"view","subject_kind":"User","subject_name":"mallory"}}"#;
    let (code, _, err) = hook(
        "k8s-audit",
        &[],
        &[("KUBECTL", &kubectl.display().to_string())],
        payload,
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        read("calls.log"),
        "kubectl get rolebinding view --namespace payments --output json\n"
    );

    // The record put mallory at index 0; the binding has changed since (the
    // guarded patch fails, as the API server's `test` op does): re-read, and
    // remove mallory where it is now.
    std::fs::write(
        &binding,
        r#"{"kind":"RoleBinding","subjects":[{"kind":"User","name":"alice"},{"kind":"User","name":"mallory"}]}"#,
    )
    .unwrap();
    std::fs::write(
        &kubectl,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"kubectl $*\" >> '{}'\ncase \"$*\" in *'\"op\":\"test\",\"path\":\"/subjects/0/kind\"'*) echo 'The request is invalid: testing value /subjects/0/name failed' >&2; exit 1;; esac\nif [ \"$1\" = get ]; then cat '{}'; fi\nexit 0\n",
            calls.display(),
            binding.display()
        ),
    )
    .unwrap();
    std::fs::remove_file(&calls).unwrap();
    let moved = payload.replace(
        r#""subject_name":"mallory""#,
        r#""subject_name":"mallory","subject_index":0"#,
    );
    let (code, _, err) = hook(
        "k8s-audit",
        &[],
        &[("KUBECTL", &kubectl.display().to_string())],
        &moved,
    );
    assert_eq!(code, 0, "{err}");
    let log = read("calls.log");
    let calls_made: Vec<&str> = log.lines().collect();
    assert_eq!(calls_made.len(), 3, "{log}");
    assert!(
        calls_made[0].starts_with("kubectl patch rolebinding view --namespace payments"),
        "{log}"
    );
    assert_eq!(
        calls_made[1],
        "kubectl get rolebinding view --namespace payments --output json"
    );
    assert_eq!(
        calls_made[2],
        r#"kubectl patch rolebinding view --namespace payments --type json --patch [{"op":"test","path":"/subjects/1/name","value":"mallory"},{"op":"remove","path":"/subjects/1"}]"#
    );
}
