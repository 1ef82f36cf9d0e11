//! The travel example's booking function, behind the `booking-tg` LAMBDA target group
//! (`lambdaEventStructureVersion` V2). It answers one route of the front-end service:
//!
//! - `POST /api/bookings` with `{"flight": "TR142", "date": "2026-12-24", "seats": 2,
//!   "passenger": {"name": "Ada Lovelace", "email": "ada@example.com"}}` → `201` and the booking,
//!   priced in the `CURRENCY` at `FARE_PER_SEAT` (both from the function's `Environment` in
//!   `trellis.json`); its id is the Lambda request id that made it.
//! - a body that is not such a booking → `400` and `{"error", "field", "message"}` naming the
//!   first bad field; another method on `/api/bookings` → `405`; any other path → `404`.
//!
//! It stores nothing: each worker is its own process, Trellis starts and reaps workers as load
//! comes and goes, and memory is not shared between them, so a booking kept here would be lost
//! or seen by one worker only. A real one would write to a database reached through a resource
//! configuration (as `examples/fraud-detection` does) before answering.

use std::collections::BTreeMap;

use base64::Engine as _;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

/// The VPC Lattice event, version 2.0: the members this function reads.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LatticeRequest {
    method: String,
    path: String,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    is_base64_encoded: bool,
}

/// The answer a LAMBDA target group maps back to HTTP.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct LatticeResponse {
    status_code: u16,
    headers: BTreeMap<&'static str, String>,
    body: String,
    is_base64_encoded: bool,
}

impl LatticeResponse {
    fn json(status_code: u16, body: &Value) -> Self {
        let mut headers = BTreeMap::new();
        headers.insert("content-type", "application/json".to_string());
        Self {
            status_code,
            headers,
            body: body.to_string(),
            is_base64_encoded: false,
        }
    }

    fn error(status_code: u16, error: &str, message: impl Into<String>) -> Self {
        Self::json(
            status_code,
            &json!({"error": error, "message": message.into()}),
        )
    }
}

/// What the function reads from its environment at start.
struct Settings {
    currency: String,
    /// The fare of one seat, in hundredths of the currency.
    fare_per_seat: u64,
}

impl Settings {
    fn from_env() -> Result<Self, Error> {
        let var = |name: &str| {
            std::env::var(name).map_err(|_| {
                format!("{name} is not set: give it in the function's Environment (trellis.json)")
            })
        };
        let currency = var("CURRENCY")?;
        if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(
                format!("CURRENCY must be an ISO 4217 code such as EUR, not {currency:?}").into(),
            );
        }
        let fare = var("FARE_PER_SEAT")?;
        let fare_per_seat = parse_amount(&fare).ok_or_else(|| {
            format!("FARE_PER_SEAT must be an amount such as 129.00, not {fare:?}")
        })?;
        Ok(Self {
            currency,
            fare_per_seat,
        })
    }
}

/// `129`, `129.5` or `129.50` in hundredths.
fn parse_amount(text: &str) -> Option<u64> {
    let (units, cents) = text.split_once('.').unwrap_or((text, ""));
    if units.is_empty()
        || cents.len() > 2
        || !(units.bytes().chain(cents.bytes())).all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let cents = format!("{cents:0<2}");
    units
        .parse::<u64>()
        .ok()?
        .checked_mul(100)?
        .checked_add(cents.parse().ok()?)
}

fn format_amount(hundredths: u64) -> String {
    format!("{}.{:02}", hundredths / 100, hundredths % 100)
}

/// A rejected booking: the field at fault (a dotted path) and why.
struct Invalid {
    field: String,
    message: String,
}

fn invalid(field: &str, message: impl Into<String>) -> Invalid {
    Invalid {
        field: field.to_string(),
        message: message.into(),
    }
}

const FIELDS: &[&str] = &["flight", "date", "seats", "passenger"];
const PASSENGER_FIELDS: &[&str] = &["name", "email"];

/// Checks a booking request and answers the booking it makes.
fn book(request: &Map<String, Value>, id: &str, settings: &Settings) -> Result<Value, Invalid> {
    unknown_fields(request, FIELDS, "")?;

    let flight = string(request, "flight", "flight")?;
    let b = flight.as_bytes();
    if !((3..=6).contains(&b.len())
        && b[..2].iter().all(u8::is_ascii_uppercase)
        && b[2..].iter().all(u8::is_ascii_digit))
    {
        return Err(invalid(
            "flight",
            format!("{flight:?} is not a flight number: two capital letters and 1 to 4 digits, as TR142"),
        ));
    }

    let date = string(request, "date", "date")?;
    if !is_date(date) {
        return Err(invalid(
            "date",
            format!("{date:?} is not a date as YYYY-MM-DD"),
        ));
    }

    let seats = match request.get("seats") {
        None => 1,
        Some(v) => match v.as_u64() {
            Some(n @ 1..=9) => n,
            _ => {
                return Err(invalid(
                    "seats",
                    format!("must be a whole number from 1 to 9, not {v}"),
                ))
            }
        },
    };

    let passenger = match request.get("passenger") {
        Some(Value::Object(p)) => p,
        Some(other) => {
            return Err(invalid(
                "passenger",
                format!("must be an object with name and email, not {other}"),
            ))
        }
        None => return Err(invalid("passenger", "is required")),
    };
    unknown_fields(passenger, PASSENGER_FIELDS, "passenger.")?;
    let name = string(passenger, "name", "passenger.name")?.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(invalid("passenger.name", "must have 1 to 100 characters"));
    }
    let email = string(passenger, "email", "passenger.email")?;
    let valid_email = email.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty()
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains('@')
            && !email.contains(char::is_whitespace)
    });
    if !valid_email {
        return Err(invalid(
            "passenger.email",
            format!("{email:?} is not an email address"),
        ));
    }

    Ok(json!({
        "id": id,
        "flight": flight,
        "date": date,
        "seats": seats,
        "passenger": {"name": name, "email": email},
        "fare": {
            "currency": settings.currency,
            "perSeat": format_amount(settings.fare_per_seat),
            "total": format_amount(settings.fare_per_seat * seats),
        },
    }))
}

fn unknown_fields(
    object: &Map<String, Value>,
    known: &[&str],
    prefix: &str,
) -> Result<(), Invalid> {
    match object.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(invalid(
            &format!("{prefix}{k}"),
            format!("is not a booking field; expected {}", known.join(", ")),
        )),
        None => Ok(()),
    }
}

fn string<'v>(object: &'v Map<String, Value>, key: &str, field: &str) -> Result<&'v str, Invalid> {
    match object.get(key) {
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(invalid(field, format!("must be a string, not {other}"))),
        None => Err(invalid(field, "is required")),
    }
}

/// `YYYY-MM-DD`, a day that exists in the Gregorian calendar.
fn is_date(text: &str) -> bool {
    let b = text.as_bytes();
    let digits = |r: std::ops::Range<usize>| -> Option<u32> {
        let part = text.get(r)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    let (Some(year), Some(month), Some(day)) = (digits(0..4), digits(5..7), digits(8..10)) else {
        return false;
    };
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    year >= 1 && (1..=days).contains(&day)
}

fn handle(event: LambdaEvent<Value>, settings: &Settings) -> Result<LatticeResponse, Error> {
    let (payload, ctx) = event.into_parts();
    let request: LatticeRequest = serde_json::from_value(payload).map_err(|e| {
        format!("expected a VPC Lattice event (version 2.0) from a LAMBDA target group: {e}")
    })?;
    let path = request.path.trim_end_matches('/');
    if path != "/api/bookings" {
        let message = if path.starts_with("/api/bookings/") {
            "bookings are not stored, so there is none to read: this function only makes new ones (POST /api/bookings)".to_string()
        } else {
            format!("no route for {} {}", request.method, request.path)
        };
        return Ok(LatticeResponse::error(404, "NotFound", message));
    }
    if request.method != "POST" {
        let mut response = LatticeResponse::error(
            405,
            "MethodNotAllowed",
            format!(
                "{} is not allowed on /api/bookings; POST a booking",
                request.method
            ),
        );
        response.headers.insert("allow", "POST".to_string());
        return Ok(response);
    }
    let body = request.body.unwrap_or_default();
    let body = if request.is_base64_encoded {
        match base64::engine::general_purpose::STANDARD.decode(body.as_bytes()) {
            Ok(bytes) => bytes,
            Err(e) => {
                return Ok(LatticeResponse::error(
                    400,
                    "InvalidBody",
                    format!("the base64 body does not decode: {e}"),
                ))
            }
        }
    } else {
        body.into_bytes()
    };
    let booking = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(booking)) => booking,
        Ok(_) => {
            return Ok(LatticeResponse::error(
                400,
                "InvalidBody",
                "the body must be a JSON object with flight, date, seats and passenger",
            ))
        }
        Err(e) => {
            return Ok(LatticeResponse::error(
                400,
                "InvalidBody",
                format!("the body is not JSON: {e}"),
            ))
        }
    };
    let id = format!("bk-{}", ctx.request_id);
    match book(&booking, &id, settings) {
        Ok(booking) => {
            println!(
                "booked {id}: {} on {}, {} seat(s)",
                booking["flight"], booking["date"], booking["seats"]
            );
            Ok(LatticeResponse::json(201, &json!({"booking": booking})))
        }
        Err(bad) => Ok(LatticeResponse::json(
            400,
            &json!({"error": "ValidationError", "field": bad.field, "message": bad.message}),
        )),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    // Read once per worker, before the first event: a missing setting fails the init, and
    // Trellis reports it with these log lines (`Runtime.ExitError`).
    let settings: &'static Settings = Box::leak(Box::new(Settings::from_env()?));
    lambda_runtime::run(service_fn(
        move |event| async move { handle(event, settings) },
    ))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_and_dates() {
        assert_eq!(parse_amount("129"), Some(12900));
        assert_eq!(parse_amount("129.5"), Some(12950));
        assert_eq!(parse_amount("0.05"), Some(5));
        assert_eq!(parse_amount("1.234"), None);
        assert_eq!(parse_amount("-1"), None);
        assert_eq!(format_amount(25800), "258.00");
        assert!(is_date("2028-02-29"));
        assert!(!is_date("2026-02-29"));
        assert!(!is_date("2026-13-01"));
        assert!(!is_date("26-12-24"));
    }
}
