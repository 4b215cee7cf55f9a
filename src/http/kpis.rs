//! Hotline KPIs over HTTP (issue 10's first piece): `GET /api/stats/calls` sums the call
//! records of calls that reached a queue per interval (`15m`, `hour`, `day`, `month`, China
//! time) and per queue or agent, with the definitions of [`crate::acd::kpi`]. The office's
//! supervisors, analysts and administrators; no personal data. Occupancy comes from the
//! agents' state history (`agent_states`). `?format=csv` for a spreadsheet, `?format=svg`
//! for a chart.

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::Authed;
use super::export::{self, Format};
use super::{ApiError, AppState};
use crate::acd::kpi::{By, CallFact, Interval, Kpi, StateSpan, add_occupancy, kpis};
use crate::users::Role;

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/api/stats/calls", get(calls))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KpiQuery {
    /// `15m`, `hour`, `day` (default), `month`.
    interval: Option<String>,
    /// `queue` (default) or `agent`.
    by: Option<String>,
    /// Calls queued at or after (RFC 3339; default: 24 hours ago).
    from: Option<DateTime<Utc>>,
    /// Calls queued before (default: now).
    to: Option<DateTime<Utc>>,
    /// `json` (default), `csv`, or `svg` (offered, answered and abandoned by interval).
    format: Option<String>,
}

/// The widest range one request may sum (a year and a bit).
const MAX_DAYS: i64 = 400;

async fn calls(
    user: Authed,
    State(state): State<AppState>,
    q: Result<Query<KpiQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    user.require(
        &[Role::Supervisor, Role::Analyst, Role::Admin],
        "reading call statistics",
    )?;
    let Query(q) = q.map_err(|e| ApiError::Unprocessable(e.body_text()))?;
    let format = Format::parse(q.format.as_deref())?;
    let interval_name = q.interval.as_deref().unwrap_or("day");
    let interval = Interval::parse(interval_name).ok_or_else(|| {
        ApiError::Unprocessable(format!(
            "interval {interval_name:?}: expected 15m, hour, day or month"
        ))
    })?;
    let by = match q.by.as_deref().unwrap_or("queue") {
        "queue" => By::Queue,
        "agent" => By::Agent,
        other => {
            return Err(ApiError::Unprocessable(format!(
                "by {other:?}: expected queue or agent"
            )));
        }
    };
    let to = super::error::time_in_range(q.to.unwrap_or_else(Utc::now), "to")?;
    let from = match q.from {
        Some(f) => super::error::time_in_range(f, "from")?,
        None => to - chrono::TimeDelta::hours(24),
    };
    if from >= to || (to - from).num_days() > MAX_DAYS {
        return Err(ApiError::Unprocessable(format!(
            "from {from} to {to}: expected from before to, at most {MAX_DAYS} days apart"
        )));
    }
    #[allow(clippy::type_complexity)]
    let rows: Vec<(
        String,
        Option<i64>,
        DateTime<Utc>,
        Option<DateTime<Utc>>,
        DateTime<Utc>,
        Option<String>,
        bool,
    )> = sqlx::query_as(
        "SELECT queue, agent_id, queued_at, agent_answered_at, ended_at, outcome, callback
           FROM calls
          WHERE queue IS NOT NULL AND queued_at >= $1 AND queued_at < $2 AND ended_at IS NOT NULL",
    )
    .bind(from)
    .bind(to)
    .fetch_all(&state.db)
    .await?;
    let facts: Vec<CallFact> = rows
        .into_iter()
        .map(
            |(queue, agent, queued_at, answered_at, ended_at, outcome, callback)| CallFact {
                queue,
                agent: agent.and_then(|a| u64::try_from(a).ok()),
                queued_at,
                answered_at,
                ended_at,
                abandoned: outcome.as_deref() == Some("abandoned"),
                callback,
            },
        )
        .collect();
    let mut table = kpis(&facts, interval, by);
    // Occupancy from the agents' state history (the open row of an agent runs until now).
    type SpanRow = (i64, Vec<String>, String, DateTime<Utc>, DateTime<Utc>);
    let rows: Vec<SpanRow> = sqlx::query_as(
        "SELECT agent_id, queues, state, started_at, COALESCE(ended_at, now())
           FROM agent_states
          WHERE started_at < $2 AND (ended_at > $1 OR ended_at IS NULL)",
    )
    .bind(from)
    .bind(to)
    .fetch_all(&state.db)
    .await?;
    let spans: Vec<StateSpan> = rows
        .into_iter()
        .map(|(agent, queues, state, start, end)| StateSpan {
            agent: u64::try_from(agent).unwrap_or_default(),
            queues,
            state,
            start,
            end,
        })
        .collect();
    add_occupancy(&mut table, &spans, interval, by, from, to);
    let key_name = if by == By::Queue { "queue" } else { "agent" };
    if format == Format::Csv {
        let f = export::num;
        let csv = export::csv(
            &[
                "start",
                key_name,
                "offered",
                "answered",
                "abandoned",
                "answered_15s",
                "answer_15s_rate",
                "connection_rate",
                "asa_secs",
                "aht_secs",
                "occupancy",
                "callbacks_made",
            ],
            table.iter().map(|((start, key), k)| {
                vec![
                    start.to_rfc3339(),
                    key.clone(),
                    k.offered.to_string(),
                    k.answered.to_string(),
                    k.abandoned.to_string(),
                    k.answered_15s.to_string(),
                    f(k.answer_15s_rate()),
                    f(k.connection_rate()),
                    f(k.average_speed_of_answer()),
                    f(k.average_handle_time()),
                    f(k.occupancy()),
                    k.callbacks_made.to_string(),
                ]
            }),
        );
        return Ok(export::csv_response("call-kpis", csv));
    }
    if format == Format::Svg {
        // One group per interval, all queues (or agents) together.
        let mut by_start: std::collections::BTreeMap<_, [f64; 3]> = Default::default();
        for ((start, _), k) in &table {
            let e = by_start.entry(*start).or_default();
            e[0] += f64::from(k.offered);
            e[1] += f64::from(k.answered);
            e[2] += f64::from(k.abandoned);
        }
        let labels: Vec<String> = by_start
            .keys()
            .map(|s| s.format("%m-%d %H:%M").to_string())
            .collect();
        let series = |i: usize| by_start.values().map(|v| v[i]).collect::<Vec<_>>();
        return Ok(export::svg_response(export::bars(
            &format!("Calls by {interval_name}"),
            &labels,
            &[
                ("offered", series(0)),
                ("answered", series(1)),
                ("abandoned", series(2)),
            ],
        )));
    }
    let row = |((start, key), k): (&(DateTime<chrono::FixedOffset>, String), &Kpi)| -> Value {
        json!({
            "start": start.to_rfc3339(),
            key_name: key,
            "offered": k.offered,
            "answered": k.answered,
            "abandoned": k.abandoned,
            "answered_15s": k.answered_15s,
            "answer_15s_rate": k.answer_15s_rate(),
            "connection_rate": k.connection_rate(),
            "asa_secs": k.average_speed_of_answer(),
            "aht_secs": k.average_handle_time(),
            "occupancy": k.occupancy(),
            "busy_secs": k.busy_secs,
            "staffed_secs": k.staffed_secs,
            "callbacks_made": k.callbacks_made,
        })
    };
    Ok(Json(json!({
        "interval": interval_name,
        "by": key_name,
        "from": from,
        "to": to,
        "rows": table.iter().map(row).collect::<Vec<_>>(),
    }))
    .into_response())
}
