//! Grant commands: the privileges a shell command grants, named as the audit
//! logs will name them.
//!
//! Agent telemetry (`decode::otlp`) records the commands an agent ran or
//! proposed. This module reads such a command line and says which grants it
//! makes, each as a [`Recommendation`] whose `resource` and `grantee` are
//! spelled exactly as the audit decoders spell the grant that appears when the
//! command runs (`k8s/cluster/ClusterRole/cluster-admin` for alice, say), so
//! that provenance can match the one to the other.
//!
//! Understood: `kubectl create rolebinding|clusterrolebinding` and `kubectl
//! apply|create -f -` of an inline RBAC manifest; `aws iam attach-*-policy`,
//! `put-*-policy`, `add-user-to-group`, `update-assume-role-policy`,
//! `create-access-key`, `create-login-profile`; `gcloud projects|organizations|
//! folders add-iam-policy-binding`; `gh api` PUTs of collaborators, team
//! repositories and memberships; `usermod -aG`, `gpasswd -a`, `adduser U G`.
//! Around them: quoting, line continuations, `&&` / `||` / `;` / `|` chains,
//! `sudo`, `env` and `NAME=value` prefixes, `sh -c '...'`, here-documents.
//!
//! A command of one of these kinds whose grant cannot be told for sure (a
//! manifest in a file, a missing flag, a host that is not known) is reported as
//! unparsed, with the reason, and never guessed. Everything else (`ls`, `git`)
//! grants nothing.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::event::Recommendation;

/// How many grant commands could not be read, since the process started
/// (exported as `reachguard_agent_commands_unparsed_total`).
pub static UNPARSED: AtomicU64 = AtomicU64::new(0);

/// What is known about where a command ran.
#[derive(Debug, Clone, Copy, Default)]
pub struct Context<'a> {
    /// The host's name (`host.name`), which local group names include.
    pub host: Option<&'a str>,
}

/// What a command line grants.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parsed {
    /// The grants, in order.
    pub grants: Vec<Recommendation>,
    /// Grant commands that could not be read: `program: why`.
    pub unparsed: Vec<String>,
}

/// How deeply `sh -c` may nest.
const MAX_DEPTH: usize = 4;

/// The programs whose commands can grant.
const GRANTING: [&str; 7] = [
    "kubectl", "aws", "gcloud", "gh", "usermod", "gpasswd", "adduser",
];

/// Parses a command line (a script of one or more commands) into the grants it
/// makes. Commands that could not be read are counted in [`UNPARSED`].
pub fn parse(script: &str, ctx: &Context<'_>) -> Parsed {
    let mut out = Parsed::default();
    parse_into(script, ctx, 0, &mut out);
    UNPARSED.fetch_add(out.unparsed.len() as u64, Ordering::Relaxed);
    out
}

fn parse_into(script: &str, ctx: &Context<'_>, depth: usize, out: &mut Parsed) {
    let commands = match split(script) {
        Ok(c) => c,
        Err(why) => {
            // The words cannot be told apart: only a concern if a granting
            // program is named in it.
            if let Some(p) = GRANTING.iter().find(|p| mentions(script, p)) {
                out.unparsed.push(format!("{p}: {why}"));
            }
            return;
        }
    };
    // `cat <<EOF | cmd`: the here-document is what `cmd` reads.
    let mut feed: Option<String> = None;
    for mut c in commands {
        if c.piped && c.stdin.is_none() {
            c.stdin = feed.take();
        }
        feed = None;
        let words = strip_prefixes(&c.words);
        if words.len() == 1 && base(&words[0]) == "cat" {
            feed = c.stdin.clone();
        }
        simple(&c, ctx, depth, out);
    }
}

fn mentions(script: &str, program: &str) -> bool {
    script
        .split(|c: char| c.is_whitespace() || "/;&|()'\"`".contains(c))
        .any(|w| w == program)
}

/// One simple command: its words and the here-document given to it, if any.
#[derive(Debug, Default, Clone, PartialEq)]
struct Command {
    words: Vec<String>,
    stdin: Option<String>,
    /// Whether the previous command's output is piped into this one.
    piped: bool,
}

/// Splits a script into simple commands, POSIX-shell style.
fn split(script: &str) -> Result<Vec<Command>, &'static str> {
    let chars: Vec<char> = script.chars().collect();
    let mut commands = Vec::new();
    let mut cur = Command::default();
    let mut word = String::new();
    let mut in_word = false;
    // Here-documents announced on the current line: (delimiter, strip tabs, command index).
    let mut pending: Vec<(String, bool, usize)> = Vec::new();
    let mut i = 0;
    let finish_word = |word: &mut String, in_word: &mut bool, cur: &mut Command| {
        if *in_word {
            cur.words.push(std::mem::take(word));
            *in_word = false;
        }
    };
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\\' => {
                match chars.get(i + 1) {
                    Some('\n') => {}
                    Some(&n) => {
                        word.push(n);
                        in_word = true;
                    }
                    None => {}
                }
                i += 2;
            }
            '\'' => {
                let end = chars[i + 1..]
                    .iter()
                    .position(|&x| x == '\'')
                    .ok_or("unterminated single quote")?;
                word.extend(&chars[i + 1..i + 1 + end]);
                in_word = true;
                i += end + 2;
            }
            '"' => {
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err("unterminated double quote"),
                        Some('"') => break,
                        Some('\\') => {
                            match chars.get(i + 1) {
                                Some(&n @ ('"' | '\\' | '$' | '`')) => word.push(n),
                                Some('\n') => {}
                                Some(&n) => {
                                    word.push('\\');
                                    word.push(n);
                                }
                                None => return Err("unterminated double quote"),
                            }
                            i += 2;
                        }
                        Some(&x) => {
                            word.push(x);
                            i += 1;
                        }
                    }
                }
                in_word = true;
                i += 1;
            }
            '#' if !in_word => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            ' ' | '\t' | '\r' => {
                finish_word(&mut word, &mut in_word, &mut cur);
                i += 1;
            }
            '\n' | ';' | '&' | '|' | '(' | ')' => {
                finish_word(&mut word, &mut in_word, &mut cur);
                if !cur.words.is_empty() || cur.stdin.is_some() {
                    commands.push(std::mem::take(&mut cur));
                }
                i += 1;
                if c == '|' {
                    if chars.get(i) == Some(&'|') {
                        i += 1;
                    } else {
                        cur.piped = true;
                    }
                }
                if c == '\n' && !pending.is_empty() {
                    // The bodies of the here-documents follow this line.
                    for (delim, strip, idx) in std::mem::take(&mut pending) {
                        let mut body = String::new();
                        loop {
                            if i >= chars.len() {
                                return Err("unterminated here-document");
                            }
                            let end = chars[i..]
                                .iter()
                                .position(|&x| x == '\n')
                                .map_or(chars.len(), |p| i + p);
                            let line: String = chars[i..end].iter().collect();
                            i = end + 1;
                            let line = if strip {
                                line.trim_start_matches('\t').to_owned()
                            } else {
                                line
                            };
                            if line.trim_end() == delim {
                                break;
                            }
                            body.push_str(&line);
                            body.push('\n');
                        }
                        if let Some(c) = commands.get_mut(idx) {
                            c.stdin = Some(body);
                        }
                    }
                }
            }
            '<' if chars.get(i + 1) == Some(&'<') && chars.get(i + 2) != Some(&'<') => {
                finish_word(&mut word, &mut in_word, &mut cur);
                i += 2;
                let strip = chars.get(i) == Some(&'-');
                if strip {
                    i += 1;
                }
                while chars.get(i).is_some_and(|c| *c == ' ' || *c == '\t') {
                    i += 1;
                }
                let mut delim = String::new();
                while let Some(&x) = chars.get(i) {
                    if x.is_whitespace() || ";&|<>()".contains(x) {
                        break;
                    }
                    if x != '\'' && x != '"' && x != '\\' {
                        delim.push(x);
                    }
                    i += 1;
                }
                if delim.is_empty() {
                    return Err("here-document without a delimiter");
                }
                // The command is pushed when its line ends; its index is then this.
                pending.push((delim, strip, commands.len()));
            }
            '<' | '>' => {
                // A redirection: drop it, its file descriptor (`2>`) and its target.
                if in_word && word.chars().all(|d| d.is_ascii_digit()) {
                    word.clear();
                    in_word = false;
                }
                finish_word(&mut word, &mut in_word, &mut cur);
                i += 1;
                while chars.get(i).is_some_and(|c| "<>&".contains(*c)) {
                    i += 1;
                }
                if chars.get(i) == Some(&'-') {
                    i += 1;
                }
                while chars.get(i).is_some_and(|c| *c == ' ' || *c == '\t') {
                    i += 1;
                }
                while chars
                    .get(i)
                    .is_some_and(|c| !c.is_whitespace() && !";&|<>()".contains(*c))
                {
                    i += 1;
                }
            }
            '`' => return Err("command substitution"),
            '$' if chars.get(i + 1) == Some(&'(') => return Err("command substitution"),
            _ => {
                word.push(c);
                in_word = true;
                i += 1;
            }
        }
    }
    finish_word(&mut word, &mut in_word, &mut cur);
    if !pending.is_empty() {
        return Err("unterminated here-document");
    }
    if !cur.words.is_empty() {
        commands.push(cur);
    }
    Ok(commands)
}

/// Strips what runs a command rather than being it: `NAME=value` prefixes,
/// `sudo` and its options, `env`, `command`, `exec`, `time`, `nohup`.
fn strip_prefixes(words: &[String]) -> &[String] {
    let mut w = words;
    loop {
        let Some(first) = w.first() else { return w };
        let is_assignment = first.split_once('=').is_some_and(|(name, _)| {
            !name.is_empty()
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !name.starts_with(|c: char| c.is_ascii_digit())
        });
        if is_assignment {
            w = &w[1..];
            continue;
        }
        match base(first) {
            "sudo" | "doas" => {
                w = &w[1..];
                while let Some(f) = w.first() {
                    if f == "--" {
                        w = &w[1..];
                        break;
                    }
                    if !f.starts_with('-') {
                        break;
                    }
                    // Options that take a value.
                    let takes = matches!(
                        f.as_str(),
                        "-u" | "-g" | "-h" | "-p" | "-C" | "-D" | "-r" | "-t" | "-U" | "-T"
                    );
                    w = &w[1..];
                    if takes && !w.is_empty() {
                        w = &w[1..];
                    }
                }
            }
            "env" => {
                w = &w[1..];
                while w.first().is_some_and(|f| f.starts_with('-')) {
                    w = &w[1..];
                }
            }
            "command" | "exec" | "time" | "nohup" | "builtin" => w = &w[1..],
            _ => return w,
        }
    }
}

fn base(program: &str) -> &str {
    program.rsplit('/').next().unwrap_or(program)
}

fn simple(c: &Command, ctx: &Context<'_>, depth: usize, out: &mut Parsed) {
    let words = strip_prefixes(&c.words);
    let Some(program) = words.first() else { return };
    let args = &words[1..];
    if GRANTING.contains(&base(program)) && args.iter().any(|a| a.contains('$')) {
        // `--user=$WHO`: the value is only known to the shell that ran it.
        out.unparsed
            .push(format!("{}: shell expansion", base(program)));
        return;
    }
    let result = match base(program) {
        "sh" | "bash" | "zsh" | "dash" => {
            if let Some(pos) = args
                .iter()
                .position(|a| a == "-c" || a == "-lc" || a == "-ec")
            {
                if let Some(script) = args.get(pos + 1) {
                    if depth < MAX_DEPTH {
                        parse_into(script, ctx, depth + 1, out);
                    } else if GRANTING.iter().any(|p| mentions(script, p)) {
                        out.unparsed.push("sh: nested too deeply".into());
                    }
                }
            } else if let Some(stdin) = &c.stdin {
                if depth < MAX_DEPTH {
                    parse_into(stdin, ctx, depth + 1, out);
                }
            }
            return;
        }
        "kubectl" | "oc" => kubectl(args, c.stdin.as_deref()),
        "aws" => aws(args),
        "gcloud" => gcloud(args),
        "gh" => gh(args),
        "usermod" => usermod(args, ctx),
        "gpasswd" => gpasswd(args, ctx),
        "adduser" => adduser(args, ctx),
        _ => return,
    };
    match result {
        Ok(grants) => out.grants.extend(grants),
        Err(why) => out.unparsed.push(format!("{}: {why}", base(program))),
    }
}

type Outcome = Result<Vec<Recommendation>, &'static str>;

fn rec(resource: String, role: Option<&str>, grantee: Option<&str>) -> Recommendation {
    Recommendation {
        resource,
        role: role.map(str::to_owned),
        grantee: grantee.map(str::to_owned),
    }
}

/// A command's flags and positional arguments.
#[derive(Debug, Default)]
struct Args<'a> {
    flags: Vec<(&'a str, &'a str)>,
    positional: Vec<&'a str>,
}

impl<'a> Args<'a> {
    /// Reads `--flag value`, `--flag=value`, `-f value`, `-fvalue` (for the
    /// short flags in `short_valued`) and bare `--switch`es (`switches`).
    fn read(args: &'a [String], short_valued: &[&str], switches: &[&str]) -> Args<'a> {
        let mut out = Args::default();
        let mut i = 0;
        let mut only_positional = false;
        while i < args.len() {
            let a = args[i].as_str();
            i += 1;
            if only_positional || a == "-" || !a.starts_with('-') {
                out.positional.push(a);
                continue;
            }
            if a == "--" {
                only_positional = true;
                continue;
            }
            if let Some((k, v)) = a.split_once('=') {
                out.flags.push((k, v));
                continue;
            }
            if switches.contains(&a) {
                out.flags.push((a, ""));
                continue;
            }
            if !a.starts_with("--") && a.len() > 2 {
                // `-nprod`: a short flag with its value attached.
                let (k, v) = a.split_at(a.char_indices().nth(2).map_or(a.len(), |(p, _)| p));
                if short_valued.contains(&k) {
                    out.flags.push((k, v));
                    continue;
                }
            }
            if a.starts_with("--") || short_valued.contains(&a) {
                match args.get(i) {
                    Some(v) if !v.starts_with('-') || v == "-" => {
                        out.flags.push((a, v));
                        i += 1;
                    }
                    _ => out.flags.push((a, "")),
                }
            } else {
                out.flags.push((a, ""));
            }
        }
        out
    }

    fn last(&self, names: &[&str]) -> Option<&'a str> {
        self.flags
            .iter()
            .rev()
            .find(|(k, _)| names.contains(k))
            .map(|(_, v)| *v)
    }

    fn all(&self, names: &[&str]) -> impl Iterator<Item = &'a str> + '_ {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        self.flags
            .iter()
            .filter(move |(k, _)| names.iter().any(|n| n == k))
            .map(|(_, v)| *v)
    }
}

fn nonempty(v: Option<&str>) -> Option<&str> {
    v.filter(|v| !v.is_empty())
}

// ---------------------------------------------------------------- kubectl

const KUBECTL_SHORT: [&str; 5] = ["-n", "-o", "-f", "-l", "-s"];
const KUBECTL_SWITCHES: [&str; 4] = ["--save-config", "--validate", "--force", "--overwrite"];

fn kubectl(args: &[String], stdin: Option<&str>) -> Outcome {
    let a = Args::read(args, &KUBECTL_SHORT, &KUBECTL_SWITCHES);
    let pos = &a.positional;
    let verb = pos.first().copied().unwrap_or_default();
    if !matches!(verb, "create" | "apply" | "replace") {
        return Ok(Vec::new());
    }
    if let Some(dry) = a.last(&["--dry-run"]) {
        if dry != "none" && dry != "false" {
            return Ok(Vec::new());
        }
    }
    let namespace = nonempty(a.last(&["-n", "--namespace"]));
    match pos.get(1).copied() {
        Some("rolebinding" | "clusterrolebinding") if verb == "create" => {
            let cluster = pos[1] == "clusterrolebinding";
            let (kind, role) = match (
                nonempty(a.last(&["--clusterrole"])),
                nonempty(a.last(&["--role"])),
            ) {
                (Some(r), _) => ("ClusterRole", r),
                (None, Some(r)) if !cluster => ("Role", r),
                _ => return Err("binding without a role"),
            };
            let scope = if cluster {
                "cluster"
            } else {
                namespace.unwrap_or("default")
            };
            let resource = format!("k8s/{scope}/{kind}/{role}");
            let mut out = Vec::new();
            for u in a.all(&["--user"]).chain(a.all(&["--group"])) {
                if u.is_empty() {
                    return Err("empty subject");
                }
                out.push(rec(resource.clone(), Some(role), Some(u)));
            }
            for sa in a.all(&["--serviceaccount"]) {
                let Some((ns, name)) = sa
                    .split_once(':')
                    .filter(|(n, s)| !n.is_empty() && !s.is_empty())
                else {
                    return Err("--serviceaccount is not NAMESPACE:NAME");
                };
                out.push(rec(
                    resource.clone(),
                    Some(role),
                    Some(&format!("system:serviceaccount:{ns}:{name}")),
                ));
            }
            Ok(out)
        }
        _ if verb != "create" || pos.len() == 1 => {
            let files: Vec<&str> = a.all(&["-f", "--filename"]).collect();
            if files.is_empty() {
                return Ok(Vec::new());
            }
            if files.iter().any(|f| *f != "-") {
                return Err("manifest read from a file");
            }
            let Some(manifest) = stdin else {
                return Err("manifest on stdin not recorded");
            };
            rbac_manifest(manifest, namespace)
        }
        _ => Ok(Vec::new()),
    }
}

/// The grants of the RoleBindings and ClusterRoleBindings in a YAML manifest
/// (block style, as people and agents write them; flow style is refused).
fn rbac_manifest(text: &str, namespace: Option<&str>) -> Outcome {
    let mut out = Vec::new();
    for doc in text.split("\n---") {
        let doc = doc.trim_start_matches("---");
        let lines = yaml_lines(doc);
        let top = |key: &str| {
            lines
                .iter()
                .find(|l| l.indent == 0 && !l.item && l.key == key)
                .map(|l| l.value.as_str())
        };
        let kind = top("kind").unwrap_or_default();
        if !matches!(kind, "RoleBinding" | "ClusterRoleBinding") {
            if kind == "List" || doc.contains('{') && doc.contains("Binding") {
                return Err("manifest shape not supported");
            }
            continue;
        }
        let section = |name: &str| -> Vec<&YamlLine> {
            let Some(start) = lines.iter().position(|l| l.indent == 0 && l.key == name) else {
                return Vec::new();
            };
            lines[start + 1..]
                .iter()
                // Block sequences may sit at the key's own indentation.
                .take_while(|l| l.indent > 0 || l.item)
                .collect()
        };
        let field = |sec: &[&YamlLine], key: &str| {
            sec.iter().find(|l| l.key == key).map(|l| l.value.clone())
        };
        let meta = section("metadata");
        let role_ref = section("roleRef");
        let (Some(ref_kind), Some(ref_name)) = (field(&role_ref, "kind"), field(&role_ref, "name"))
        else {
            return Err("binding without roleRef");
        };
        let scope = if kind == "ClusterRoleBinding" {
            "cluster".to_owned()
        } else {
            field(&meta, "namespace")
                .or(namespace.map(str::to_owned))
                .unwrap_or_else(|| "default".into())
        };
        let resource = format!("k8s/{scope}/{ref_kind}/{ref_name}");
        // Subjects: list items, each starting with `- `.
        let subjects = section("subjects");
        let mut items: Vec<Vec<&YamlLine>> = Vec::new();
        for l in subjects {
            if l.item || items.is_empty() {
                items.push(Vec::new());
            }
            if let Some(last) = items.last_mut() {
                last.push(l);
            }
        }
        for item in items {
            let (Some(k), Some(name)) = (field(&item, "kind"), field(&item, "name")) else {
                return Err("subject without kind or name");
            };
            let grantee = match k.as_str() {
                "ServiceAccount" => {
                    let ns = field(&item, "namespace")
                        .or_else(|| (scope != "cluster").then(|| scope.clone()))
                        .unwrap_or_else(|| "default".into());
                    format!("system:serviceaccount:{ns}:{name}")
                }
                _ => name,
            };
            out.push(rec(resource.clone(), Some(&ref_name), Some(&grantee)));
        }
    }
    Ok(out)
}

#[derive(Debug)]
struct YamlLine {
    indent: usize,
    item: bool,
    key: String,
    value: String,
}

fn yaml_lines(doc: &str) -> Vec<YamlLine> {
    let mut out = Vec::new();
    for raw in doc.lines() {
        let trimmed = raw.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let indent = raw.len() - trimmed.len();
        let (item, rest) = match trimmed.strip_prefix("- ") {
            Some(r) => (true, r.trim_start()),
            None => (false, trimmed),
        };
        let Some((k, v)) = rest.split_once(':') else {
            continue;
        };
        let v = v.split(" #").next().unwrap_or_default().trim();
        let v = v
            .strip_prefix('"')
            .and_then(|x| x.strip_suffix('"'))
            .or_else(|| v.strip_prefix('\'').and_then(|x| x.strip_suffix('\'')))
            .unwrap_or(v);
        out.push(YamlLine {
            indent,
            item,
            key: k.trim().to_owned(),
            value: v.to_owned(),
        });
    }
    out
}

// ---------------------------------------------------------------- aws

fn aws(args: &[String]) -> Outcome {
    let a = Args::read(
        args,
        &[],
        &[
            "--debug",
            "--no-verify-ssl",
            "--no-paginate",
            "--no-cli-pager",
        ],
    );
    let pos = &a.positional;
    if pos.first() != Some(&"iam") {
        return Ok(Vec::new());
    }
    let op = pos.get(1).copied().unwrap_or_default();
    let user = nonempty(a.last(&["--user-name"]));
    let role = nonempty(a.last(&["--role-name"]));
    let group = nonempty(a.last(&["--group-name"]));
    let one = |r: Recommendation| -> Outcome { Ok(vec![r]) };
    match op {
        "attach-user-policy" | "attach-role-policy" | "attach-group-policy" => {
            let arn = nonempty(a.last(&["--policy-arn"])).ok_or("no --policy-arn")?;
            let grantee = match op {
                "attach-user-policy" => user.ok_or("no --user-name")?.to_owned(),
                "attach-role-policy" => format!("role/{}", role.ok_or("no --role-name")?),
                _ => group.ok_or("no --group-name")?.to_owned(),
            };
            one(rec(arn.to_owned(), None, Some(&grantee)))
        }
        "put-user-policy" | "put-role-policy" | "put-group-policy" => {
            let name = nonempty(a.last(&["--policy-name"])).ok_or("no --policy-name")?;
            let grantee = match op {
                "put-user-policy" => user.ok_or("no --user-name")?.to_owned(),
                "put-role-policy" => format!("role/{}", role.ok_or("no --role-name")?),
                _ => group.ok_or("no --group-name")?.to_owned(),
            };
            one(rec(format!("inline:{name}"), None, Some(&grantee)))
        }
        "add-user-to-group" => one(rec(
            group.ok_or("no --group-name")?.to_owned(),
            None,
            Some(user.ok_or("no --user-name")?),
        )),
        "update-assume-role-policy" => {
            // Who is trusted is in the policy document (often a file): the
            // grant is named by the role alone.
            let r = role.ok_or("no --role-name")?;
            one(rec(format!("aws/iam/role/{r}"), None, None))
        }
        "create-access-key" | "create-login-profile" | "update-login-profile" => match user {
            // For oneself: no one new can act as anyone.
            None => Ok(Vec::new()),
            Some(u) => {
                let what = if op == "create-access-key" {
                    "access-key"
                } else {
                    "login-profile"
                };
                one(rec(format!("aws/iam/user/{u}"), Some(what), None))
            }
        },
        _ => Ok(Vec::new()),
    }
}

// ---------------------------------------------------------------- gcloud

fn gcloud(args: &[String]) -> Outcome {
    let a = Args::read(args, &[], &["--quiet", "-q", "--verbosity"]);
    let mut pos: &[&str] = &a.positional;
    if matches!(pos.first(), Some(&("alpha" | "beta"))) {
        pos = &pos[1..];
    }
    let Some(at) = pos.iter().position(|p| *p == "add-iam-policy-binding") else {
        return Ok(Vec::new());
    };
    let scope = match pos[..at] {
        ["projects"] => "projects",
        ["organizations"] => "organizations",
        ["resource-manager", "folders"] => "folders",
        _ => return Err("add-iam-policy-binding on a resource whose audit name is not known"),
    };
    let id = pos.get(at + 1).ok_or("no resource id")?;
    let role = nonempty(a.last(&["--role"])).ok_or("no --role")?;
    let mut out = Vec::new();
    for m in a.all(&["--member"]) {
        let grantee = match m {
            "allUsers" => "*",
            "allAuthenticatedUsers" => "allAuthenticatedUsers",
            _ => m
                .split_once(':')
                .map(|(_, v)| v)
                .filter(|v| !v.is_empty())
                .ok_or("--member is not TYPE:ID")?,
        };
        out.push(rec(format!("gcp/{scope}/{id}"), Some(role), Some(grantee)));
    }
    if out.is_empty() {
        return Err("no --member");
    }
    Ok(out)
}

// ---------------------------------------------------------------- gh

fn gh(args: &[String]) -> Outcome {
    let a = Args::read(
        args,
        &["-X", "-f", "-F", "-H", "-q", "-t", "-p"],
        &[
            "--paginate",
            "--silent",
            "--include",
            "-i",
            "--verbose",
            "--slurp",
        ],
    );
    if a.positional.first() != Some(&"api") {
        return Ok(Vec::new());
    }
    let method = a
        .last(&["-X", "--method"])
        .unwrap_or("GET")
        .to_ascii_uppercase();
    if method != "PUT" {
        return Ok(Vec::new());
    }
    let endpoint = a.positional.get(1).ok_or("no endpoint")?;
    let endpoint = endpoint
        .trim_start_matches("https://api.github.com")
        .trim_start_matches('/');
    let endpoint = endpoint.split('?').next().unwrap_or_default();
    let field = |name: &str| {
        a.all(&["-f", "-F", "--field", "--raw-field"])
            .filter_map(|kv| kv.split_once('='))
            .filter(|(k, _)| *k == name)
            .map(|(_, v)| v)
            .last()
    };
    let parts: Vec<&str> = endpoint.split('/').collect();
    if parts
        .iter()
        .any(|p| p.is_empty() || p.contains('{') || p.starts_with(':'))
    {
        return Err("endpoint with placeholders");
    }
    match parts[..] {
        ["repos", owner, repo, "collaborators", user] => Ok(vec![rec(
            format!("github/{owner}/{repo}"),
            field("permission"),
            Some(user),
        )]),
        ["orgs", org, "teams", team, "repos", owner, repo] => Ok(vec![rec(
            format!("github/{owner}/{repo}"),
            field("permission"),
            Some(&format!("{org}/{team}")),
        )]),
        ["orgs", org, "teams", team, "memberships", user] => {
            let mut out = vec![rec(format!("{org}/{team}"), None, Some(user))];
            if field("role") == Some("maintainer") {
                out.push(rec(
                    format!("github/{org}/teams/{team}"),
                    Some("maintainer"),
                    Some(user),
                ));
            }
            Ok(out)
        }
        ["orgs", org, "memberships", user] => {
            let mut out = vec![rec(org.to_owned(), None, Some(user))];
            if field("role") == Some("admin") {
                out.push(rec(format!("github/{org}"), Some("admin"), Some(user)));
            }
            Ok(out)
        }
        _ => Ok(Vec::new()),
    }
}

// ---------------------------------------------------------------- local groups

fn local_groups<'g>(
    host: Option<&str>,
    groups: impl Iterator<Item = &'g str>,
    user: &str,
) -> Outcome {
    let host = host.ok_or("the host is not known")?;
    let out: Vec<Recommendation> = groups
        .filter(|g| !g.is_empty())
        .map(|g| rec(format!("host/{host}/group/{g}"), None, Some(user)))
        .collect();
    if out.is_empty() {
        return Err("no group");
    }
    Ok(out)
}

fn usermod(args: &[String], ctx: &Context<'_>) -> Outcome {
    let mut groups: Option<&str> = None;
    let mut user = None;
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        i += 1;
        match a {
            "-G" | "--groups" => {
                groups = args.get(i).map(String::as_str);
                i += 1;
            }
            "-aG" | "-Ga" => {
                groups = args.get(i).map(String::as_str);
                i += 1;
            }
            _ if a.starts_with("--groups=") => groups = a.split_once('=').map(|(_, v)| v),
            "-a" | "--append" => {}
            // Options taking a value that are not about groups.
            "-c" | "-d" | "-e" | "-f" | "-g" | "-l" | "-p" | "-s" | "-u" | "-R" | "-P"
            | "--home" | "--shell" | "--login" | "--uid" | "--gid" | "--comment" | "--root"
            | "--prefix" => {
                i += 1;
            }
            _ if a.starts_with('-') => {}
            _ => user = Some(a),
        }
    }
    let Some(groups) = groups else {
        return Ok(Vec::new());
    };
    let user = user.ok_or("no user")?;
    local_groups(ctx.host, groups.split(','), user)
}

fn gpasswd(args: &[String], ctx: &Context<'_>) -> Outcome {
    let mut i = 0;
    let mut user = None;
    let mut group = None;
    while i < args.len() {
        match args[i].as_str() {
            "-a" | "--add" => {
                user = args.get(i + 1).map(String::as_str);
                i += 2;
            }
            "-M" | "--members" => {
                // Sets the member list: every member named may be new.
                let members = args.get(i + 1).map(String::as_str).unwrap_or_default();
                let g = args.get(i + 2).ok_or("no group")?;
                let mut out = Vec::new();
                for m in members.split(',').filter(|m| !m.is_empty()) {
                    out.extend(local_groups(ctx.host, std::iter::once(g.as_str()), m)?);
                }
                return Ok(out);
            }
            a if a.starts_with('-') => return Ok(Vec::new()),
            a => {
                group = Some(a);
                i += 1;
            }
        }
    }
    match (user, group) {
        (Some(u), Some(g)) => local_groups(ctx.host, std::iter::once(g), u),
        (Some(_), None) => Err("no group"),
        _ => Ok(Vec::new()),
    }
}

fn adduser(args: &[String], ctx: &Context<'_>) -> Outcome {
    let pos: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|a| !a.starts_with('-'))
        .collect();
    match pos[..] {
        [user, group] => local_groups(ctx.host, std::iter::once(group), user),
        _ => Ok(Vec::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grants(cmd: &str) -> Vec<(String, Option<String>, Option<String>)> {
        grants_on(cmd, None)
    }

    fn grants_on(cmd: &str, host: Option<&str>) -> Vec<(String, Option<String>, Option<String>)> {
        let p = parse(cmd, &Context { host });
        assert!(p.unparsed.is_empty(), "{cmd}: {:?}", p.unparsed);
        p.grants
            .into_iter()
            .map(|r| (r.resource, r.role, r.grantee))
            .collect()
    }

    fn g(
        resource: &str,
        role: Option<&str>,
        grantee: Option<&str>,
    ) -> (String, Option<String>, Option<String>) {
        (
            resource.into(),
            role.map(str::to_owned),
            grantee.map(str::to_owned),
        )
    }

    fn unparsed(cmd: &str) -> Vec<String> {
        let p = parse(cmd, &Context::default());
        assert!(p.grants.is_empty(), "{cmd}: {:?}", p.grants);
        p.unparsed
    }

    #[test]
    fn kubectl_bindings_in_every_flag_spelling() {
        let admin = |who: &str| {
            g(
                "k8s/cluster/ClusterRole/cluster-admin",
                Some("cluster-admin"),
                Some(who),
            )
        };
        for cmd in [
            "kubectl create clusterrolebinding ops-admin --clusterrole=cluster-admin --user=alice",
            "kubectl create clusterrolebinding ops-admin --clusterrole cluster-admin --user alice",
            "/usr/local/bin/kubectl --context prod create clusterrolebinding ops-admin --user='alice' --clusterrole \"cluster-admin\"",
            "sudo -E KUBECONFIG=/x kubectl create clusterrolebinding ops-admin \\\n  --clusterrole=cluster-admin \\\n  --user=alice",
            "KUBECONFIG=~/.kube/prod kubectl create clusterrolebinding ops-admin --clusterrole=cluster-admin --user=alice 2>&1 | tee out.txt",
        ] {
            assert_eq!(grants(cmd), [admin("alice")], "{cmd}");
        }
        assert_eq!(
            grants(
                "kubectl create rolebinding dev-edit --clusterrole=edit --group=devs --serviceaccount=ci:deployer -n prod"
            ),
            [
                g("k8s/prod/ClusterRole/edit", Some("edit"), Some("devs")),
                g(
                    "k8s/prod/ClusterRole/edit",
                    Some("edit"),
                    Some("system:serviceaccount:ci:deployer")
                ),
            ]
        );
        assert_eq!(
            grants("kubectl -nstaging create rolebinding r --role=pod-reader --user=bob"),
            [g(
                "k8s/staging/Role/pod-reader",
                Some("pod-reader"),
                Some("bob")
            )]
        );
        assert_eq!(
            grants("kubectl create rolebinding r --role=pod-reader --user=bob --namespace=qa"),
            [g("k8s/qa/Role/pod-reader", Some("pod-reader"), Some("bob"))]
        );
        assert_eq!(
            grants("kubectl create rolebinding r --role=pod-reader --user=bob"),
            [g(
                "k8s/default/Role/pod-reader",
                Some("pod-reader"),
                Some("bob")
            )]
        );
        // Dry runs and reads grant nothing.
        assert!(grants("kubectl create clusterrolebinding x --clusterrole=admin --user=a --dry-run=client -o yaml").is_empty());
        assert!(grants("kubectl get clusterrolebindings -o wide").is_empty());
        assert_eq!(
            unparsed("kubectl create clusterrolebinding x --user=a"),
            ["kubectl: binding without a role"]
        );
        assert_eq!(
            unparsed("kubectl create rolebinding x --role=r --serviceaccount=ci"),
            ["kubectl: --serviceaccount is not NAMESPACE:NAME"]
        );
    }

    #[test]
    fn kubectl_apply_of_an_inline_manifest() {
        let cmd = "cat <<'EOF' | kubectl apply -f -\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata:\n  name: ops-admin\nroleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: ClusterRole\n  name: cluster-admin\nsubjects:\n- kind: User\n  name: \"alice\"\n  apiGroup: rbac.authorization.k8s.io\nEOF";
        // The here-document feeds `cat`, whose output the pipe gives kubectl.
        assert_eq!(
            grants(cmd),
            [g(
                "k8s/cluster/ClusterRole/cluster-admin",
                Some("cluster-admin"),
                Some("alice")
            )]
        );
        assert_eq!(
            unparsed("kubectl apply -f -"),
            ["kubectl: manifest on stdin not recorded"]
        );
        let cmd = "kubectl apply -f - <<EOF\n---\nkind: RoleBinding\napiVersion: rbac.authorization.k8s.io/v1\nmetadata:\n  name: dev\n  namespace: prod\nsubjects:\n  - kind: Group\n    name: devs\n  - kind: ServiceAccount\n    name: deployer\nroleRef:\n  kind: ClusterRole\n  name: edit\n---\nkind: ConfigMap\nmetadata:\n  name: x\nEOF\necho done";
        assert_eq!(
            grants(cmd),
            [
                g("k8s/prod/ClusterRole/edit", Some("edit"), Some("devs")),
                g(
                    "k8s/prod/ClusterRole/edit",
                    Some("edit"),
                    Some("system:serviceaccount:prod:deployer")
                ),
            ]
        );
        assert_eq!(
            unparsed("kubectl apply -f rbac.yaml"),
            ["kubectl: manifest read from a file"]
        );
    }

    #[test]
    fn aws_iam_commands() {
        assert_eq!(
            grants(
                "aws iam attach-user-policy --user-name bob --policy-arn arn:aws:iam::aws:policy/AdministratorAccess"
            ),
            [g(
                "arn:aws:iam::aws:policy/AdministratorAccess",
                None,
                Some("bob")
            )]
        );
        assert_eq!(
            grants(
                "aws --profile prod iam attach-role-policy --role-name=deploy --policy-arn=arn:aws:iam::1:policy/p"
            ),
            [g("arn:aws:iam::1:policy/p", None, Some("role/deploy"))]
        );
        assert_eq!(
            grants("aws iam attach-group-policy --policy-arn arn:x --group-name eng"),
            [g("arn:x", None, Some("eng"))]
        );
        assert_eq!(
            grants(
                "aws iam put-role-policy --role-name deploy --policy-name s3-all --policy-document file://p.json"
            ),
            [g("inline:s3-all", None, Some("role/deploy"))]
        );
        assert_eq!(
            grants(
                "aws iam put-user-policy --user-name bob --policy-name x --policy-document '{\"Statement\":[]}'"
            ),
            [g("inline:x", None, Some("bob"))]
        );
        assert_eq!(
            grants("aws iam add-user-to-group --user-name bob --group-name admins"),
            [g("admins", None, Some("bob"))]
        );
        assert_eq!(
            grants(
                "aws iam update-assume-role-policy --role-name backdoor --policy-document file://trust.json"
            ),
            [g("aws/iam/role/backdoor", None, None)]
        );
        assert_eq!(
            grants("aws iam create-access-key --user-name svc"),
            [g("aws/iam/user/svc", Some("access-key"), None)]
        );
        assert_eq!(
            grants("aws iam create-login-profile --user-name svc --password x"),
            [g("aws/iam/user/svc", Some("login-profile"), None)]
        );
        assert!(grants("aws iam create-access-key").is_empty());
        assert!(grants("aws iam list-users").is_empty());
        assert!(grants("aws s3 ls").is_empty());
        assert_eq!(
            unparsed("aws iam attach-user-policy --user-name bob"),
            ["aws: no --policy-arn"]
        );
    }

    #[test]
    fn gcloud_bindings() {
        assert_eq!(
            grants(
                "gcloud projects add-iam-policy-binding my-proj --member=user:bob@example.com --role=roles/owner"
            ),
            [g(
                "gcp/projects/my-proj",
                Some("roles/owner"),
                Some("bob@example.com")
            )]
        );
        assert_eq!(
            grants(
                "gcloud beta organizations add-iam-policy-binding 1234 --member 'group:eng@example.com' --role roles/viewer --condition=None"
            ),
            [g(
                "gcp/organizations/1234",
                Some("roles/viewer"),
                Some("eng@example.com")
            )]
        );
        assert_eq!(
            grants(
                "gcloud resource-manager folders add-iam-policy-binding 55 --member=allUsers --role=roles/viewer"
            ),
            [g("gcp/folders/55", Some("roles/viewer"), Some("*"))]
        );
        assert_eq!(
            unparsed(
                "gcloud storage buckets add-iam-policy-binding gs://b --member=user:x@y --role=roles/storage.admin"
            ),
            ["gcloud: add-iam-policy-binding on a resource whose audit name is not known"]
        );
        assert!(grants("gcloud projects get-iam-policy p").is_empty());
    }

    #[test]
    fn gh_api_puts() {
        assert_eq!(
            grants("gh api -X PUT repos/acme/infra/collaborators/mallory -f permission=admin"),
            [g("github/acme/infra", Some("admin"), Some("mallory"))]
        );
        assert_eq!(
            grants("gh api --method=PUT /orgs/acme/teams/eng/repos/acme/infra -f permission=push"),
            [g("github/acme/infra", Some("push"), Some("acme/eng"))]
        );
        assert_eq!(
            grants("gh api --method PUT orgs/acme/teams/eng/memberships/bob"),
            [g("acme/eng", None, Some("bob"))]
        );
        assert_eq!(
            grants("gh api -XPUT orgs/acme/memberships/bob -f role=admin"),
            [
                g("acme", None, Some("bob")),
                g("github/acme", Some("admin"), Some("bob"))
            ]
        );
        assert!(grants("gh api repos/acme/infra/collaborators").is_empty());
        assert!(grants("gh pr list").is_empty());
        assert_eq!(
            unparsed("gh api -X PUT repos/{owner}/{repo}/collaborators/x"),
            ["gh: endpoint with placeholders"]
        );
    }

    #[test]
    fn local_group_changes_need_the_host() {
        let on = |c| grants_on(c, Some("web-1"));
        let sudo = |who: &str| g("host/web-1/group/sudo", None, Some(who));
        assert_eq!(on("sudo usermod -aG sudo bob"), [sudo("bob")]);
        assert_eq!(
            on("usermod -a -G sudo,adm bob"),
            [sudo("bob"), g("host/web-1/group/adm", None, Some("bob"))]
        );
        assert_eq!(on("usermod --append --groups=sudo bob"), [sudo("bob")]);
        assert_eq!(on("gpasswd -a bob sudo"), [sudo("bob")]);
        assert_eq!(on("sudo adduser bob sudo"), [sudo("bob")]);
        assert!(on("usermod -s /bin/zsh bob").is_empty());
        assert!(on("gpasswd -d bob sudo").is_empty());
        assert_eq!(
            unparsed("usermod -aG sudo bob"),
            ["usermod: the host is not known"]
        );
    }

    #[test]
    fn chains_subshells_and_comments() {
        let cmd = "set -e; export X=1 && kubectl create clusterrolebinding a --clusterrole=view --user=carol || echo failed # kubectl create clusterrolebinding b --clusterrole=admin --user=eve\nbash -c 'aws iam add-user-to-group --user-name dave --group-name ops'";
        assert_eq!(
            grants(cmd),
            [
                g("k8s/cluster/ClusterRole/view", Some("view"), Some("carol")),
                g("ops", None, Some("dave")),
            ]
        );
        assert_eq!(
            unparsed("kubectl create clusterrolebinding a --clusterrole='view --user=x"),
            ["kubectl: unterminated single quote"]
        );
        assert!(parse("echo 'unterminated", &Context::default()) == Parsed::default());
        assert_eq!(
            unparsed("kubectl create clusterrolebinding a --clusterrole=view --user=$(whoami)"),
            ["kubectl: command substitution"]
        );
        assert_eq!(
            unparsed("kubectl create clusterrolebinding a --clusterrole=view --user=\"$WHO\""),
            ["kubectl: shell expansion"]
        );
    }

    #[test]
    fn unparsed_commands_are_counted() {
        let before = UNPARSED.load(Ordering::Relaxed);
        let _ = parse(
            "kubectl apply -f x.yaml; aws iam put-user-policy",
            &Context::default(),
        );
        assert!(UNPARSED.load(Ordering::Relaxed) >= before + 2);
    }

    proptest::proptest! {
        #[test]
        fn no_input_panics_the_parser(s in "\\PC{0,200}") {
            let _ = parse(&s, &Context { host: Some("h") });
        }

        #[test]
        fn no_shell_like_input_panics_the_parser(
            words in proptest::collection::vec(proptest::sample::select(vec![
                "kubectl", "create", "rolebinding", "clusterrolebinding", "apply", "-f", "-", "-n",
                "--user=", "--clusterrole", "aws", "iam", "attach-user-policy", "--user-name",
                "gh", "api", "-X", "PUT", "repos/a/b/collaborators/c", "usermod", "-aG", "gpasswd",
                "-a", "sudo", "bash", "-c", "'", "\"", "\\", "\n", "<<EOF", "EOF", "&&", ";", "|",
                "kind: RoleBinding", "roleRef:", "subjects:", "- kind: User", "  name: x", "=", "$(",
                "gcloud", "projects", "add-iam-policy-binding", "--member", "user:", "---",
            ]), 0..30)
        ) {
            let _ = parse(&words.join(" "), &Context { host: Some("h") });
        }
    }
}
