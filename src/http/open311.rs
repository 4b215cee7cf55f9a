//! Open311 GeoReport v2 (<https://wiki.open311.org/GeoReport_v2>), so civic web and app
//! clients can file requests that become tickets (Art. 2: one platform for every channel).
//!
//! - `GET /open311/v2/services.json`: the category catalogue as services
//! - `GET /open311/v2/services/{service_code}.json`: its definition (one attribute,
//!   `request_type`, a single-value list of the hotline's request types)
//! - `POST /open311/v2/requests.json` (form-encoded; `api_key` required): files a ticket on
//!   the client's channel and answers its number as `service_request_id`, with the
//!   citizen's `access_code` for following it (see `public.rs`)
//! - `GET /open311/v2/requests.json` (`service_request_id`, `service_code`, `start_date`,
//!   `end_date`, `status`) and `GET /open311/v2/requests/{id}.json`
//! - `GET /open311/v2/tokens/{token}.json`: requests get their id at once, so a token is the id
//!
//! Only JSON is served (`.xml` answers 400 saying so). The public feed shows only requests
//! filed through Open311, and never the caller's name, phone or e-mail: phone tickets hold
//! citizens' stories that were not given for publication. What it shows of the rest is the
//! category's `public_view`: "full" (description, address, position), "summary" (service,
//! status, unit, dates) or "none" (not listed); a report (举报) is at most a summary and a
//! confidential ticket is never listed. Errors are the spec's list of
//! `{"code", "description"}`.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Form, Json, Router};
use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};

use super::AppState;
use crate::tickets::store::{self, Channel, NewTicket, RequestType};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/open311/v2/services.json", get(services))
        .route("/open311/v2/services/{code}", get(definition))
        .route(
            "/open311/v2/requests.json",
            get(requests).post(post_request),
        )
        .route("/open311/v2/requests/{id}", get(one_request))
        .route("/open311/v2/tokens/{token}", get(token))
}

/// An Open311 error: the status and the spec's body.
struct Error(StatusCode, String);

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let body = json!([{ "code": self.0.as_u16(), "description": self.1 }]);
        let mut r = (self.0, Json(body)).into_response();
        if self.0 == StatusCode::SERVICE_UNAVAILABLE {
            r.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                super::error::UNAVAILABLE_RETRY_SECS.into(),
            );
        }
        r
    }
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        let api: super::ApiError = e.into();
        Error(api.status(), api.to_string())
    }
}

impl From<store::StoreError> for Error {
    fn from(e: store::StoreError) -> Self {
        let api: super::ApiError = e.into();
        let status = if api.status() == StatusCode::UNPROCESSABLE_ENTITY {
            StatusCode::BAD_REQUEST
        } else {
            api.status()
        };
        Error(status, api.to_string())
    }
}

fn bad(msg: impl Into<String>) -> Error {
    Error(StatusCode::BAD_REQUEST, msg.into())
}

/// `name.json` -> `name`; any other format is refused.
fn json_only(segment: &str) -> Result<&str, Error> {
    segment
        .strip_suffix(".json")
        .ok_or_else(|| bad("only the .json format is served"))
}

const REQUEST_TYPES: [(&str, &str); 6] = [
    ("consultation", "咨询 Consultation"),
    ("help", "求助 Request for help"),
    ("suggestion", "建议 Suggestion"),
    ("complaint", "投诉 Complaint"),
    ("report", "举报 Report"),
    ("praise", "表扬 Praise"),
];

async fn services(State(state): State<AppState>) -> Result<Json<Value>, Error> {
    let rows =
        sqlx::query!("SELECT code, name, description FROM categories WHERE active ORDER BY code")
            .fetch_all(&state.db)
            .await?;
    Ok(Json(Value::Array(
        rows.into_iter()
            .map(|r| {
                json!({
                    "service_code": r.code,
                    "service_name": r.name,
                    "description": r.description,
                    "metadata": true,
                    "type": "realtime",
                    "keywords": "",
                    "group": "12345",
                })
            })
            .collect(),
    )))
}

async fn definition(
    State(state): State<AppState>,
    Path(code): Path<String>,
) -> Result<Json<Value>, Error> {
    let code = json_only(&code)?;
    let exists = sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM categories WHERE code = $1 AND active) AS "e!""#,
        code
    )
    .fetch_one(&state.db)
    .await?;
    if !exists {
        return Err(Error(StatusCode::NOT_FOUND, format!("no service {code:?}")));
    }
    let values: Vec<Value> = REQUEST_TYPES
        .iter()
        .map(|(k, name)| json!({ "key": k, "name": name }))
        .collect();
    Ok(Json(json!({
        "service_code": code,
        "attributes": [{
            "variable": true,
            "code": "request_type",
            "datatype": "singlevaluelist",
            "required": false,
            "datatype_description": "What the citizen asks for; help when not given.",
            "order": 1,
            "description": "Request type",
            "values": values,
        }],
    })))
}

async fn post_request(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(f): Form<HashMap<String, String>>,
) -> Result<Response, Error> {
    let idempotency = super::tickets::idempotency_key(&headers).map_err(bad)?;
    let get = |k: &str| f.get(k).map(|s| s.trim()).filter(|s| !s.is_empty());
    let key = get("api_key").ok_or_else(|| {
        Error(
            StatusCode::FORBIDDEN,
            "api_key is required to file a request".into(),
        )
    })?;
    let client = sqlx::query!(
        "SELECT name, channel FROM open311_clients WHERE key_hash = $1 AND enabled",
        crate::users::secret_hash(key)
    )
    .fetch_optional(&state.db)
    .await?
    .ok_or_else(|| Error(StatusCode::FORBIDDEN, "api_key is not valid".into()))?;
    let service_code = get("service_code").ok_or_else(|| bad("service_code is required"))?;
    let number = |k: &str| -> Result<Option<f64>, Error> {
        get(k)
            .map(|v| {
                v.parse::<f64>()
                    .map_err(|_| bad(format!("{k} is not a number")))
            })
            .transpose()
    };
    let (lat, lon) = (number("lat")?, number("long")?);
    let address = get("address_string").unwrap_or_default();
    if (lat.is_none() || lon.is_none()) && address.is_empty() && get("address_id").is_none() {
        return Err(bad(
            "a location is required: lat and long, address_string or address_id",
        ));
    }
    let description = get("description")
        .ok_or_else(|| bad("description is required: say what happened and what you ask for"))?;
    let request_type = match get("attribute[request_type]") {
        None => RequestType::Help,
        Some(t) => serde_json::from_value(Value::String(t.to_string())).map_err(|_| {
            bad(format!(
                "attribute[request_type] {t:?} is not one of {}",
                REQUEST_TYPES.map(|(k, _)| k).join(", ")
            ))
        })?,
    };
    let channel: Channel =
        serde_json::from_value(Value::String(client.channel.clone())).unwrap_or(Channel::App);
    let name = [get("first_name"), get("last_name")]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
    let ticket = NewTicket {
        channel,
        request_type,
        category: service_code.to_string(),
        address: address.to_string(),
        district: String::new(),
        town: String::new(),
        lat: lat.filter(|_| lon.is_some()),
        lon: lon.filter(|_| lat.is_some()),
        description: description.to_string(),
        caller_name: Some(name).filter(|n| !n.is_empty()),
        caller_phone: get("phone").map(str::to_string),
        confidential: false,
        call_id: None,
        recording: None,
        ivr_path: Vec::new(),
    };
    let filed = store::create_once(
        &state.db,
        &state.tickets,
        &ticket,
        &format!("open311:{}", client.name),
        idempotency.as_ref(),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        super::tickets::replayed(&filed),
        Json(json!([{
            "service_request_id": filed.row().number,
            // The citizen's proof for following the request (Art. 13): the client tells it to
            // the citizen; it is never in a list or a later answer.
            "access_code": filed.row().access_code,
            "service_notice": "",
            "account_id": null,
        }])),
    )
        .into_response())
}

fn parse_time(f: &HashMap<String, String>, k: &str) -> Result<Option<DateTime<Utc>>, Error> {
    f.get(k)
        .filter(|s| !s.is_empty())
        .map(|s| {
            DateTime::parse_from_rfc3339(s)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| bad(format!("{k} is not a W3C (RFC 3339) date-time")))
                .and_then(|t| {
                    super::error::time_in_range(t, k)
                        .map_err(|_| bad(format!("{k} {s}: expected a date from 2000 to 2199")))
                })
        })
        .transpose()
}

async fn requests(
    State(state): State<AppState>,
    Query(f): Query<HashMap<String, String>>,
) -> Result<Json<Value>, Error> {
    let ids: Option<Vec<String>> = f
        .get("service_request_id")
        .map(|s| s.split(',').map(|x| x.trim().to_string()).collect());
    let end = parse_time(&f, "end_date")?.unwrap_or_else(|| state.tickets.clock.now());
    let start = parse_time(&f, "start_date")?.unwrap_or(end - Duration::days(90));
    let status = match f.get("status").map(String::as_str) {
        None | Some("") => None,
        Some(s @ ("open" | "closed")) => Some(s == "open"),
        Some(s) => return Err(bad(format!("status {s:?} is not open or closed"))),
    };
    let rows = fetch(&state, ids.as_deref(), f.get("service_code"), start, end).await?;
    Ok(Json(Value::Array(
        rows.into_iter()
            .filter(|r| {
                status.is_none_or(|open| r["status"] == if open { "open" } else { "closed" })
            })
            .collect(),
    )))
}

/// One published request as the feed reads it.
#[derive(sqlx::FromRow)]
struct Published {
    number: String,
    status: String,
    category: String,
    service_name: String,
    description: String,
    agency: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    due_at: Option<DateTime<Utc>>,
    address: String,
    lat: Option<f64>,
    lon: Option<f64>,
    reply: Option<String>,
    public_note: Option<String>,
    public_view: String,
    request_type: String,
}

impl Published {
    /// Whether the story and the place may be shown: the category says "full" and the
    /// request is not a report (an informant's account, Art. 11).
    fn in_full(&self) -> bool {
        self.public_view == "full" && self.request_type != "report"
    }

    fn to_json(&self) -> Value {
        let open = crate::tickets::workflow::Status::is_open_name(&self.status);
        let full = self.in_full();
        // A summary keeps what the office wrote for the public, not the unit's reply to the
        // citizen, which may repeat the story.
        let notes = if full {
            self.reply.as_ref().or(self.public_note.as_ref())
        } else {
            self.public_note.as_ref()
        };
        json!({
            "service_request_id": self.number,
            "status": if open { "open" } else { "closed" },
            "status_notes": notes.cloned().unwrap_or_default(),
            "service_name": self.service_name,
            "service_code": self.category,
            "description": if full { self.description.as_str() } else { "" },
            "agency_responsible": self.agency.clone().unwrap_or_default(),
            "service_notice": "",
            "requested_datetime": self.created_at.to_rfc3339(),
            "updated_datetime": self.updated_at.to_rfc3339(),
            "expected_datetime": self.due_at.map(|d| d.to_rfc3339()),
            "address": if full { self.address.as_str() } else { "" },
            "address_id": "",
            "zipcode": "",
            "lat": self.lat.filter(|_| full),
            "long": self.lon.filter(|_| full),
            "media_url": "",
        })
    }
}

/// The public feed: requests filed through Open311 whose category is published, never a
/// confidential one.
async fn fetch(
    state: &AppState,
    ids: Option<&[String]>,
    service_code: Option<&String>,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Result<Vec<Value>, Error> {
    let rows = sqlx::query_as::<_, Published>(
        "SELECT t.number, t.status, t.category, c.name AS service_name, t.description,
                u.name AS agency, t.created_at, t.updated_at, t.due_at, t.address,
                t.lat, t.lon, t.reply, t.public_note, c.public_view, t.request_type
         FROM tickets t JOIN categories c ON c.code = t.category
         LEFT JOIN units u ON u.id = t.lead_unit
         WHERE t.created_by LIKE 'open311:%'
           AND NOT t.confidential AND c.public_view <> 'none'
           AND ($1::text[] IS NULL OR t.number = ANY($1))
           AND ($2::text IS NULL OR t.category = $2)
           AND ($1::text[] IS NOT NULL OR t.created_at BETWEEN $3 AND $4)
         ORDER BY t.id DESC LIMIT 1000",
    )
    .bind(ids)
    .bind(service_code)
    .bind(start)
    .bind(end)
    .fetch_all(&state.db)
    .await?;
    Ok(rows.iter().map(Published::to_json).collect())
}

async fn one_request(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, Error> {
    let id = json_only(&id)?.to_string();
    let rows = fetch(
        &state,
        Some(std::slice::from_ref(&id)),
        None,
        state.tickets.clock.now(),
        state.tickets.clock.now(),
    )
    .await?;
    if rows.is_empty() {
        return Err(Error(StatusCode::NOT_FOUND, format!("no request {id}")));
    }
    Ok(Json(Value::Array(rows)))
}

async fn token(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> Result<Json<Value>, Error> {
    let token = json_only(&token)?.to_string();
    let rows = fetch(
        &state,
        Some(std::slice::from_ref(&token)),
        None,
        state.tickets.clock.now(),
        state.tickets.clock.now(),
    )
    .await?;
    if rows.is_empty() {
        return Err(Error(StatusCode::NOT_FOUND, format!("no token {token}")));
    }
    Ok(Json(
        json!([{ "service_request_id": token, "token": token }]),
    ))
}
