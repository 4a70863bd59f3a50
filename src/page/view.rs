//! The incident page's HTML, rendered on the server.
//!
//! Every value is written through maud's `(...)`, which escapes it: names of
//! resources, groups, people and advice text come from logs an attacker may
//! write, so nothing from a finding is ever written raw. Links carry them
//! percent-encoded in a query string.

use maud::{DOCTYPE, Markup, html};

use crate::event::Ts;
use crate::explain::Explanation;
use crate::finding::Finding;
use crate::respond::journal::Entry;

/// A query-string value, percent-encoded.
pub fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The link to a person's page.
pub fn person_href(name: &str) -> String {
    format!("/person?name={}", enc(name))
}

/// The link to a finding's page.
pub fn finding_href(id: &str) -> String {
    format!("/finding?id={}", enc(id))
}

/// A word for a shell: bare when it is plainly safe, else single-quoted.
pub fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:@=+,".contains(&b));
    if plain {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// The page around `body`.
pub fn layout(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · reachguard" }
                link rel="stylesheet" href="/assets/style.css";
                script src="/assets/live.js" defer {}
            }
            body {
                header {
                    a.brand href="/" { "reachguard" }
                    span.sub { "findings, their chains, the people involved" }
                }
                main { (body) }
            }
        }
    }
}

fn severity(f: &Finding) -> Markup {
    let s = f.severity.as_str();
    html! { span class={ "sev sev-" (s) } { (s) } }
}

fn people(names: &[String]) -> Markup {
    html! {
        @for (i, p) in names.iter().enumerate() {
            @if i > 0 { ", " }
            a.person href=(person_href(p)) { (p) }
        }
    }
}

/// One row of the findings list (also what a live update inserts).
pub fn row(f: &Finding) -> Markup {
    html! {
        tr id={ "f-" (f.finding_id) } {
            td.ts { (f.ts) }
            td { (severity(f)) }
            td.kind { (f.kind.as_str()) }
            td.summary { a href=(finding_href(&f.finding_id)) { (f.summary) } }
            td { (people(&f.principals)) }
            td.action {
                @if let Some(a) = &f.action { (a.status.as_str()) } @else { "–" }
            }
        }
    }
}

const KINDS: [&str; 4] = [
    "unverified_agent_grant",
    "unreviewed_agent_publish",
    "reach_expansion",
    "grant_expansion",
];
const SEVERITIES: [&str; 4] = ["low", "medium", "high", "critical"];

/// The findings list, newest first.
pub fn list(
    findings: &[&Finding],
    total: usize,
    filters: &super::ListQuery,
    error: Option<&str>,
) -> Markup {
    let newest = findings.first().map_or("", |f| f.finding_id.as_str());
    layout(
        "Findings",
        html! {
            h1 { "Findings" }
            form.filters method="get" action="/" {
                label { "Kind "
                    select name="kind" {
                        option value="" { "any" }
                        @for k in KINDS {
                            option value=(k) selected[filters.kind == k] { (k) }
                        }
                    }
                }
                label { "Severity at least "
                    select name="severity" {
                        option value="" { "any" }
                        @for s in SEVERITIES {
                            option value=(s) selected[filters.severity == s] { (s) }
                        }
                    }
                }
                label { "Person " input type="text" name="principal" value=(filters.principal); }
                label { "Since " input type="text" name="since" placeholder="2026-03-18T09:00:00Z" value=(filters.since); }
                button type="submit" { "Filter" }
                a href="/" { "clear" }
            }
            @if let Some(e) = error { p.error { (e) } }
            p.count {
                (findings.len()) " shown of " (total) " in memory"
                span #live-state {}
            }
            table.findings #findings data-newest=(newest) {
                thead { tr { th { "Event time" } th { "Severity" } th { "Kind" } th { "Summary" } th { "People" } th { "Action" } } }
                tbody {
                    @for f in findings { (row(f)) }
                }
            }
            @if findings.is_empty() { p.empty { "No findings match." } }
        },
    )
}

/// One entry of a finding's timeline.
#[derive(Debug, Clone)]
pub struct Step {
    /// When: event time, or the wall clock for reachguard's own actions.
    pub ts: Ts,
    /// `advice`, `view`, `reference`, `grant`, `use`, `revocation`, ...
    pub step: &'static str,
    /// What happened, in words.
    pub detail: String,
    /// Ids the step names (advice, grant, event, idempotency key).
    pub ids: Vec<String>,
    /// Whose clock: the log's or reachguard's.
    pub clock: &'static str,
}

/// What a finding's page shows beside the finding.
#[derive(Debug, Default)]
pub struct Chain {
    /// The timeline, in time order.
    pub steps: Vec<Step>,
    /// Milliseconds from reading the grant line to the revocation finished.
    pub grant_to_revocation_ms: Option<i64>,
    /// The journal's entry for the revocation of the finding's grant, under
    /// its key.
    pub journal: Option<(String, Entry)>,
    /// Uses past those listed.
    pub more_uses: u64,
    /// The restore command, when the grant was revoked.
    pub restore: Option<String>,
    /// Whether uses are recorded at all (the single-node daemon).
    pub uses_recorded: bool,
}

fn ms_time(ms: i64) -> String {
    Ts(ms).to_string()
}

/// The scalar leaves of the evidence, `a.b.c = value`, chains left out.
fn evidence_numbers(v: &serde_json::Value, prefix: &str, out: &mut Vec<(String, String)>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                if k == "chain" {
                    continue;
                }
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                evidence_numbers(v, &key, out);
            }
        }
        serde_json::Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                evidence_numbers(v, &format!("{prefix}[{i}]"), out);
            }
        }
        serde_json::Value::Null => {}
        serde_json::Value::Number(n) => {
            let text = match n.as_f64() {
                Some(x) if n.is_f64() => format!("{}", (x * 1000.0).round() / 1000.0),
                _ => n.to_string(),
            };
            out.push((prefix.to_owned(), text));
        }
        serde_json::Value::String(s) => out.push((prefix.to_owned(), s.clone())),
        serde_json::Value::Bool(b) => out.push((prefix.to_owned(), b.to_string())),
    }
}

/// A finding's page.
pub fn finding(f: &Finding, chain: &Chain) -> Markup {
    let mut numbers = Vec::new();
    evidence_numbers(&f.evidence, "", &mut numbers);
    layout(
        &f.finding_id,
        html! {
            p.back { a href="/" { "← all findings" } }
            h1 { (severity(f)) " " span.kind { (f.kind.as_str()) } " " code.id { (f.finding_id) } }
            p.summary { (f.summary) }
            dl.facts {
                dt { "Event time" } dd { (f.ts) }
                @if let Some(g) = &f.grant_id { dt { "Grant" } dd { code.grant { (g) } } }
                @if let Some(a) = &f.advice_id { dt { "Advice" } dd { code.advice { (a) } } }
                @if let Some(r) = &f.resource { dt { "Resource" } dd.resource { (r) } }
                dt { "People" } dd { (people(&f.principals)) }
                dt { "Score" } dd { (format!("{:.2}", f.score)) }
            }
            @if let Some(ms) = chain.grant_to_revocation_ms {
                p.speed { "Revoked " strong #grant-to-revocation { (ms) " ms" } " after reachguard read the grant." }
            }
            h2 { "Chain" }
            ol.timeline #timeline {
                @for s in &chain.steps {
                    li class={ "step step-" (s.step) } data-step=(s.step) {
                        span.when title=(s.clock) { (s.ts) }
                        span.what { (s.step) }
                        span.detail { (s.detail) }
                        span.ids { @for id in &s.ids { " " code.ref { (id) } } }
                    }
                }
            }
            @if chain.more_uses > 0 {
                p.more { "and " (chain.more_uses) " more uses" }
            }
            @if !chain.uses_recorded {
                p.note { "Uses of the grant are recorded by the single-node daemon only." }
            }
            h2 { "Evidence" }
            @if numbers.is_empty() { p { "None." } } @else {
                dl.evidence {
                    @for (k, v) in &numbers { dt { (k) } dd { (v) } }
                }
            }
            h2 { "Action" }
            @match &f.action {
                Some(a) => {
                    p.action {
                        (match a.kind { crate::finding::ActionKind::Revoke => "revoke" }) " "
                        code.grant { (a.grant_id) } ": "
                        strong.status { (a.status.as_str()) }
                        @if let Some(r) = &a.reason { " (" (r) ")" }
                    }
                }
                None => { p { "No action." } }
            }
            @if let Some((key, e)) = &chain.journal {
                h3 { "Journal" }
                table.journal {
                    thead { tr { th { "Idempotency key" } th { "Line read" } th { "Intent" } th { "Done" } th { "Outcome" } th { "Attempts" } th { "Restore" } } }
                    tbody {
                        tr {
                            td { code { (key) } }
                            td { @if let Some(r) = e.read_at { (ms_time(r)) } @else { "–" } }
                            td { (ms_time(e.intent_at)) }
                            td { @if let Some((at, _)) = e.done { (ms_time(at)) } @else { "pending" } }
                            td { @if let Some(o) = e.outcome { (o.as_str()) } @else { "pending" } }
                            td { @if let Some((_, n)) = e.done { (n) } @else { "–" } }
                            td {
                                @if let Some(r) = &e.restore {
                                    (r.outcome.map_or("pending", |o| o.as_str())) " by " (r.requester.name()) " at " (ms_time(r.at))
                                    @if let Some(why) = &r.reason { ": " (why) }
                                } @else { "–" }
                            }
                        }
                    }
                }
            }
            @if let Some(cmd) = &chain.restore {
                h3 { "Undo the revocation" }
                div.copy {
                    pre { code #restore-cmd { (cmd) } }
                    button type="button" data-copy="restore-cmd" { "Copy" }
                }
            }
        },
    )
}

/// A person's page: what `reachguard explain` shows.
pub fn person(e: &Explanation) -> Markup {
    layout(
        &e.principal,
        html! {
            p.back { a href="/" { "← all findings" } }
            h1 { span.person-name { (e.principal) } }
            h2 { "Baseline" }
            @match e.seen {
                Some((a, b)) => p { (e.events) " accesses on " (e.active_days) " days, " (a) " .. " (b) ", " (e.exercised.len()) " distinct resources" },
                None => p { "None yet: judged against peers." },
            }
            h2 { "Peers" }
            @match e.peer_group {
                Some(c) => p { "Peer group " (c) " (" (e.peer_group_size) " engineers): " (people(&e.peers)) },
                None => p { "No peer group." },
            }
            @if !e.groups.is_empty() {
                p { "Groups used as peers: "
                    @for (i, (g, n)) in e.groups.iter().enumerate() {
                        @if i > 0 { ", " }
                        span.group { (g) } " (" (n) ")"
                    }
                }
            }
            @if !e.thresholds.is_empty() {
                table.thresholds {
                    thead { tr { th { "Window" } th { "Alerts at novelty" } th { "Normal" } th { "From" } } }
                    tbody {
                        @for t in &e.thresholds {
                            tr { td { (t.window) } td { (format!("{:.1}", t.threshold)) } td { (format!("{:.1} ± {:.1}", t.mean, t.std)) } td { (t.from) } }
                        }
                    }
                }
            }
            (resources("Holds", "held", &e.held))
            (resources("Uses (most used first)", "exercised", &e.exercised))
            @if !e.recent_new.is_empty() { (resources("New reach in the last window", "recent", &e.recent_new)) }
            h2 { "Recent findings" }
            @if e.findings.is_empty() { p { "None." } } @else {
                ul.person-findings {
                    @for f in e.findings.iter().rev() {
                        li { (f.ts) " " (severity(f)) " " a href=(finding_href(&f.finding_id)) { (f.summary) } }
                    }
                }
            }
        },
    )
}

/// Resources shown at most.
const RESOURCES_SHOWN: usize = 100;

fn resources(title: &str, class: &str, list: &[crate::explain::Resource]) -> Markup {
    html! {
        h2 { (title) " (" (list.len()) ")" }
        @if list.is_empty() { p { "None." } } @else {
            table class={ "resources " (class) } {
                thead { tr { th { "Resource" } th { "Tier" } th { "" } } }
                tbody {
                    @for r in list.iter().take(RESOURCES_SHOWN) {
                        tr { td.resource { (r.resource) } td { (r.tier) } td { (r.detail) } }
                    }
                }
            }
            @if list.len() > RESOURCES_SHOWN { p.more { "and " (list.len() - RESOURCES_SHOWN) " more" } }
        }
    }
}

/// A page that says what went wrong.
pub fn problem(title: &str, message: &str) -> Markup {
    layout(
        title,
        html! {
            p.back { a href="/" { "← all findings" } }
            h1 { (title) }
            p.error { (message) }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_words_are_quoted_unless_plainly_safe() {
        assert_eq!(shell_quote("g-90211"), "g-90211");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's; rm -rf /"), r"'it'\''s; rm -rf /'");
        assert_eq!(shell_quote("$(id)"), "'$(id)'");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn names_from_logs_are_escaped_in_text_attributes_and_links() {
        let hostile = r#"<img src=x onerror=alert(1)>"'&"#;
        let f = Finding {
            finding_id: "rg-1".into(),
            kind: crate::finding::FindingKind::GrantExpansion,
            severity: crate::finding::Severity::High,
            ts: Ts(0),
            principals: vec![hostile.into()],
            grant_id: Some(hostile.into()),
            advice_id: None,
            resource: Some(hostile.into()),
            score: 1.0,
            summary: hostile.into(),
            evidence: serde_json::json!({ "change": { "resource": hostile } }),
            action: None,
        };
        let html = finding(&f, &Chain::default()).into_string() + &row(&f).into_string();
        assert!(!html.contains("<img"), "{html}");
        assert!(
            html.contains("&lt;img src=x onerror=alert(1)&gt;"),
            "{html}"
        );
        assert!(!html.contains(r#"name=<img"#));
        assert!(
            html.contains(&person_href(hostile)),
            "the link carries it encoded"
        );
        assert!(!person_href(hostile).contains(['<', '"', '\'', ' ']));
    }
}
