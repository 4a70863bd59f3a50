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

/// Replays `fixture` as `format` with every actor matching `*agent-runner*` an
/// agent (and `root`: the actor of a `usermod` confirmation, which does not
/// log its caller) and an exec hook that records each payload; returns the
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
            "[state]\ndir = \"{}\"\n\n[agents]\npatterns = [\"*agent-runner*\", \"root\"]\n\n[response]\nmax_revocations_per_hour = 100000\n\n[[response.hooks]]\ntype = \"exec\"\ncommand = [\"sh\", \"-c\", {record:?}]\nmax_attempts = 1\n{hooks_formats}\n",
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

/// What a grant's revocation must come to.
enum Expect {
    /// The shipped hook's `--dry-run` output.
    Undo(String),
    /// `no_undo`, the reason containing this.
    NoUndo(&'static str),
}

fn undo(command: &str) -> Expect {
    Expect::Undo(format!("{command}\n"))
}

fn no_undo(why: &'static str) -> Expect {
    Expect::NoUndo(why)
}

/// The Okta hook's curl calls (`METHOD path` each) against the test org.
fn okta(calls: &[&str]) -> Expect {
    Expect::Undo(
        calls
            .iter()
            .map(|c| {
                let (method, path) = c.split_once(' ').unwrap();
                format!("curl --silent --show-error --fail --request {method} --header @- --header 'Accept: application/json' https://example.okta.com{path}\n")
            })
            .collect(),
    )
}

/// A JSON patch removing the subject at `index`, guarded by `test`s of its
/// kind and name, as the Kubernetes hooks print it.
fn k8s_patch(binding: &str, kind: &str, name: &str) -> String {
    format!(
        "kubectl patch {binding} --type json --patch '[{{\"op\":\"test\",\"path\":\"/subjects/0/kind\",\"value\":\"{kind}\"}},{{\"op\":\"test\",\"path\":\"/subjects/0/name\",\"value\":\"{name}\"}},{{\"op\":\"remove\",\"path\":\"/subjects/0\"}}]'"
    )
}

const OKTA_ENV: [(&str, &str); 1] = [("OKTA_ORG_URL", "https://example.okta.com")];

/// One grant kind end to end: the one line of `fixture` containing `record`,
/// alone in a log file → its decoder → the `unverified_agent_grant` for
/// `grant_id` with a revoke action → the payload the exec hook routed to
/// `format` receives → the shipped hook with `--dry-run` → `expect`, exit 0.
fn check_kind(format: &str, fixture: &str, record: &str, grant_id: &str, expect: Expect) {
    let text = std::fs::read_to_string(repo("tests/fixtures/undo").join(fixture)).unwrap();
    let lines: Vec<&str> = text.lines().filter(|l| l.contains(record)).collect();
    assert_eq!(lines.len(), 1, "{record:?} must name one line of {fixture}");
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("record.log");
    std::fs::write(&log, format!("{}\n", lines[0])).unwrap();
    let (findings, payloads, stderr) = replay(format, &[log], &format!("formats = [{format:?}]"));
    let Some(finding) = findings.get(grant_id) else {
        panic!("no unverified_agent_grant for {grant_id}: {findings:?}; {stderr}");
    };
    let action = &finding["action"];
    assert_eq!(action["kind"], "revoke", "{grant_id}: {action}");
    match expect {
        Expect::Undo(command) => {
            assert_eq!(action["status"], "executed", "{grant_id}: {action}");
            let payload = &payloads[grant_id];
            assert_eq!(payload["format"], format, "{grant_id}");
            assert!(payload["target"]["type"].is_string(), "{payload}");
            let env: &[(&str, &str)] = if format == "okta" { &OKTA_ENV } else { &[] };
            let (code, out, err) = hook(format, &["--dry-run"], env, &payload.to_string());
            assert_eq!(code, 0, "{grant_id}: {err}");
            assert_eq!(out, command, "{grant_id}: {payload}");
        }
        Expect::NoUndo(why) => {
            assert_eq!(action["status"], "no_undo", "{grant_id}: {action}");
            let reason = action["reason"].as_str().unwrap();
            assert!(
                reason.contains("no undo known") && reason.contains(why),
                "{grant_id}: {reason}"
            );
            assert!(
                !payloads.contains_key(grant_id),
                "{grant_id} reached a hook"
            );
        }
    }
}

/// One `#[test]` per grant kind of docs/formats.md's grant tables, and
/// [`GRANT_KINDS`], the list the doc is checked against.
macro_rules! grant_kinds {
    ($($test:ident: $format:literal $kind:literal, $fixture:literal $record:literal => $grant_id:literal, $expect:expr;)*) => {
        $(
            #[test]
            fn $test() {
                check_kind($format, $fixture, $record, $grant_id, $expect);
            }
        )*
        /// `(format, kind)` of every test above.
        const GRANT_KINDS: &[(&str, &str)] = &[$(($format, $kind)),*];
    };
}

const ADMIN: &str = "arn:aws:iam::aws:policy/AdministratorAccess";
const TRUST_UNDO: &str = r#"aws iam get-role --role-name prod-admin --query Role.AssumeRolePolicyDocument --output json
aws iam update-assume-role-policy --role-name prod-admin --policy-document '{"Statement":[{"Effect":"Deny","Principal":{"AWS":"arn:aws:iam::444455556666:root"},"Action":"sts:AssumeRole"}],"Version":"2012-10-17"}'"#;

grant_kinds! {
    cloudtrail_attach_user_policy: "cloudtrail" "AttachUserPolicy", "cloudtrail.jsonl" "ct-0001" => "ct:ct-0001",
        undo(&format!("aws iam detach-user-policy --user-name mallory --policy-arn {ADMIN}"));
    cloudtrail_attach_role_policy: "cloudtrail" "AttachRolePolicy", "cloudtrail.jsonl" "ct-0002" => "ct:ct-0002",
        undo(&format!("aws iam detach-role-policy --role-name deployer --policy-arn {ADMIN}"));
    cloudtrail_attach_group_policy: "cloudtrail" "AttachGroupPolicy", "cloudtrail.jsonl" "ct-0003" => "ct:ct-0003",
        undo(&format!("aws iam detach-group-policy --group-name eng-all --policy-arn {ADMIN}"));
    cloudtrail_put_user_policy: "cloudtrail" "PutUserPolicy", "cloudtrail.jsonl" "ct-0004" => "ct:ct-0004",
        undo("aws iam delete-user-policy --user-name mallory --policy-name full");
    cloudtrail_put_role_policy: "cloudtrail" "PutRolePolicy", "cloudtrail.jsonl" "ct-0015" => "ct:ct-0015",
        undo("aws iam delete-role-policy --role-name deployer --policy-name s3-all");
    cloudtrail_put_group_policy: "cloudtrail" "PutGroupPolicy", "cloudtrail.jsonl" "ct-0016" => "ct:ct-0016",
        undo("aws iam delete-group-policy --group-name eng-all --policy-name s3-all");
    cloudtrail_add_user_to_group: "cloudtrail" "AddUserToGroup", "cloudtrail.jsonl" "ct-0005" => "ct:ct-0005",
        undo("aws iam remove-user-from-group --group-name Admins --user-name dave");
    cloudtrail_update_assume_role_policy: "cloudtrail" "UpdateAssumeRolePolicy", "cloudtrail.jsonl" "ct-0006" => "ct:ct-0006:0",
        undo(TRUST_UNDO);
    cloudtrail_create_access_key: "cloudtrail" "CreateAccessKey", "cloudtrail.jsonl" "ct-0007" => "ct:ct-0007",
        undo("aws iam update-access-key --user-name alice --access-key-id AKIAIOSFODNN7EXAMPLE --status Inactive");
    cloudtrail_create_login_profile: "cloudtrail" "CreateLoginProfile", "cloudtrail.jsonl" "ct-0008" => "ct:ct-0008",
        undo("aws iam delete-login-profile --user-name alice");
    cloudtrail_update_login_profile: "cloudtrail" "UpdateLoginProfile", "cloudtrail.jsonl" "ct-0017" => "ct:ct-0017",
        no_undo("console password");
    cloudtrail_modify_snapshot_attribute: "cloudtrail" "ModifySnapshotAttribute", "cloudtrail.jsonl" "ct-0009" => "ct:ct-0009:0",
        undo("aws ec2 modify-snapshot-attribute --snapshot-id snap-0123456789abcdef0 --attribute createVolumePermission --operation-type remove --user-ids 444455556666");
    cloudtrail_modify_image_attribute: "cloudtrail" "ModifyImageAttribute", "cloudtrail.jsonl" "ct-0010" => "ct:ct-0010:0",
        undo("aws ec2 modify-image-attribute --image-id ami-0123456789abcdef0 --attribute launchPermission --operation-type remove --user-groups all");
    cloudtrail_modify_db_snapshot_attribute: "cloudtrail" "ModifyDBSnapshotAttribute", "cloudtrail.jsonl" "ct-0011" => "ct:ct-0011:0",
        undo("aws rds modify-db-snapshot-attribute --db-snapshot-identifier prod-db-snap --attribute-name restore --values-to-remove 444455556666");
    cloudtrail_modify_db_cluster_snapshot_attribute: "cloudtrail" "ModifyDBClusterSnapshotAttribute", "cloudtrail.jsonl" "ct-0012" => "ct:ct-0012:0",
        undo("aws rds modify-db-cluster-snapshot-attribute --db-cluster-snapshot-identifier prod-cluster-snap --attribute-name restore --values-to-remove all");
    cloudtrail_put_bucket_policy: "cloudtrail" "PutBucketPolicy", "cloudtrail.jsonl" "ct-0014" => "ct:ct-0014:0",
        no_undo("whole new policy or ACL");
    cloudtrail_put_bucket_acl: "cloudtrail" "PutBucketAcl", "cloudtrail.jsonl" "ct-0018" => "ct:ct-0018:0",
        no_undo("whole new policy or ACL");
    cloudtrail_put_key_policy: "cloudtrail" "PutKeyPolicy", "cloudtrail.jsonl" "ct-0019" => "ct:ct-0019:0",
        no_undo("whole new policy or ACL");
    cloudtrail_put_resource_policy: "cloudtrail" "PutResourcePolicy", "cloudtrail.jsonl" "ct-0020" => "ct:ct-0020:0",
        no_undo("whole new policy or ACL");
    cloudtrail_lambda_add_permission: "cloudtrail" "AddPermission*", "cloudtrail.jsonl" "ct-0013" => "ct:ct-0013:0",
        undo("aws lambda remove-permission --function-name billing-export --statement-id agent-share");

    k8s_cluster_role_binding: "k8s-audit" "clusterrolebindings", "k8s-audit.jsonl" "k8s-0001" => "k8s:k8s-0001:0",
        undo(&k8s_patch("clusterrolebinding ops-admin", "User", "mallory"));
    k8s_role_binding: "k8s-audit" "rolebindings", "k8s-audit.jsonl" "k8s-0002" => "k8s:k8s-0002:0",
        undo(&k8s_patch("rolebinding agent-suggested-view --namespace payments", "Group", "eng-all"));

    gcp_set_iam_policy: "gcp-audit" "SetIamPolicy", "gcp-audit.jsonl" "gcp-0001" => "gcp:gcp-0001:0",
        undo("gcloud projects remove-iam-policy-binding proj-1 --member=user:mallory@example.com --role=roles/owner --quiet");
    gcp_create_service_account_key: "gcp-audit" "CreateServiceAccountKey", "gcp-audit.jsonl" "gcp-0002" => "gcp:gcp-0002:0",
        undo("gcloud iam service-accounts keys delete 0123456789abcdef0123456789abcdef01234567 --iam-account deployer@proj-1.iam.gserviceaccount.com --quiet");
    gcp_gke_cluster_role_binding: "gcp-audit" "io.k8s.authorization.rbac.v1.clusterrolebindings", "gcp-audit.jsonl" "gcp-0003" => "gcp:gcp-0003:0",
        undo(&k8s_patch("clusterrolebinding gke-admin", "User", "mallory@example.com"));
    gcp_gke_role_binding: "gcp-audit" "io.k8s.authorization.rbac.v1.rolebindings", "gcp-audit.jsonl" "gcp-0004" => "gcp:gcp-0004:0",
        undo(&k8s_patch("rolebinding agent-edit --namespace payments", "ServiceAccount", "deployer"));

    okta_user_privilege_grant: "okta" "user.account.privilege.grant", "okta.jsonl" "okta-0001" => "okta:okta-0001:0",
        okta(&["DELETE /api/v1/users/00u1mallory/roles/KNKVARKSL5AUITKJJY"]);
    okta_group_privilege_grant: "okta" "group.privilege.grant", "okta.jsonl" "okta-0002" => "okta:okta-0002:0",
        okta(&["GET /api/v1/groups/00g1engall/roles", "DELETE /api/v1/groups/00g1engall/roles/<id of its READ_ONLY_ADMIN assignment>"]);
    okta_app_user_assignment: "okta" "application.user_membership.add", "okta.jsonl" "okta-0003" => "okta:okta-0003",
        okta(&["DELETE /api/v1/apps/0oa1payroll/users/00u1mallory"]);
    okta_app_group_assignment: "okta" "group.application_assignment.add", "okta.jsonl" "okta-0004" => "okta:okta-0004",
        okta(&["DELETE /api/v1/apps/0oa1payroll/groups/00g1engall"]);
    okta_support_impersonation: "okta" "user.session.impersonation.grant", "okta.jsonl" "okta-0005" => "okta:okta-0005",
        okta(&["POST /api/v1/org/privacy/oktaSupport/revoke"]);
    okta_group_membership: "okta" "group.user_membership.add", "okta.jsonl" "okta-0006" => "okta:okta-0006",
        okta(&["DELETE /api/v1/groups/00g1engall/users/00u1mallory"]);

    github_org_add_member: "github-audit" "org.add_member", "github-audit.jsonl" "gh-0001" => "gh:gh-0001",
        undo("gh api --method DELETE /orgs/acme/members/mallory");
    github_team_add_member: "github-audit" "team.add_member", "github-audit.jsonl" "gh-0002" => "gh:gh-0002",
        undo("gh api --method DELETE /orgs/acme/teams/sre/memberships/mallory");
    github_repo_add_member: "github-audit" "repo.add_member", "github-audit.jsonl" "gh-0003" => "gh:gh-0003",
        undo("gh api --method DELETE /repos/acme/payments/collaborators/mallory");
    github_team_add_repository: "github-audit" "team.add_repository", "github-audit.jsonl" "gh-0004" => "gh:gh-0004",
        undo("gh api --method DELETE /orgs/acme/teams/sre/repos/acme/payments");
    github_org_update_member_admin: "github-audit" "org.update_member", "github-audit.jsonl" "gh-0005" => "gh:gh-0005",
        undo("gh api --method PUT /orgs/acme/memberships/mallory --field role=member");
    github_business_add_admin: "github-audit" "business.add_admin", "github-audit.jsonl" "gh-0006" => "gh:gh-0006",
        no_undo("enterprise owner");
    github_team_promote_maintainer: "github-audit" "team.promote_maintainer", "github-audit.jsonl" "gh-0007" => "gh:gh-0007",
        undo("gh api --method PUT /orgs/acme/teams/sre/memberships/mallory --field role=member");
    github_organization_moderator: "github-audit" "organization_moderators.add_user", "github-audit.jsonl" "gh-0008" => "gh:gh-0008",
        no_undo("moderator");
    github_integration_installation: "github-audit" "integration_installation.create", "github-audit.jsonl" "gh-0009" => "gh:gh-0009",
        no_undo("installation");

    // The fixture's hosts are not this one: the calls go through ssh.
    linux_sudo_usermod: "linux-auth" "sudo: A : ... COMMAND=usermod -aG G U", "linux-auth.log" "usermod -aG sudo mallory" => "linux:web-1:1773824460000:sudo:mallory",
        undo("ssh -- web-1 gpasswd --delete mallory sudo");
    linux_sudo_gpasswd: "linux-auth" "sudo: A : ... COMMAND=gpasswd -a U G", "linux-auth.log" "gpasswd -a frank adm" => "linux:web-1:1773824580000:adm:frank",
        undo("ssh -- web-1 gpasswd --delete frank adm");
    linux_sudo_adduser: "linux-auth" "sudo: A : ... COMMAND=adduser U G", "linux-auth.log" "adduser gina docker" => "linux:web-1:1773824640000:docker:gina",
        undo("ssh -- web-1 gpasswd --delete gina docker");
    linux_usermod_confirmation: "linux-auth" "usermod[..]: add 'U' to group 'G'", "linux-auth.log" "add 'henry' to group" => "linux:web-3:1773824700000:wheel:henry",
        undo("ssh -- web-3 gpasswd --delete henry wheel");
    linux_gpasswd_confirmation: "linux-auth" "gpasswd[..]: user U added by A to group G", "linux-auth.log" "user dave added by" => "linux:web-1:1773824520000:docker:dave",
        undo("ssh -- web-1 gpasswd --delete dave docker");
    linux_auditd_user_cmd: "linux-auth" "type=USER_CMD ... cmd=usermod -aG G U", "linux-auth.log" "type=USER_CMD" => "linux:web-2:1773824760123:adm:ivan",
        undo("ssh -- web-2 gpasswd --delete ivan adm");
    linux_auditd_user_mgmt: "linux-auth" "type=USER_MGMT ... op=add-user-to-group", "linux-auth.log" "type=USER_MGMT" => "linux:web-2:1773824640123:wheel:erin",
        undo("ssh -- web-2 gpasswd --delete erin wheel");
}

/// The grant kinds of docs/formats.md: the first-column code spans (outside
/// parentheses) of every table whose second column is `event`, under the
/// section of each format.
fn documented_grant_kinds() -> Vec<(String, String)> {
    let doc = std::fs::read_to_string(repo("docs/formats.md")).unwrap();
    let mut format = String::new();
    let mut in_grants = false;
    let mut kinds = Vec::new();
    for line in doc.lines() {
        if let Some(h) = line.strip_prefix("## `") {
            format = h.trim_end_matches('`').to_owned();
            continue;
        }
        if !line.starts_with('|') {
            in_grants = false;
            continue;
        }
        let cells: Vec<&str> = line.trim_matches('|').split(" | ").map(str::trim).collect();
        if cells.get(1) == Some(&"event") {
            in_grants = true;
            continue;
        }
        if !in_grants || cells[0].starts_with("---") {
            continue;
        }
        let (mut depth, mut code, mut span) = (0, false, String::new());
        for c in cells[0].chars() {
            match c {
                '`' if code => {
                    if depth == 0 {
                        kinds.push((format.clone(), std::mem::take(&mut span)));
                    }
                    span.clear();
                    code = false;
                }
                '`' => code = true,
                _ if code => span.push(c),
                '(' => depth += 1,
                ')' => depth -= 1,
                _ => {}
            }
        }
    }
    kinds
}

#[test]
fn every_grant_kind_in_the_formats_doc_has_its_own_revocation_test() {
    let mut documented = documented_grant_kinds();
    documented.sort();
    let mut tested: Vec<(String, String)> = GRANT_KINDS
        .iter()
        .map(|(f, k)| (f.to_string(), k.to_string()))
        .collect();
    tested.sort();
    // Every vendor format's grants are documented in a table the parse finds.
    for format in [
        "cloudtrail",
        "k8s-audit",
        "okta",
        "gcp-audit",
        "github-audit",
        "linux-auth",
    ] {
        assert!(
            documented.iter().any(|(f, _)| f == format),
            "no grant table found for {format}"
        );
    }
    assert_eq!(documented, tested, "docs/formats.md grant tables vs tests");
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
    // What re-creating needs and the record never holds: refused, saying why.
    for (format, payload, why) in [
        (
            "cloudtrail",
            r#"{"action":"restore","target":{"type":"iam_login_profile","user":"alice"}}"#,
            "console password cannot be put back",
        ),
        (
            "gcp-audit",
            r#"{"action":"restore","target":{"type":"gcp_service_account_key","service_account":"deployer@proj-1.iam.gserviceaccount.com","key_id":"0123456789abcdef"}}"#,
            "cannot be brought back",
        ),
        (
            "cloudtrail",
            r#"{"action":"restore","target":{"type":"iam_inline_policy","principal_type":"user","principal":"mallory","policy_name":"full"}}"#,
            "its document is not in the payload",
        ),
        (
            "cloudtrail",
            r#"{"action":"restore","target":{"type":"lambda_permission","function":"billing-export","statement_id":"agent-share"}}"#,
            "principal and action are not in the payload",
        ),
    ] {
        let (code, out, err) = hook(format, &["--dry-run"], &[], payload);
        assert_eq!(code, 2, "{payload}: {out}");
        assert!(err.contains(why), "{payload}: {err}");
    }
}

/// Restores of the kinds whose record holds what re-creating needs, from the
/// payloads the decoder makes of the fixture records.
#[test]
fn inline_policies_and_lambda_permissions_are_restored_from_what_the_record_holds() {
    for (record, grant_id, expected) in [
        (
            "ct-0004",
            "ct:ct-0004",
            r#"aws iam put-user-policy --user-name mallory --policy-name full --policy-document '{"Statement":[{"Action":"*","Effect":"Allow","Resource":"*"}],"Version":"2012-10-17"}'"#,
        ),
        (
            "ct-0015",
            "ct:ct-0015",
            r#"aws iam put-role-policy --role-name deployer --policy-name s3-all --policy-document '{"Statement":[{"Action":"s3:*","Effect":"Allow","Resource":"*"}],"Version":"2012-10-17"}'"#,
        ),
        (
            "ct-0013",
            "ct:ct-0013:0",
            "aws lambda add-permission --function-name billing-export --statement-id agent-share --action lambda:InvokeFunction --principal 444455556666",
        ),
    ] {
        let text = std::fs::read_to_string(repo("tests/fixtures/undo/cloudtrail.jsonl")).unwrap();
        let line = text.lines().find(|l| l.contains(record)).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("record.log");
        std::fs::write(&log, format!("{line}\n")).unwrap();
        let (_, payloads, stderr) = replay("cloudtrail", &[log], "");
        let mut payload = payloads
            .get(grant_id)
            .unwrap_or_else(|| panic!("no payload for {grant_id}: {stderr}"))
            .clone();
        payload["action"] = "restore".into();
        let (code, out, err) = hook("cloudtrail", &["--dry-run"], &[], &payload.to_string());
        assert_eq!(code, 0, "{payload}: {err}");
        assert_eq!(out, format!("{expected}\n"), "{payload}");
    }
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

    // With the policy the record set in the target: while the role still has
    // it, the write is exactly the one --dry-run prints.
    let recorded = r#"{"Statement":[{"Action":"sts:AssumeRole","Effect":"Allow","Principal":{"AWS":["arn:aws:iam::111122223333:root","arn:aws:iam::444455556666:root"]}}],"Version":"2012-10-17"}"#;
    let payload = format!(
        r#"{{"action":"revoke","grant_id":"ct:1:1","target":{{"type":"iam_trust","role":"prod-admin","principal":"arn:aws:iam::444455556666:root","policy_document":{recorded}}}}}"#
    );
    let exact = r#"aws iam update-assume-role-policy --role-name prod-admin --policy-document {"Statement":[{"Action":"sts:AssumeRole","Effect":"Allow","Principal":{"AWS":["arn:aws:iam::111122223333:root"]}}],"Version":"2012-10-17"}"#;
    let (code, printed, err) = hook("cloudtrail", &["--dry-run"], &[], &payload);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        printed.lines().nth(1).unwrap(),
        exact.replace("--policy-document {", "--policy-document '{") + "'"
    );
    // IAM answers in its own key order: the same policy all the same.
    std::fs::write(
        &trust,
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":["arn:aws:iam::111122223333:root","arn:aws:iam::444455556666:root"]},"Action":"sts:AssumeRole"}]}"#,
    )
    .unwrap();
    std::fs::remove_file(&calls).unwrap();
    let (code, _, err) = hook("cloudtrail", &[], &[("AWS_CLI", &aws_env)], &payload);
    assert_eq!(code, 0, "{err}");
    assert_eq!(read("calls.log").lines().nth(1), Some(exact));
    // Someone trusted a third account since: the principal is removed from
    // what is there now, and the third account stays.
    std::fs::write(
        &trust,
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":["arn:aws:iam::111122223333:root","arn:aws:iam::444455556666:root","arn:aws:iam::777788889999:root"]},"Action":"sts:AssumeRole"}]}"#,
    )
    .unwrap();
    std::fs::remove_file(&calls).unwrap();
    let (code, _, err) = hook("cloudtrail", &[], &[("AWS_CLI", &aws_env)], &payload);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("changed since the record"), "{err}");
    assert_eq!(
        read("calls.log").lines().nth(1).unwrap(),
        r#"aws iam update-assume-role-policy --role-name prod-admin --policy-document {"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":["arn:aws:iam::111122223333:root","arn:aws:iam::777788889999:root"]},"Action":"sts:AssumeRole"}]}"#
    );

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

    // An Okta user's admin role: the DELETE of the encoded role id first; if
    // Okta answers with an error, the user's roles are listed and only its own
    // assignment of that type is deleted (not one its groups hold).
    let roles = d.join("roles.json");
    std::fs::write(
        &roles,
        r#"[{"id":"gra25fapn1prGTBKV0g4","type":"SUPER_ADMIN","assignmentType":"GROUP"},{"id":"ra1b8aahBZuGJRRa30g4","type":"SUPER_ADMIN","assignmentType":"USER"}]"#,
    )
    .unwrap();
    let curl = d.join("curl");
    std::fs::write(
        &curl,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"curl $*\" >> '{}'\ncase \"$*\" in *'DELETE'*KNKVARKSL5AUITKJJY) echo 'curl: (22) The requested URL returned error: 404' >&2; exit 22;; *'GET'*) cat '{}';; esac\nexit 0\n",
            calls.display(),
            roles.display()
        ),
    )
    .unwrap();
    let mut perms = std::fs::metadata(&curl).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&curl, perms).unwrap();
    std::fs::remove_file(&calls).unwrap();
    let payload = r#"{"action":"revoke","target":{"type":"okta_role","principal_type":"user","principal_id":"00u1mallory","role_type":"SUPER_ADMIN"}}"#;
    let curl_env = curl.display().to_string();
    let (code, _, err) = hook(
        "okta",
        &[],
        &[
            ("CURL", &curl_env),
            ("OKTA_ORG_URL", "https://example.okta.com"),
            ("OKTA_API_TOKEN", "t"),
        ],
        payload,
    );
    assert_eq!(code, 0, "{err}");
    let urls: Vec<String> = read("calls.log")
        .lines()
        .map(|l| {
            let method = l
                .split("--request ")
                .nth(1)
                .unwrap()
                .split(' ')
                .next()
                .unwrap();
            format!("{method} {}", l.rsplit(' ').next().unwrap())
        })
        .collect();
    assert_eq!(
        urls,
        [
            "DELETE https://example.okta.com/api/v1/users/00u1mallory/roles/KNKVARKSL5AUITKJJY",
            "GET https://example.okta.com/api/v1/users/00u1mallory/roles",
            "DELETE https://example.okta.com/api/v1/users/00u1mallory/roles/ra1b8aahBZuGJRRa30g4",
        ]
    );
}
