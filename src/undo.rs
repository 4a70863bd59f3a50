//! What undoing a grant takes, per vendor: the revocation payload's `target`.
//!
//! Decoders build a [`Target`] from the record (the binding's name and the one
//! subject, the policy ARN and the principal, the access key id from the
//! response, ...) and keep it on the `grant` / `membership` event; detection
//! carries it to the response stage, which puts it in the hook payload. A grant
//! whose undo cannot be told from its record gets [`Target::NoUndo`] with the
//! reason, and its finding says so instead of a hook failing on it. Native
//! events carry none unless a line says (`target`, an extension that the
//! cluster's internal native lines use to keep what the vendor decoder read);
//! hooks of native grants work from the flat fields.
//!
//! The JSON shape (`{"type": "...", ...}`) is documented in the README's Hooks
//! section; every string in it comes from a log and is hostile, so hooks
//! validate each field before building a vendor call.

use serde::{Deserialize, Serialize};

use crate::format::Format;

/// Exactly what to undo. The `type` tag names the vendor object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Target {
    /// A Kubernetes RoleBinding / ClusterRoleBinding: remove one subject.
    K8sBinding {
        /// `RoleBinding` or `ClusterRoleBinding`.
        kind: String,
        /// The binding's namespace (`RoleBinding` only).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        namespace: Option<String>,
        /// The binding's name.
        name: String,
        /// The subject's kind: `User`, `Group` or `ServiceAccount`.
        subject_kind: String,
        /// The subject's name.
        subject_name: String,
        /// The subject's namespace (`ServiceAccount` only).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        subject_namespace: Option<String>,
        /// Where the subject stood in the binding's `subjects` after the
        /// change: hooks patch that index, guarded by a test of the subject.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        subject_index: Option<usize>,
    },
    /// An IAM managed policy attached to a user, role or group.
    IamPolicyAttachment {
        /// `user`, `role` or `group`.
        principal_type: String,
        /// The principal's name.
        principal: String,
        /// The policy ARN.
        policy_arn: String,
    },
    /// An IAM inline policy put on a user, role or group.
    IamInlinePolicy {
        /// `user`, `role` or `group`.
        principal_type: String,
        /// The principal's name.
        principal: String,
        /// The inline policy's name.
        policy_name: String,
        /// The document the record put (`requestParameters.policyDocument`),
        /// so a restore can put it back.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        policy_document: Option<serde_json::Value>,
    },
    /// An IAM user added to an IAM group.
    IamGroupMembership {
        /// The group.
        group: String,
        /// The user.
        user: String,
    },
    /// A principal a role's trust policy now allows to assume it.
    IamTrust {
        /// The role.
        role: String,
        /// The principal as the policy writes it (ARN, account, service, `*`).
        principal: String,
        /// The trust policy the record set: the undo is this document without
        /// `principal`, written only while the role's policy is still this one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        policy_document: Option<serde_json::Value>,
    },
    /// An access key created for another user.
    IamAccessKey {
        /// The user the key belongs to.
        user: String,
        /// The key id from the response.
        access_key_id: String,
    },
    /// A console password created (or reset) for another user.
    IamLoginProfile {
        /// The user.
        user: String,
    },
    /// An EC2 snapshot or AMI shared with an account (or everyone, `all`).
    Ec2Share {
        /// `snapshot` or `image`.
        resource_type: String,
        /// The snapshot or image id.
        id: String,
        /// The account id, or `all`.
        account: String,
    },
    /// An RDS DB or cluster snapshot shared with an account (or `all`).
    RdsShare {
        /// `db-snapshot` or `db-cluster-snapshot`.
        resource_type: String,
        /// The snapshot identifier.
        id: String,
        /// The account id, or `all`.
        account: String,
    },
    /// A Lambda resource-policy statement.
    LambdaPermission {
        /// The function.
        function: String,
        /// The statement id.
        statement_id: String,
        /// The version or alias the statement was added to (`qualifier`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        qualifier: Option<String>,
        /// What a restore re-adds: the request's `principal`, `action`,
        /// `sourceArn`, `sourceAccount`, `principalOrgID` and
        /// `functionUrlAuthType`, as logged.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        permission: Option<LambdaStatement>,
    },
    /// One member of one role binding of a GCP IAM policy.
    GcpBinding {
        /// The `resourceName` (`projects/p1`, `organizations/1`, `folders/2`, ...).
        resource: String,
        /// The role (`roles/owner`).
        role: String,
        /// The member as IAM writes it (`user:alice@example.com`).
        member: String,
    },
    /// A service-account key created by the caller.
    GcpServiceAccountKey {
        /// The service account's e-mail.
        service_account: String,
        /// The key id.
        key_id: String,
    },
    /// An Okta admin role given to a user or group.
    OktaRole {
        /// `user` or `group`.
        principal_type: String,
        /// The user's or group's Okta id.
        principal_id: String,
        /// The role type of Okta's API (`SUPER_ADMIN`, `APP_ADMIN`, ...).
        role_type: String,
    },
    /// An Okta app assigned to a user or group.
    OktaApp {
        /// `user` or `group`.
        principal_type: String,
        /// The user's or group's Okta id.
        principal_id: String,
        /// The app instance's Okta id.
        app_id: String,
    },
    /// An Okta user added to a group.
    OktaGroupMembership {
        /// The group's Okta id.
        group_id: String,
        /// The user's Okta id.
        user_id: String,
    },
    /// Okta Support allowed to impersonate users.
    OktaSupportAccess {},
    /// A member of a GitHub organisation.
    GithubOrgMember {
        /// The organisation.
        org: String,
        /// The user.
        user: String,
    },
    /// A member of a GitHub team.
    GithubTeamMember {
        /// The organisation.
        org: String,
        /// The team slug.
        team: String,
        /// The user.
        user: String,
    },
    /// An outside or direct collaborator on a repository.
    GithubRepoCollaborator {
        /// The repository's owner.
        owner: String,
        /// The repository.
        repo: String,
        /// The user.
        user: String,
    },
    /// A team given access to a repository.
    GithubTeamRepo {
        /// The organisation.
        org: String,
        /// The team slug.
        team: String,
        /// The repository's owner.
        owner: String,
        /// The repository.
        repo: String,
    },
    /// An organisation member made owner (`admin`).
    GithubOrgAdmin {
        /// The organisation.
        org: String,
        /// The user.
        user: String,
    },
    /// A team member made maintainer.
    GithubTeamMaintainer {
        /// The organisation.
        org: String,
        /// The team slug.
        team: String,
        /// The user.
        user: String,
    },
    /// A user added to a group on a Linux host.
    LinuxGroupMembership {
        /// The host, as the log names it.
        host: String,
        /// The group.
        group: String,
        /// The user.
        user: String,
    },
    /// The record does not say enough to undo exactly this grant.
    NoUndo {
        /// Why (one sentence).
        reason: String,
    },
}

/// The parameters of a Lambda `AddPermission` request, enough to add the same
/// statement again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LambdaStatement {
    /// Who may call (an account id, a service, an ARN, `*`).
    pub principal: String,
    /// The action (`lambda:InvokeFunction`).
    pub action: String,
    /// `sourceArn`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_arn: Option<String>,
    /// `sourceAccount`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_account: Option<String>,
    /// `principalOrgID`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal_org_id: Option<String>,
    /// `functionUrlAuthType`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function_url_auth_type: Option<String>,
}

impl Target {
    /// A target that says no undo is known, and why.
    pub fn no_undo(reason: &str) -> Option<Box<Target>> {
        Some(Box::new(Target::NoUndo {
            reason: reason.to_owned(),
        }))
    }

    /// Boxes a target for an event.
    pub fn boxed(self) -> Option<Box<Target>> {
        Some(Box::new(self))
    }

    /// The input format whose shipped hook undoes this target (GKE bindings,
    /// read in `gcp-audit`, are Kubernetes bindings all the same); `None` for
    /// [`Target::NoUndo`].
    pub fn vendor_format(&self) -> Option<Format> {
        Some(match self {
            Target::K8sBinding { .. } => Format::K8sAudit,
            Target::IamPolicyAttachment { .. }
            | Target::IamInlinePolicy { .. }
            | Target::IamGroupMembership { .. }
            | Target::IamTrust { .. }
            | Target::IamAccessKey { .. }
            | Target::IamLoginProfile { .. }
            | Target::Ec2Share { .. }
            | Target::RdsShare { .. }
            | Target::LambdaPermission { .. } => Format::Cloudtrail,
            Target::GcpBinding { .. } | Target::GcpServiceAccountKey { .. } => Format::GcpAudit,
            Target::OktaRole { .. }
            | Target::OktaApp { .. }
            | Target::OktaGroupMembership { .. }
            | Target::OktaSupportAccess {} => Format::Okta,
            Target::GithubOrgMember { .. }
            | Target::GithubTeamMember { .. }
            | Target::GithubRepoCollaborator { .. }
            | Target::GithubTeamRepo { .. }
            | Target::GithubOrgAdmin { .. }
            | Target::GithubTeamMaintainer { .. } => Format::GithubAudit,
            Target::LinuxGroupMembership { .. } => Format::LinuxAuth,
            Target::NoUndo { .. } => return None,
        })
    }

    /// The reason no undo is known, for [`Target::NoUndo`].
    pub fn no_undo_reason(&self) -> Option<&str> {
        match self {
            Target::NoUndo { reason } => Some(reason),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_serialise_with_a_type_tag_and_read_back() {
        let t = Target::K8sBinding {
            kind: "ClusterRoleBinding".into(),
            namespace: None,
            name: "ops-admin".into(),
            subject_kind: "User".into(),
            subject_name: "mallory".into(),
            subject_namespace: None,
            subject_index: None,
        };
        let v = serde_json::to_value(&t).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"type":"k8s_binding","kind":"ClusterRoleBinding","name":"ops-admin",
                "subject_kind":"User","subject_name":"mallory"})
        );
        assert_eq!(serde_json::from_value::<Target>(v).unwrap(), t);
        assert_eq!(t.vendor_format(), Some(Format::K8sAudit));
        let n = Target::no_undo("why").unwrap();
        assert_eq!(n.no_undo_reason(), Some("why"));
        assert_eq!(n.vendor_format(), None);
        assert_eq!(
            serde_json::to_string(&Target::OktaSupportAccess {}).unwrap(),
            r#"{"type":"okta_support_access"}"#
        );
    }
}
