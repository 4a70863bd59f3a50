//! The incident page: a read-only web page on the daemon's HTTP address.
//!
//! - `/` lists the findings in memory, newest first, with filters (kind,
//!   severity, person, time) in the query string, rendered on the server so
//!   it works without JavaScript; `/assets/live.js` adds new findings as they
//!   are written, from the server-sent events of `/events`.
//! - `/finding?id=ID` shows a finding's chain as a timeline (the advice, who
//!   viewed it, the grant, who used it, the revocation and how many
//!   milliseconds after the grant line was read), the evidence, the action,
//!   its journal entries and the `reachguard restore` command that undoes it.
//! - `/person?name=NAME` shows what `reachguard explain` shows, from the
//!   running engine.
//!
//! Same access rules as `/api`: with a token configured every route answers
//! 401 without it (a browser may send it as the password of HTTP Basic
//! authentication). Nothing here changes state. Every string from a log is
//! escaped ([`view`]), the assets are embedded in the binary, and a
//! Content-Security-Policy allows scripts from the daemon's own files only.

pub mod view;

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use maud::Markup;
use tokio::sync::broadcast;

use crate::event::Ts;
use crate::explain::Explanation;
use crate::finding::Finding;
use crate::respond::journal::Journal;
use crate::sink::Recent;

/// The handlers' way to the engine's owner with a person's name.
pub type Asker = crate::owner::Asker<String, Result<Explanation, crate::explain::Error>>;
/// A person's name waiting for the engine's owner.
pub type Request = crate::owner::Request<String, Result<Explanation, crate::explain::Error>>;

/// A new channel for the person pages: the handlers' end and the owner's.
pub fn channel() -> (Asker, tokio::sync::mpsc::Receiver<Request>) {
    crate::owner::channel()
}

/// What the page reads.
#[derive(Clone)]
pub struct PageState {
    /// The findings in memory.
    pub recent: Recent,
    /// The token every page needs, when one is configured.
    pub token: Option<Arc<str>>,
    /// The revocation journal (the single-node daemon's).
    pub journal: Option<Arc<Mutex<Journal>>>,
    /// Uses of reported grants (the single-node daemon's).
    pub uses: Option<crate::uses::Shared>,
    /// The engine's owner, for person pages.
    pub people: Option<Asker>,
    /// New findings as they are written.
    pub live: broadcast::Sender<Finding>,
    /// The config file, for the restore command.
    pub config_path: Option<PathBuf>,
    /// Turns true when the server stops: live streams end then, so that a
    /// page left open does not hold up shutdown.
    pub stopping: Option<tokio::sync::watch::Receiver<bool>>,
}

impl PageState {
    /// A page over findings only (no journal, uses or people).
    pub fn new(
        recent: Recent,
        token: Option<Arc<str>>,
        live: broadcast::Sender<Finding>,
        config_path: Option<PathBuf>,
    ) -> PageState {
        PageState {
            recent,
            token,
            journal: None,
            uses: None,
            people: None,
            live,
            config_path,
            stopping: None,
        }
    }
}

/// Findings the list shows when the query does not say.
const LIST_DEFAULT: usize = 200;

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The page's routes over `page`, to be merged into the server's: each
/// passes [`guard`] first.
pub fn routes<S: Clone + Send + Sync + 'static>(page: PageState) -> Router<S> {
    Router::new()
        .route("/", get(list))
        .route("/finding", get(finding))
        .route("/person", get(person))
        .route("/events", get(events))
        .route("/assets/style.css", get(style))
        .route("/assets/live.js", get(script))
        .route_layer(axum::middleware::from_fn_with_state(page.clone(), guard))
        .with_state(page)
}

/// Every page route: 401 without the token, and the headers of [`secure`]
/// on whatever it answers.
async fn guard(
    State(s): State<PageState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if !crate::access::authorised(s.token.as_deref(), req.headers()) {
        return secure(unauthorised());
    }
    secure(next.run(req).await)
}

/// Headers every page response carries.
fn secure(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    resp
}

fn html(status: StatusCode, m: Markup) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        m.into_string(),
    )
        .into_response()
}

/// 401 with a challenge a browser answers by asking for the token.
fn unauthorised() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(
            header::WWW_AUTHENTICATE,
            r#"Basic realm="reachguard", charset="UTF-8""#,
        )],
        "a token is required: send it as a bearer token or as the password of Basic authentication\n",
    )
        .into_response()
}

/// The list's query string.
#[derive(Debug, Default, serde::Deserialize)]
pub struct ListQuery {
    /// Only this kind.
    #[serde(default)]
    pub kind: String,
    /// Only this severity or worse.
    #[serde(default)]
    pub severity: String,
    /// Only findings naming this person.
    #[serde(default)]
    pub principal: String,
    /// Only findings at or after this event time (RFC 3339).
    #[serde(default)]
    pub since: String,
    /// At most this many.
    pub limit: Option<usize>,
    /// Live updates: only findings written after this one (its id).
    #[serde(default)]
    pub after: String,
}

fn non_empty(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_owned())
}

impl ListQuery {
    fn filter(&self, limit: usize) -> crate::sink::Query {
        crate::sink::Query {
            since: non_empty(&self.since),
            kind: non_empty(&self.kind),
            principal: non_empty(&self.principal),
            severity: non_empty(&self.severity),
            limit: Some(limit),
        }
    }
}

async fn list(State(s): State<PageState>, Query(q): Query<ListQuery>) -> Response {
    let limit = q.limit.unwrap_or(LIST_DEFAULT);
    let total = s.recent.read().expect("findings lock").len();
    let (found, error) = match crate::sink::query(&s.recent, &q.filter(limit)) {
        Ok(found) => (found, None),
        Err(e) => (Vec::new(), Some(e)),
    };
    let newest_first: Vec<&Finding> = found.iter().rev().collect();
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    html(
        status,
        view::list(&newest_first, total, &q, error.as_deref()),
    )
}

#[derive(Debug, serde::Deserialize)]
struct IdQuery {
    #[serde(default)]
    id: String,
}

/// Finds a finding in memory by id (the latest version of it).
fn find(recent: &crate::sink::Recent, id: &str) -> Option<Finding> {
    let all = recent.read().expect("findings lock");
    all.iter().rev().find(|f| f.finding_id == id).cloned()
}

async fn finding(State(s): State<PageState>, Query(q): Query<IdQuery>) -> Response {
    let Some(f) = find(&s.recent, &q.id) else {
        return html(
            StatusCode::NOT_FOUND,
            view::problem(
                "No such finding",
                &format!("No finding {:?} is in memory.", q.id),
            ),
        );
    };
    // One grant, one revocation key; cloned so the lock, which the pipeline
    // takes to journal revocations, is not held while the page renders.
    let journal = match (&s.journal, &f.grant_id) {
        (Some(j), Some(g)) => {
            let key = crate::respond::revoke_key(g);
            let entry = j.lock().expect("journal lock").get(&key).cloned();
            entry.map(|e| (key, e))
        }
        _ => None,
    };
    let uses = s.uses.as_ref().map(|u| {
        u.read()
            .expect("uses lock")
            .get(&f.finding_id)
            .cloned()
            .unwrap_or_default()
    });
    let chain = chain(&f, journal, uses.as_ref(), s.config_path.as_deref());
    html(StatusCode::OK, view::finding(&f, &chain))
}

/// Names the step of a provenance chain link.
fn step_name(step: &str) -> &'static str {
    match step {
        "agent_published_advice" => "advice",
        "actor_viewed_advice" => "view",
        "reference_cites_channel" | "reference_names_advice" => "reference",
        "advice_verified" | "verified" => "verification",
        _ => "evidence",
    }
}

/// The timeline of a finding: its trace's links, the grant, the uses, the
/// revocation; in time order (ties keep that order).
pub fn chain(
    f: &Finding,
    journal: Option<(String, crate::respond::journal::Entry)>,
    uses: Option<&crate::uses::Uses>,
    config_path: Option<&std::path::Path>,
) -> view::Chain {
    let mut steps = Vec::new();
    let trace = f.evidence.get("trace");
    let advice_id = trace
        .and_then(|t| t.get("advice_id"))
        .and_then(|v| v.as_str())
        .or(f.advice_id.as_deref());
    if let Some(links) = trace
        .and_then(|t| t.get("chain"))
        .and_then(|c| c.as_array())
    {
        for link in links {
            let step = link.get("step").and_then(|v| v.as_str()).unwrap_or("");
            let Some(ts) = link
                .get("ts")
                .and_then(|v| v.as_str())
                .and_then(Ts::parse_rfc3339)
            else {
                continue;
            };
            steps.push(view::Step {
                ts,
                step: step_name(step),
                detail: link
                    .get("detail")
                    .and_then(|v| v.as_str())
                    .unwrap_or(step)
                    .to_owned(),
                ids: advice_id.map(str::to_owned).into_iter().collect(),
                clock: "event time",
            });
        }
    }
    // Reference links happen at the grant's time; the grant goes first among them.
    if let Some(g) = &f.grant_id {
        let change = f.evidence.get("change");
        let get = |k: &str| change.and_then(|c| c.get(k)).and_then(|v| v.as_str());
        let detail = match (get("actor"), get("grantee"), get("resource")) {
            (Some(a), Some(who), Some(r)) => match get("role") {
                Some(role) => format!("{a} granted {who} {role} on {r}"),
                None => format!("{a} granted {who} access to {r}"),
            },
            _ => f.summary.clone(),
        };
        let at = steps
            .iter()
            .position(|s| s.ts >= f.ts)
            .unwrap_or(steps.len());
        steps.insert(
            at,
            view::Step {
                ts: f.ts,
                step: "grant",
                detail,
                ids: vec![g.clone()],
                clock: "event time",
            },
        );
    }
    let mut more_uses = 0;
    if let Some(u) = uses {
        more_uses = u.more;
        for x in &u.list {
            steps.push(view::Step {
                ts: x.ts,
                step: "use",
                detail: format!(
                    "{} {} {}",
                    x.principal,
                    if x.denied { "was refused" } else { "used" },
                    x.resource
                ),
                ids: x.event_id.clone().into_iter().collect(),
                clock: "event time",
            });
        }
    }
    let mut grant_to_revocation_ms = None;
    let mut restore = None;
    if let Some((key, e)) = &journal {
        if let Some((done, attempts)) = e.done {
            let from = e.read_at.unwrap_or(e.intent_at);
            let ms = done - from;
            let status = e.outcome.map_or("pending", |o| o.as_str());
            steps.push(view::Step {
                ts: Ts(done),
                step: "revocation",
                detail: format!(
                    "revocation {status} {ms} ms after the grant line was read ({attempts} hook attempt{})",
                    if attempts == 1 { "" } else { "s" }
                ),
                ids: vec![key.clone()],
                clock: "reachguard's clock",
            });
            if e.outcome == Some(crate::finding::ActionStatus::Executed) {
                grant_to_revocation_ms = Some(ms);
                let grant = e.finding.grant_id.as_deref().unwrap_or_default();
                restore = Some(format!(
                    "reachguard restore{} {} --reason {}",
                    config_path.map_or(String::new(), |p| format!(
                        " --config {}",
                        view::shell_quote(&p.display().to_string())
                    )),
                    view::shell_quote(grant),
                    view::shell_quote("verified by a person"),
                ));
            }
        }
    }
    // Stable: equal times keep the order above (advice, view, grant, ...).
    steps.sort_by_key(|s| s.ts);
    view::Chain {
        steps,
        grant_to_revocation_ms,
        journal,
        more_uses,
        restore,
        uses_recorded: uses.is_some(),
    }
}

#[derive(Debug, serde::Deserialize)]
struct NameQuery {
    #[serde(default)]
    name: String,
}

async fn person(State(s): State<PageState>, Query(q): Query<NameQuery>) -> Response {
    let Some(people) = &s.people else {
        return html(
            StatusCode::SERVICE_UNAVAILABLE,
            view::problem(
                "No engine here",
                "Person pages are served by the single-node daemon, whose engine knows everyone.",
            ),
        );
    };
    match people.ask(q.name.clone()).await {
        Ok(Ok(e)) => html(StatusCode::OK, view::person(&e)),
        Ok(Err(e)) => html(
            StatusCode::NOT_FOUND,
            view::problem("Unknown person", &e.to_string()),
        ),
        Err(e) => html(
            StatusCode::SERVICE_UNAVAILABLE,
            view::problem("No engine", &e.to_string()),
        ),
    }
}

/// The findings of `recent` written after the one with id `after`, oldest
/// first (none when it is not in memory: the page is fresh enough).
fn written_after(recent: &VecDeque<Finding>, after: &str) -> Vec<Finding> {
    match recent.iter().rposition(|f| f.finding_id == after) {
        Some(i) => recent.iter().skip(i + 1).cloned().collect(),
        None => Vec::new(),
    }
}

/// One live update: the finding's id and its row, rendered as the list
/// renders it.
fn live_event(f: &Finding) -> SseEvent {
    let data = serde_json::json!({ "id": f.finding_id, "row": view::row(f).into_string() });
    SseEvent::default().event("finding").data(data.to_string())
}

async fn events(State(s): State<PageState>, Query(q): Query<ListQuery>) -> Response {
    let filter = match crate::sink::Filter::parse(&q.filter(usize::MAX)) {
        Ok(f) => f,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
    };
    // Subscribed before the backlog is read, so nothing falls between.
    let rx = s.live.subscribe();
    let backlog: Vec<Finding> = if q.after.is_empty() {
        Vec::new()
    } else {
        written_after(&s.recent.read().expect("findings lock"), &q.after)
    };
    let backlog: Vec<Finding> = backlog.into_iter().filter(|f| filter.matches(f)).collect();
    let stream = futures_util::stream::unfold(
        (backlog.into_iter(), rx, filter, s.stopping.clone(), false),
        |(mut backlog, mut rx, filter, mut stopping, done)| async move {
            if done {
                return None;
            }
            if let Some(f) = backlog.next() {
                return Some((
                    Ok::<_, std::convert::Infallible>(live_event(&f)),
                    (backlog, rx, filter, stopping, false),
                ));
            }
            loop {
                let next = tokio::select! {
                    next = rx.recv() => next,
                    () = stopped(&mut stopping) => return None,
                };
                match next {
                    Ok(f) => {
                        if filter.matches(&f) {
                            return Some((
                                Ok(live_event(&f)),
                                (backlog, rx, filter, stopping, false),
                            ));
                        }
                    }
                    // Too far behind to tell what was missed: the page
                    // reloads, and this stream ends.
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        return Some((
                            Ok(SseEvent::default().event("reload").data("")),
                            (backlog, rx, filter, stopping, true),
                        ));
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        },
    );
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// Resolves when the server stops; never without a signal to wait on.
async fn stopped(stopping: &mut Option<tokio::sync::watch::Receiver<bool>>) {
    match stopping {
        // An error means the sender is gone, which only happens on the way out.
        Some(rx) => drop(rx.wait_for(|s| *s).await),
        None => std::future::pending().await,
    }
}

async fn style() -> Response {
    asset("text/css; charset=utf-8", include_str!("assets/style.css"))
}

async fn script() -> Response {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("assets/live.js"),
    )
}

fn asset(kind: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "private, max-age=300"),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finding::{Action, ActionKind, ActionStatus, FindingKind, Severity};
    use crate::respond::journal::Entry;
    use crate::uses::{Use, Uses};

    fn at(s: &str) -> Ts {
        Ts::parse_rfc3339(s).unwrap()
    }

    fn incident() -> Finding {
        Finding {
            finding_id: "rg-1".into(),
            kind: FindingKind::UnverifiedAgentGrant,
            severity: Severity::Critical,
            ts: at("2026-03-18T09:07:02Z"),
            principals: vec!["carol".into(), "ivan".into()],
            grant_id: Some("g-90211".into()),
            advice_id: Some("adv-7731".into()),
            resource: Some("acl/internal-tools".into()),
            score: 3.8,
            summary: "s".into(),
            evidence: serde_json::json!({
                "change": {"actor": "alice", "grantee": "eng-all", "resource": "acl/internal-tools", "role": "viewer"},
                "trace": {"advice_id": "adv-7731", "chain": [
                    {"step": "agent_published_advice", "ts": "2026-03-18T09:02:11Z", "detail": "published"},
                    {"step": "actor_viewed_advice", "ts": "2026-03-18T09:05:40Z", "detail": "viewed"},
                    {"step": "reference_cites_channel", "ts": "2026-03-18T09:07:02Z", "detail": "cites"}
                ]}
            }),
            action: Some(Action {
                kind: ActionKind::Revoke,
                grant_id: "g-90211".into(),
                status: ActionStatus::Executed,
                reason: None,
            }),
        }
    }

    #[test]
    fn the_chain_runs_advice_view_grant_uses_revocation_with_the_milliseconds_between() {
        let f = incident();
        // Read 09:07:02.100 on reachguard's clock (a live log), done 4 ms later.
        let read = at("2026-03-18T09:07:02.100Z").0;
        let entry = Entry {
            payload: serde_json::json!({}),
            finding: f.clone(),
            intent_at: read + 1,
            read_at: Some(read),
            outcome: Some(ActionStatus::Executed),
            done: Some((read + 4, 1)),
            restore: None,
        };
        let used = |who: &str, ts: &str| Use {
            finding_id: "rg-1".into(),
            principal: who.into(),
            resource: "acl/internal-tools".into(),
            ts: at(ts),
            denied: false,
            event_id: Some(format!("acc-{who}")),
        };
        // One use before the revocation, one refused after it.
        let mut late = used("ivan", "2026-03-18T09:11:40Z");
        late.denied = true;
        let uses = Uses {
            list: vec![used("carol", "2026-03-18T09:07:02.050Z"), late],
            more: 3,
        };
        let chain = chain(
            &f,
            Some(("reachguard-revoke-g-90211".to_owned(), entry)),
            Some(&uses),
            Some(std::path::Path::new("/etc/reachguard/my config.toml")),
        );
        let steps: Vec<&str> = chain.steps.iter().map(|s| s.step).collect();
        assert_eq!(
            steps,
            [
                "advice",
                "view",
                "grant",
                "reference",
                "use",
                "revocation",
                "use"
            ]
        );
        assert_eq!(chain.grant_to_revocation_ms, Some(4));
        assert_eq!(chain.more_uses, 3);
        assert!(chain.steps[6].detail.contains("ivan was refused"));
        assert_eq!(chain.steps[2].ids, ["g-90211"]);
        assert_eq!(chain.steps[0].ids, ["adv-7731"]);
        assert_eq!(
            chain.restore.as_deref(),
            Some(
                "reachguard restore --config '/etc/reachguard/my config.toml' g-90211 --reason 'verified by a person'"
            )
        );
    }

    #[test]
    fn without_a_journal_entry_there_is_no_revocation_and_nothing_to_restore() {
        let chain = chain(&incident(), None, None, None);
        assert!(chain.steps.iter().all(|s| s.step != "revocation"));
        assert_eq!(chain.grant_to_revocation_ms, None);
        assert_eq!(chain.restore, None);
        assert!(!chain.uses_recorded);
    }
}
