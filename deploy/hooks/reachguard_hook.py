"""Shared code of reachguard's exec hooks (deploy/hooks/<format>).

Each hook reads the revocation payload (JSON) on stdin, takes its "target"
(README, "Hooks": exactly what to undo, per vendor), and turns it into vendor
calls: argv lists, never a shell. With --dry-run it prints each call
(shlex-quoted, one per line) and changes nothing. Every string in a target
comes from a log and is hostile: each is checked against the vendor's own
naming rules, and none may start with "-" (it would read as an option).

Exit status: 0 done (or printed; a grant already gone counts as done), 1 a
vendor call failed, 2 a payload, target or usage the hook cannot handle.
"""
import base64
import json
import os
import re
import shlex
import socket
import subprocess
import sys

# ---- checks on hostile strings ----

AWS_NAME = re.compile(r"^[\w+=,.@-]{1,128}$")
POLICY_ARN = re.compile(r"^arn:aws[a-z-]*:iam::(\d{12}|aws):policy/[\w+=,.@/-]{1,512}$")
ACCOUNT = re.compile(r"^(\d{12}|all)$")
SNAPSHOT = re.compile(r"^snap-[0-9a-f]{8,32}$")
IMAGE = re.compile(r"^ami-[0-9a-f]{8,32}$")
RDS_ID = re.compile(r"^[A-Za-z][\w:.-]{0,254}$")
ACCESS_KEY = re.compile(r"^[A-Z0-9]{16,128}$")
LAMBDA_FN = re.compile(r"^[\w:.-]{1,170}$")
STATEMENT = re.compile(r"^[\w-]{1,100}$")
QUALIFIER = re.compile(r"^(\$LATEST|[\w-]{1,128})$")
LAMBDA_ACTION = re.compile(r"^lambda:[A-Za-z*]{1,64}$")
SOURCE_ARN = re.compile(r"^arn:aws[a-z-]*:[\w+=,.@:/*-]{1,1024}$")
ACCOUNT_ID = re.compile(r"^\d{12}$")
ORG_ID = re.compile(r"^o-[a-z0-9]{10,32}$")
URL_AUTH = re.compile(r"^(NONE|AWS_IAM)$")
TRUST_PRINCIPAL = re.compile(r"^(\*|\d{12}|arn:aws[a-z-]*:[\w+=,.@:/*-]{1,2000}|[a-z0-9.-]{1,200}\.amazonaws\.com)$")
K8S_NAME = re.compile(r"^[A-Za-z0-9]([\w.:@-]{0,251}[A-Za-z0-9])?$")
K8S_SUBJECT = re.compile(r"^[^\x00-\x1f\x7f]{1,1024}$")
GCP_RESOURCE = re.compile(r"^(projects|folders|organizations)/[\w.:-]{1,128}(/(buckets|serviceAccounts)/[\w.@-]{1,256})?$")
GCP_ROLE = re.compile(r"^(roles|projects/[\w.:-]{1,128}/roles|organizations/\d{1,32}/roles)/[\w.]{1,256}$")
GCP_MEMBER = re.compile(r"^((user|serviceAccount|group|domain):[\w.+@-]{1,256}|allUsers|allAuthenticatedUsers)$")
GCP_KEY = re.compile(r"^[0-9a-f]{8,64}$")
SERVICE_ACCOUNT = re.compile(r"^[\w.-]{1,100}@[\w.-]{1,200}$")
OKTA_ID = re.compile(r"^[A-Za-z0-9]{1,64}$")
GITHUB_NAME = re.compile(r"^[A-Za-z0-9][\w.-]{0,99}(\[bot\])?$")
UNIX_NAME = re.compile(r"^[A-Za-z_][\w.-]{0,31}\$?$")
HOST = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]{0,252}$")

OKTA_ROLE_TYPES = ("SUPER_ADMIN", "ORG_ADMIN", "APP_ADMIN", "USER_ADMIN", "HELP_DESK_ADMIN", "READ_ONLY_ADMIN",
                   "MOBILE_ADMIN", "API_ACCESS_MANAGEMENT_ADMIN", "REPORT_ADMIN", "GROUP_MEMBERSHIP_ADMIN")


class Refused(Exception):
    """A payload or target the hook cannot handle (exit 2)."""


def field(target, key, pattern):
    value = target.get(key)
    if not isinstance(value, str) or not value:
        raise Refused(f"the target has no {key}")
    if value.startswith("-") or not pattern.match(value):
        raise Refused(f"{key} {value!r} is not a valid name here")
    return value


def one_of(target, key, allowed):
    value = target.get(key)
    if value not in allowed:
        raise Refused(f"{key} {value!r} is not one of {', '.join(allowed)}")
    return value


def policy_document(target):
    """The policy document a target carries (a JSON object with statements),
    or None."""
    doc = target.get("policy_document")
    if not isinstance(doc, dict) or not isinstance(doc.get("Statement"), (list, dict)):
        return None
    return doc


def compact(doc):
    return json.dumps(doc, separators=(",", ":"))


# ---- one step of an undo ----

class Call:
    """A vendor command: argv, optional stdin, and what its failure output
    says when the grant is already gone (which counts as done)."""

    def __init__(self, argv, gone=(), stdin=None):
        self.argv = argv
        self.gone = gone
        self.stdin = stdin

    def show(self):
        return shlex.join(self.argv)

    def run(self, name):
        print(f"{name}: {self.show()}", file=sys.stderr)
        try:
            done = subprocess.run(self.argv, input=self.stdin, capture_output=True, text=True)
        except OSError as e:
            print(f"{name}: cannot run {self.argv[0]}: {e}", file=sys.stderr)
            return False
        sys.stderr.write(done.stderr)
        if done.returncode == 0:
            self.output = done.stdout
            return True
        if any(marker in done.stderr or marker in done.stdout for marker in self.gone):
            print(f"{name}: already gone; the revocation stands", file=sys.stderr)
            self.output = ""
            return True
        return False


class ReadModifyWrite:
    """Reads an object, changes it, writes it back: for undos the vendor only
    offers as a whole-object update. --dry-run prints the read and the write
    with the document described, since it is not read."""

    def __init__(self, read, write, describe):
        self.read = read  # a Call
        self.write = write  # fn(stdout of read) -> Call or None (nothing to change)
        self.describe = describe  # the write, for --dry-run

    def show(self):
        return self.read.show() + "\n" + self.describe

    def run(self, name):
        if not self.read.run(name):
            return False
        call = self.write(getattr(self.read, "output", ""))
        if call is None:
            print(f"{name}: already gone; the revocation stands", file=sys.stderr)
            return True
        return call.run(name)


class WhileUnchanged:
    """Reads an object and writes the exact change computed from the record
    while the object is still as the record left it; if it changed since, the
    change is computed from what was read instead (`write`, as in
    ReadModifyWrite). --dry-run prints the read and the exact write."""

    def __init__(self, read, recorded, call, write):
        self.read = read
        self.recorded = recorded
        self.call = call
        self.write = write

    def show(self):
        return self.read.show() + "\n" + self.call.show()

    def run(self, name):
        if not self.read.run(name):
            return False
        text = getattr(self.read, "output", "")
        if text and json.loads(text) == self.recorded:
            return self.call.run(name)
        print(f"{name}: the object changed since the record; changing what is there now", file=sys.stderr)
        call = self.write(text)
        if call is None:
            print(f"{name}: already gone; the revocation stands", file=sys.stderr)
            return True
        return call.run(name)


class FirstOr:
    """A call that undoes the grant when the object is as the record left it,
    and the read-modify-write to fall back on when it is not."""

    def __init__(self, call, fallback):
        self.call = call
        self.fallback = fallback

    def show(self):
        return self.call.show()

    def run(self, name):
        if self.call.run(name):
            return True
        print(f"{name}: the object changed since the record; reading it again", file=sys.stderr)
        return self.fallback.run(name)


# ---- AWS ----

def aws(*args):
    return [os.environ.get("AWS_CLI") or "aws", *args]


AWS_GONE = ("NoSuchEntity", "ResourceNotFoundException")


def aws_plan(t, revoke):
    kind = t["type"]
    if kind == "iam_policy_attachment":
        ptype = one_of(t, "principal_type", ("user", "role", "group"))
        name = field(t, "principal", AWS_NAME)
        arn = field(t, "policy_arn", POLICY_ARN)
        verb = ("detach" if revoke else "attach") + f"-{ptype}-policy"
        return [Call(aws("iam", verb, f"--{ptype}-name", name, "--policy-arn", arn), AWS_GONE if revoke else ())]
    if kind == "iam_inline_policy":
        ptype = one_of(t, "principal_type", ("user", "role", "group"))
        name = field(t, "principal", AWS_NAME)
        policy = field(t, "policy_name", AWS_NAME)
        if not revoke:
            doc = policy_document(t)
            if doc is None:
                raise Refused("a deleted inline policy cannot be put back: its document is not in the payload")
            return [Call(aws("iam", f"put-{ptype}-policy", f"--{ptype}-name", name, "--policy-name", policy,
                             "--policy-document", compact(doc)))]
        return [Call(aws("iam", f"delete-{ptype}-policy", f"--{ptype}-name", name, "--policy-name", policy), AWS_GONE)]
    if kind == "iam_group_membership":
        group = field(t, "group", AWS_NAME)
        user = field(t, "user", AWS_NAME)
        verb = "remove-user-from-group" if revoke else "add-user-to-group"
        return [Call(aws("iam", verb, "--group-name", group, "--user-name", user), AWS_GONE if revoke else ())]
    if kind == "iam_trust":
        role = field(t, "role", AWS_NAME)
        principal = field(t, "principal", TRUST_PRINCIPAL)
        read = Call(aws("iam", "get-role", "--role-name", role, "--query", "Role.AssumeRolePolicyDocument", "--output", "json"))

        def update(doc):
            return Call(aws("iam", "update-assume-role-policy", "--role-name", role, "--policy-document", compact(doc)))

        def write(doc_text):
            doc = json.loads(doc_text or "{}")
            changed = trust_without(doc, principal) if revoke else trust_with(doc, principal)
            return None if changed is None else update(changed)
        recorded = policy_document(t)
        exact = trust_without(recorded, principal) if revoke and recorded is not None else None
        if exact is not None:
            # The record holds the policy it set: the undo is that policy
            # without the principal, written only while the role still has it
            # (IAM offers no conditional write, so the hook compares first).
            return [WhileUnchanged(read, recorded, update(exact), write)]
        what = "without" if revoke else "with"
        return [ReadModifyWrite(read, write,
                                shlex.join(aws("iam", "update-assume-role-policy", "--role-name", role, "--policy-document"))
                                + f" <that document {what} {principal}>")]
    if kind == "iam_access_key":
        user = field(t, "user", AWS_NAME)
        key = field(t, "access_key_id", ACCESS_KEY)
        status = "Inactive" if revoke else "Active"
        return [Call(aws("iam", "update-access-key", "--user-name", user, "--access-key-id", key, "--status", status),
                     AWS_GONE if revoke else ())]
    if kind == "iam_login_profile":
        user = field(t, "user", AWS_NAME)
        if not revoke:
            raise Refused("a deleted console password cannot be put back; set a new one by hand")
        return [Call(aws("iam", "delete-login-profile", "--user-name", user), AWS_GONE)]
    if kind == "ec2_share":
        rtype = one_of(t, "resource_type", ("snapshot", "image"))
        account = field(t, "account", ACCOUNT)
        op = "remove" if revoke else "add"
        if rtype == "snapshot":
            sid = field(t, "id", SNAPSHOT)
            who = ["--group-names", "all"] if account == "all" else ["--user-ids", account]
            return [Call(aws("ec2", "modify-snapshot-attribute", "--snapshot-id", sid, "--attribute",
                             "createVolumePermission", "--operation-type", op, *who))]
        iid = field(t, "id", IMAGE)
        who = ["--user-groups", "all"] if account == "all" else ["--user-ids", account]
        return [Call(aws("ec2", "modify-image-attribute", "--image-id", iid, "--attribute", "launchPermission",
                         "--operation-type", op, *who))]
    if kind == "rds_share":
        rtype = one_of(t, "resource_type", ("db-snapshot", "db-cluster-snapshot"))
        sid = field(t, "id", RDS_ID)
        account = field(t, "account", ACCOUNT)
        values = "--values-to-remove" if revoke else "--values-to-add"
        return [Call(aws("rds", f"modify-{rtype}-attribute", f"--{rtype}-identifier", sid,
                         "--attribute-name", "restore", values, account), ("DBSnapshotNotFound",) if revoke else ())]
    if kind == "lambda_permission":
        fn = field(t, "function", LAMBDA_FN)
        sid = field(t, "statement_id", STATEMENT)
        qualifier = ["--qualifier", field(t, "qualifier", QUALIFIER)] if "qualifier" in t else []
        if revoke:
            return [Call(aws("lambda", "remove-permission", "--function-name", fn, "--statement-id", sid, *qualifier),
                         AWS_GONE)]
        perm = t.get("permission")
        if not isinstance(perm, dict):
            raise Refused("a removed Lambda permission cannot be put back: its principal and action are not in the payload")
        argv = ["lambda", "add-permission", "--function-name", fn, "--statement-id", sid,
                "--action", field(perm, "action", LAMBDA_ACTION), "--principal", field(perm, "principal", TRUST_PRINCIPAL)]
        for key, flag, pattern in (("source_arn", "--source-arn", SOURCE_ARN),
                                   ("source_account", "--source-account", ACCOUNT_ID),
                                   ("principal_org_id", "--principal-org-id", ORG_ID),
                                   ("function_url_auth_type", "--function-url-auth-type", URL_AUTH)):
            if key in perm:
                argv += [flag, field(perm, key, pattern)]
        return [Call(aws(*argv, *qualifier))]
    raise Refused(f"target type {kind!r} is not an AWS grant")


def _principals(stmt):
    p = stmt.get("Principal")
    if p == "*":
        return ["*"]
    if not isinstance(p, dict):
        return []
    out = []
    for v in p.values():
        out.extend(v if isinstance(v, list) else [v])
    return out


def same_principal(written, principal):
    """IAM stores a bare account id of a trust policy as its root ARN."""
    if not isinstance(written, str):
        return False
    if written == principal:
        return True
    for a, b in ((written, principal), (principal, written)):
        if ACCOUNT_ID.match(a) and re.match(r"^arn:aws[a-z-]*:iam::" + a + r":root$", b):
            return True
    return False


def trusts(stmt, principal):
    return stmt.get("Effect") == "Allow" and any(same_principal(p, principal) for p in _principals(stmt))


def trust_without(doc, principal):
    """The trust policy with `principal` taken out of every Allow statement
    (a statement left with no principal is dropped); None if it is not there.
    A policy left with no statement denies `principal` instead: IAM refuses a
    trust policy without statements."""
    stmts = doc.get("Statement")
    stmts = stmts if isinstance(stmts, list) else [stmts] if isinstance(stmts, dict) else []
    removed = None
    kept = []
    for s in stmts:
        if not isinstance(s, dict) or not trusts(s, principal):
            kept.append(s)
            continue
        p = s.get("Principal")
        if p == "*":
            removed = removed or (s, "*")
            continue
        rest = {}
        for k, v in p.items():
            vals = [x for x in (v if isinstance(v, list) else [v]) if not same_principal(x, principal)]
            if len(vals) < len(v if isinstance(v, list) else [v]):
                removed = removed or (s, {k: principal})
            if vals:
                rest[k] = vals if isinstance(v, list) else vals[0]
        if rest:
            kept.append({**s, "Principal": rest})
    if removed is None:
        return None
    if not kept:
        stmt, who = removed
        kept = [{"Effect": "Deny", "Principal": who, "Action": stmt.get("Action", "sts:AssumeRole")}]
    return {**doc, "Statement": kept}


def trust_with(doc, principal):
    stmts = doc.get("Statement")
    stmts = stmts if isinstance(stmts, list) else [stmts] if isinstance(stmts, dict) else []
    if any(isinstance(s, dict) and trusts(s, principal) for s in stmts):
        return None
    # The Deny a revocation left in place of an emptied policy goes first.
    stmts = [s for s in stmts if not (isinstance(s, dict) and s.get("Effect") == "Deny"
                                      and [str(x) for x in _principals(s)] == [principal])]
    key = "Service" if principal.endswith(".amazonaws.com") else "AWS"
    added = {"Effect": "Allow", "Principal": "*" if principal == "*" else {key: principal},
             "Action": "sts:AssumeRole"}
    return {**doc, "Statement": stmts + [added]}


# ---- Kubernetes ----

def kubectl(*args):
    argv = [os.environ.get("KUBECTL") or "kubectl"]
    context = os.environ.get("KUBECTL_CONTEXT")
    if context:
        if context.startswith("-"):
            raise Refused("KUBECTL_CONTEXT must not start with '-'")
        argv += ["--context", context]
    return argv + list(args)


def k8s_plan(t, revoke):
    if t["type"] != "k8s_binding":
        raise Refused(f"target type {t['type']!r} is not a Kubernetes binding")
    kind = one_of(t, "kind", ("RoleBinding", "ClusterRoleBinding"))
    name = field(t, "name", K8S_NAME)
    scope = []
    if kind == "RoleBinding":
        scope = ["--namespace", field(t, "namespace", K8S_NAME)]
    subject = {"kind": one_of(t, "subject_kind", ("User", "Group", "ServiceAccount")),
               "name": field(t, "subject_name", K8S_SUBJECT)}
    if subject["kind"] == "ServiceAccount":
        subject["namespace"] = field(t, "subject_namespace", K8S_NAME)
    else:
        subject["apiGroup"] = "rbac.authorization.k8s.io"
    resource = kind.lower()
    read = Call(kubectl("get", resource, name, *scope, "--output", "json"), ("NotFound",) if revoke else ())

    def same(s):
        return all(s.get(k) == v for k, v in subject.items() if k != "apiGroup")

    def write(text):
        subjects = (json.loads(text or "{}").get("subjects") or []) if text else []
        idx = [i for i, s in enumerate(subjects) if same(s)]
        if revoke:
            if not idx:
                return None
            # `test` first: the patch applies only if the subject is still at
            # that index (a concurrent edit makes it fail instead of removing
            # someone else).
            patch = []
            for i in reversed(idx):
                patch += [{"op": "test", "path": f"/subjects/{i}/name", "value": subject["name"]},
                          {"op": "remove", "path": f"/subjects/{i}"}]
        else:
            if idx:
                return None
            patch = [{"op": "add", "path": "/subjects/-" if subjects else "/subjects",
                      "value": subject if subjects else [subject]}]
        return Call(kubectl("patch", resource, name, *scope, "--type", "json", "--patch",
                            json.dumps(patch, separators=(",", ":"))))

    verb = "removed" if revoke else "added"
    describe = shlex.join(kubectl("patch", resource, name, *scope, "--type", "json", "--patch")) + \
        f" <JSON patch: subject {json.dumps(subject, separators=(',', ':'))} {verb}>"
    rmw = ReadModifyWrite(read, write, describe)
    index = t.get("subject_index")
    if revoke and isinstance(index, int) and not isinstance(index, bool) and 0 <= index < 100000:
        # Where the record left the subject: remove it there if it is still
        # there (the `test` ops make the patch fail otherwise), else re-read.
        patch = [{"op": "test", "path": f"/subjects/{index}/kind", "value": subject["kind"]},
                 {"op": "test", "path": f"/subjects/{index}/name", "value": subject["name"]},
                 {"op": "remove", "path": f"/subjects/{index}"}]
        call = Call(kubectl("patch", resource, name, *scope, "--type", "json", "--patch",
                            json.dumps(patch, separators=(",", ":"))), ("NotFound",))
        return [FirstOr(call, rmw)]
    return [rmw]


# ---- GCP ----

def gcloud(*args):
    return [os.environ.get("GCLOUD") or "gcloud", *args]


GCP_GONE = ("not found", "NOT_FOUND")


def gcp_plan(t, revoke):
    kind = t["type"]
    if kind == "k8s_binding":
        return k8s_plan(t, revoke)
    if kind == "gcp_service_account_key":
        sa = field(t, "service_account", SERVICE_ACCOUNT)
        key = field(t, "key_id", GCP_KEY)
        if not revoke:
            raise Refused("a deleted service-account key cannot be brought back")
        return [Call(gcloud("iam", "service-accounts", "keys", "delete", key, "--iam-account", sa, "--quiet"),
                     GCP_GONE)]
    if kind != "gcp_binding":
        raise Refused(f"target type {kind!r} is not a GCP grant")
    resource = field(t, "resource", GCP_RESOURCE)
    role = field(t, "role", GCP_ROLE)
    member = field(t, "member", GCP_MEMBER)
    verb = "remove-iam-policy-binding" if revoke else "add-iam-policy-binding"
    parts = resource.split("/")
    if len(parts) == 4 and parts[2] == "buckets":
        cmd = ["storage", "buckets", verb, f"gs://{parts[3]}"]
    elif len(parts) == 4:
        cmd = ["iam", "service-accounts", verb, parts[3], f"--project={parts[1]}"]
    elif parts[0] == "projects":
        cmd = ["projects", verb, parts[1]]
    elif parts[0] == "folders":
        cmd = ["resource-manager", "folders", verb, parts[1]]
    else:
        cmd = ["organizations", verb, parts[1]]
    return [Call(gcloud(*cmd, f"--member={member}", f"--role={role}", "--quiet"), GCP_GONE if revoke else ())]


# ---- Okta ----

def okta_plan(t, revoke):
    base = (os.environ.get("OKTA_ORG_URL") or "").rstrip("/")
    if not re.match(r"^https://[A-Za-z0-9.-]+(:\d+)?$", base) and not re.match(r"^http://127\.0\.0\.1(:\d+)?$", base):
        raise Refused("OKTA_ORG_URL must be set to https://<your org>.okta.com")
    token = os.environ.get("OKTA_API_TOKEN") or ""
    if not token and "--dry-run" not in sys.argv[1:]:
        raise Refused("OKTA_API_TOKEN must be set")
    # The token goes to curl on stdin (`--header @-`), never on its command line.
    auth = f"Authorization: SSWS {token}\n"

    def curl(method, path, body=None, gone=()):
        argv = [os.environ.get("CURL") or "curl", "--silent", "--show-error", "--fail", "--request", method,
                "--header", "@-", "--header", "Accept: application/json"]
        if body is not None:
            argv += ["--header", "Content-Type: application/json", "--data", json.dumps(body, separators=(",", ":"))]
        return Call(argv + [base + path], gone, stdin=auth)

    gone = ("error: 404",) if revoke else ()
    kind = t["type"]
    if kind == "okta_group_membership":
        g = field(t, "group_id", OKTA_ID)
        u = field(t, "user_id", OKTA_ID)
        return [curl("DELETE" if revoke else "PUT", f"/api/v1/groups/{g}/users/{u}", gone=gone)]
    if kind == "okta_app":
        ptype = one_of(t, "principal_type", ("user", "group"))
        p = field(t, "principal_id", OKTA_ID)
        app = field(t, "app_id", OKTA_ID)
        if revoke:
            return [curl("DELETE", f"/api/v1/apps/{app}/{ptype}s/{p}", gone=gone)]
        if ptype == "user":
            return [curl("POST", f"/api/v1/apps/{app}/users", {"id": p})]
        return [curl("PUT", f"/api/v1/apps/{app}/groups/{p}")]
    if kind == "okta_role":
        ptype = one_of(t, "principal_type", ("user", "group"))
        p = field(t, "principal_id", OKTA_ID)
        rtype = one_of(t, "role_type", OKTA_ROLE_TYPES)
        path = f"/api/v1/{ptype}s/{p}/roles"
        if not revoke:
            return [curl("POST", path, {"type": rtype})]
        read = curl("GET", path)

        def write(text):
            roles = json.loads(text or "[]")
            # A user's list also shows the roles its groups hold; only the
            # user's own assignment is this grant.
            ids = [r.get("id") for r in roles if isinstance(r, dict) and r.get("type") == rtype
                   and r.get("assignmentType", ptype.upper()) == ptype.upper()]
            ids = [i for i in ids if isinstance(i, str) and OKTA_ID.match(i)]
            if not ids:
                return None
            return curl("DELETE", f"{path}/{ids[0]}", gone=gone)
        describe = shlex.join(curl("DELETE", f"{path}/ID").argv).replace(f"{path}/ID", f"{path}/<id of its {rtype} assignment>")
        rmw = ReadModifyWrite(read, write, describe)
        if ptype == "user":
            # A standard role assigned to a user has the role type, base32
            # encoded, as its assignment id (what the Role Assignment API
            # lists); a group's assignments have ids of their own, which the
            # System Log does not give, so those are read first.
            encoded = base64.b32encode(rtype.encode()).decode().rstrip("=")
            return [FirstOr(curl("DELETE", f"{path}/{encoded}"), rmw)]
        return [rmw]
    if kind == "okta_support_access":
        return [curl("POST", "/api/v1/org/privacy/oktaSupport/" + ("revoke" if revoke else "grant"))]
    raise Refused(f"target type {kind!r} is not an Okta grant")


# ---- GitHub ----

def github_plan(t, revoke):
    def gh(method, path, *fields, gone=()):
        argv = [os.environ.get("GH") or "gh", "api", "--method", method, path]
        for f in fields:
            argv += ["--field", f]
        return Call(argv, gone)

    gone = ("HTTP 404",) if revoke else ()
    kind = t["type"]
    if kind == "github_org_member":
        org, user = field(t, "org", GITHUB_NAME), field(t, "user", GITHUB_NAME)
        if revoke:
            return [gh("DELETE", f"/orgs/{org}/members/{user}", gone=gone)]
        return [gh("PUT", f"/orgs/{org}/memberships/{user}", "role=member")]
    if kind == "github_team_member":
        org, team, user = (field(t, k, GITHUB_NAME) for k in ("org", "team", "user"))
        if revoke:
            return [gh("DELETE", f"/orgs/{org}/teams/{team}/memberships/{user}", gone=gone)]
        return [gh("PUT", f"/orgs/{org}/teams/{team}/memberships/{user}", "role=member")]
    if kind == "github_repo_collaborator":
        owner, repo, user = (field(t, k, GITHUB_NAME) for k in ("owner", "repo", "user"))
        return [gh("DELETE" if revoke else "PUT", f"/repos/{owner}/{repo}/collaborators/{user}", gone=gone)]
    if kind == "github_team_repo":
        org, team, owner, repo = (field(t, k, GITHUB_NAME) for k in ("org", "team", "owner", "repo"))
        return [gh("DELETE" if revoke else "PUT", f"/orgs/{org}/teams/{team}/repos/{owner}/{repo}", gone=gone)]
    if kind == "github_org_admin":
        org, user = field(t, "org", GITHUB_NAME), field(t, "user", GITHUB_NAME)
        return [gh("PUT", f"/orgs/{org}/memberships/{user}", "role=" + ("member" if revoke else "admin"))]
    if kind == "github_team_maintainer":
        org, team, user = (field(t, k, GITHUB_NAME) for k in ("org", "team", "user"))
        return [gh("PUT", f"/orgs/{org}/teams/{team}/memberships/{user}",
                   "role=" + ("member" if revoke else "maintainer"))]
    raise Refused(f"target type {kind!r} is not a GitHub grant")


# ---- Linux ----

def linux_plan(t, revoke):
    if t["type"] != "linux_group_membership":
        raise Refused(f"target type {t['type']!r} is not a Linux group membership")
    host = field(t, "host", HOST)
    group = field(t, "group", UNIX_NAME)
    user = field(t, "user", UNIX_NAME)
    argv = [os.environ.get("GPASSWD") or "gpasswd", "--delete" if revoke else "--add", user, group]
    local = {"localhost", socket.gethostname(), socket.gethostname().split(".")[0]}
    if host not in local:
        # The names were checked above, so the remote shell sees plain words.
        argv = [os.environ.get("SSH") or "ssh", "--", host, *argv]
    return [Call(argv, ("is not a member of",) if revoke else ())]


# ---- the command line ----

def main(name, plan, usage_types):
    dry_run = False
    for arg in sys.argv[1:]:
        if arg == "--dry-run":
            dry_run = True
        elif arg in ("-h", "--help"):
            print(f"usage: {name} [--dry-run] < payload.json\nhandles targets: {', '.join(usage_types)}")
            return 0
        else:
            print(f"{name}: unknown argument {arg!r} (usage: {name} [--dry-run] < payload.json)", file=sys.stderr)
            return 2
    try:
        try:
            payload = json.load(sys.stdin)
        except ValueError as e:
            raise Refused(f"the payload on stdin is not JSON: {e}")
        if not isinstance(payload, dict):
            raise Refused("the payload is not a JSON object")
        action = payload.get("action")
        if action not in ("revoke", "restore"):
            raise Refused(f"unknown action {action!r}; expected \"revoke\" or \"restore\"")
        target = payload.get("target")
        if not isinstance(target, dict) or not isinstance(target.get("type"), str):
            raise Refused("the payload has no target (it names what to undo for grants read from vendor logs)")
        if target["type"] == "no_undo":
            raise Refused(f"no undo is known for this grant: {target.get('reason')}")
        steps = plan(target, action == "revoke")
    except Refused as e:
        print(f"{name}: {e}", file=sys.stderr)
        return 2
    if dry_run:
        for s in steps:
            print(s.show())
        return 0
    print(f"{name}: {action} {payload.get('grant_id')}", file=sys.stderr)
    for s in steps:
        try:
            ok = s.run(name)
        except (ValueError, AttributeError, TypeError) as e:
            print(f"{name}: unexpected answer: {e}", file=sys.stderr)
            ok = False
        if not ok:
            return 1
    return 0
