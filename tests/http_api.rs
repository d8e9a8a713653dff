//! The HTTP API over real HTTP against the running binary: roles, pagination, time filters, bad parameters, the
//! audit trail, and `/metrics` read by a Prometheus text-format parser.

mod support;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use support::daemon::{stations, Daemon};

const ROLES: [&str; 4] = ["viewer", "operator", "auditor", "admin"];

fn token(role: &str) -> String {
    format!("test-token-for-{role}")
}

fn http_section() -> String {
    ROLES
        .iter()
        .map(|r| {
            let hash: String = Sha256::digest(token(r).as_bytes())
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            format!("[[http.token]]\nname = \"{r}-1\"\nrole = \"{r}\"\nsha256 = \"{hash}\"\n")
        })
        .collect()
}

async fn get(d: &Daemon, path: &str, role: Option<&str>) -> (u16, Value) {
    let mut req = reqwest::Client::new().get(format!("{}{path}", d.http));
    if let Some(r) = role {
        req = req.bearer_auth(token(r));
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// POST `body` as JSON to `path`, with the token of `role` if given.
async fn post(d: &Daemon, path: &str, role: Option<&str>, body: &str) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .post(format!("{}{path}", d.http))
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(r) = role {
        req = req.bearer_auth(token(r));
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn post_note(d: &Daemon, role: Option<&str>, body: &str) -> (u16, Value) {
    post(d, "/api/stations/BN_KCNQV_NUOC01/note", role, body).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_role_can_do_exactly_what_it_may() {
    let d = Daemon::start(&http_section(), &stations(60, &[])).await;
    // (path, least role)
    let reads = [
        ("/api/stations", "viewer"),
        ("/api/readings?limit=1", "viewer"),
        ("/api/aggregates?limit=1", "viewer"),
        ("/api/events", "viewer"),
        ("/api/alerts", "viewer"),
        ("/api/quarantine", "operator"),
        ("/api/audit", "auditor"),
    ];
    for (path, least) in reads {
        assert_eq!(get(&d, path, None).await.0, 401, "{path} without a token");
        let least_i = ROLES.iter().position(|r| *r == least).unwrap();
        for (i, role) in ROLES.iter().enumerate() {
            let (status, body) = get(&d, path, Some(role)).await;
            let expected = if i >= least_i { 200 } else { 403 };
            assert_eq!(status, expected, "{path} as {role}: {body}");
            if status == 403 {
                assert_eq!(
                    body["error"],
                    format!("this needs the {least} role; {role}-1 has {role}")
                );
            }
        }
    }
    let (status, body) = reqwest::Client::new()
        .get(format!("{}/api/stations", d.http))
        .bearer_auth("not-a-token")
        .send()
        .await
        .map(|r| (r.status().as_u16(), r))
        .unwrap();
    assert_eq!(status, 401);
    assert_eq!(
        body.json::<Value>().await.unwrap()["error"],
        "the token is not valid"
    );

    // Writing a note: operator and above; each write leaves an audit row naming who and what.
    for role in ROLES {
        let (status, _) = post_note(
            &d,
            Some(role),
            &json!({"text": format!("note by {role}")}).to_string(),
        )
        .await;
        assert_eq!(
            status,
            if role == "viewer" { 403 } else { 201 },
            "note as {role}"
        );
    }
    assert_eq!(post_note(&d, None, r#"{"text":"x"}"#).await.0, 401);
    let (status, body) = post_note(&d, Some("operator"), "{not json").await;
    assert_eq!(status, 400);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with("expected a JSON body"),
        "{body}"
    );
    let (_, audit) = get(&d, "/api/audit", Some("auditor")).await;
    let rows = audit["audit"].as_array().unwrap();
    assert_eq!(rows.len(), 3, "{audit}");
    for (row, role) in rows.iter().rev().zip(["operator", "auditor", "admin"]) {
        assert_eq!(row["who"], format!("{role}-1"));
        assert_eq!(row["role"], role);
        assert_eq!(row["action"], "POST /api/stations/BN_KCNQV_NUOC01/note");
        assert_eq!(row["detail"], format!("note by {role}"));
    }
    // A request body over the limit is refused.
    let big = json!({"text": "x".repeat(100_000)}).to_string();
    assert_eq!(post_note(&d, Some("admin"), &big).await.0, 413);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readings_paginate_filter_by_time_and_refuse_bad_parameters() {
    let d = Daemon::start(&http_section(), &stations(60, &[])).await;
    let q = "/api/readings?station=BN_KCNQV_NUOC01&parameter=COD";
    // The simulator backfills a day (288 readings per parameter) after start-up: wait for it.
    let backfilled = support::eventually(std::time::Duration::from_secs(60), || async {
        get(&d, &format!("{q}&limit=10000"), Some("viewer")).await.1["readings"]
            .as_array()
            .is_some_and(|a| a.len() >= 250)
    })
    .await;
    assert!(backfilled, "the simulator's history did not arrive");
    // Pages in commit order, without overlap, until next_after is null.
    let mut seen = std::collections::HashSet::new();
    let mut after = 0;
    let mut pages = 0;
    loop {
        let (status, body) = get(&d, &format!("{q}&limit=50&after={after}"), Some("viewer")).await;
        assert_eq!(status, 200);
        let rows = body["readings"].as_array().unwrap();
        for r in rows {
            assert_eq!(
                (r["station"].as_str(), r["parameter"].as_str()),
                (Some("BN_KCNQV_NUOC01"), Some("COD"))
            );
            assert!(
                seen.insert(r["seq"].as_i64().unwrap()),
                "a reading came twice"
            );
        }
        pages += 1;
        match body["next_after"].as_i64() {
            Some(n) => after = n,
            None => break,
        }
        if pages > 20 {
            break;
        }
    }
    assert!(
        pages >= 3 && seen.len() >= 100,
        "{pages} pages, {} readings",
        seen.len()
    );
    // Time filters: [from, to).
    let (_, all) = get(&d, &format!("{q}&limit=10000"), Some("viewer")).await;
    let ts: Vec<i64> = all["readings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["ts"].as_i64().unwrap())
        .collect();
    let (from, to) = (ts[10], ts[40]);
    let (_, some) = get(
        &d,
        &format!("{q}&from={from}&to={to}&limit=10000"),
        Some("viewer"),
    )
    .await;
    let got: Vec<i64> = some["readings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["ts"].as_i64().unwrap())
        .collect();
    assert!(
        !got.is_empty() && got.iter().all(|t| *t >= from && *t < to),
        "{got:?}"
    );
    assert_eq!(
        got.len(),
        ts.iter().filter(|t| **t >= from && **t < to).count()
    );
    // RFC 3339 is accepted too.
    assert_eq!(
        get(
            &d,
            &format!("{q}&from=2026-01-01T00:00:00%2B07:00&limit=1"),
            Some("viewer")
        )
        .await
        .0,
        200
    );

    for (path, message) in [
        ("/api/readings?limit=abc", "limit=\"abc\" is not a whole number from 0 to 10000"),
        ("/api/readings?limit=20000", "limit=\"20000\" is not a whole number from 0 to 10000"),
        ("/api/readings?from=yesterday", "from=\"yesterday\" is not a time; expected Unix milliseconds or RFC 3339 such as 2026-11-27T10:00:00+07:00"),
        ("/api/readings?station=BN_NOPE_X", "unknown station \"BN_NOPE_X\""),
        ("/api/readings?colour=red", "unknown parameter \"colour\"; expected station, parameter, from, to, after, limit"),
        ("/api/readings?from=2000&to=1000", "from is after to"),
        ("/api/aggregates?window=week", "window=\"week\"; expected averaging, hour or day"),
        ("/api/events?open=maybe", "open=\"maybe\"; expected true or false"),
    ] {
        let (status, body) = get(&d, path, Some("admin")).await;
        assert_eq!(status, 400, "{path}");
        assert_eq!(body["error"], message, "{path}");
    }
    // The on-time transmission rate of the last 24 hours counts the station's readings of those hours and the ones
    // not flagged late (the simulator's backfilled day arrived late; its live readings on time).
    let agree = support::eventually(std::time::Duration::from_secs(30), || async {
        let (_, st) = get(&d, "/api/stations", Some("viewer")).await;
        let Some(t) = st["stations"]
            .as_array()
            .and_then(|a| a.iter().find(|s| s["id"] == "BN_KCNQV_NUOC01"))
            .map(|s| s["transmission"].clone())
        else {
            return false;
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        let from = (now - 24 * 3_600_000) / 3_600_000 * 3_600_000;
        let (_, r) = get(
            &d,
            &format!("/api/readings?station=BN_KCNQV_NUOC01&from={from}&limit=10000"),
            Some("viewer"),
        )
        .await;
        let rows = r["readings"].as_array().cloned().unwrap_or_default();
        let late = rows
            .iter()
            .filter(|x| {
                x["flags"]
                    .as_str()
                    .is_some_and(|f| f.split(',').any(|n| n == "late"))
            })
            .count() as i64;
        let (n, on_time) = (rows.len() as i64, rows.len() as i64 - late);
        let pct = (10_000.0 * on_time as f64 / n as f64).round() / 100.0;
        late > 0
            && on_time > 0
            && t["readings_24h"] == n
            && t["on_time_24h"] == on_time
            && t["on_time_pct_24h"].as_f64() == Some(pct)
    })
    .await;
    assert!(
        agree,
        "the on-time rate in /api/stations does not match the readings"
    );
    // Aggregates follow the readings within about a second.
    let path = "/api/aggregates?station=BN_KCNQV_NUOC01&parameter=COD&window=hour";
    let ready = support::eventually(std::time::Duration::from_secs(30), || async {
        get(&d, path, Some("viewer")).await.1["aggregates"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
    })
    .await;
    assert!(ready, "no hourly aggregates");
    let (status, body) = get(&d, path, Some("viewer")).await;
    assert_eq!(status, 200);
    let a = &body["aggregates"][0];
    assert!(
        a["valid"].as_i64().unwrap() > 0
            && a["expected"] == 12
            && a["limit_high"].as_f64().is_some(),
        "{a}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_as_prometheus_text_and_health_endpoints_answer() {
    let d = Daemon::start("anonymous_read = true", &stations(60, &[])).await;
    // Scrape until the simulator's first readings are counted.
    let url = format!("{}/metrics", d.http);
    let scrape_now = || async {
        let text = reqwest::get(&url).await.unwrap().text().await.unwrap();
        prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
            .expect("metrics do not parse")
    };
    let counted = |s: &prometheus_parse::Scrape| {
        s.samples.iter().any(|x| {
            x.metric == "quantrac_readings_accepted_total"
                && x.labels.get("source") == Some("sim")
                && matches!(x.value, prometheus_parse::Value::Counter(v) if v > 0.0)
        })
    };
    let ok = support::eventually(std::time::Duration::from_secs(30), || async {
        counted(&scrape_now().await)
    })
    .await;
    assert!(ok, "no accepted readings counted");
    let scrape = scrape_now().await;
    for name in [
        "quantrac_ledger_commits_total",
        "quantrac_pipeline_queue_depth",
        "quantrac_build_info",
        "quantrac_plant_state",
    ] {
        assert!(
            scrape.samples.iter().any(|s| s.metric == name),
            "{name} missing"
        );
    }
    assert_eq!(
        scrape
            .samples
            .iter()
            .filter(|s| s.metric == "quantrac_plant_state")
            .count(),
        8
    );
    assert_eq!(
        reqwest::get(format!("{}/healthz", d.http))
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "ok"
    );
    let ready: Value = reqwest::get(format!("{}/readyz", d.http))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        ready,
        json!({"ledger": true, "sources_started": true, "last_commit_ok": true, "reasons": []})
    );
    // Anonymous read is a viewer: it may not see the quarantine.
    assert_eq!(
        reqwest::get(format!("{}/api/quarantine", d.http))
            .await
            .unwrap()
            .status()
            .as_u16(),
        403
    );
}

async fn post_ack(d: &Daemon, id: &str, role: Option<&str>, body: &str) -> (u16, Value) {
    post(d, &format!("/api/alerts/{id}/ack"), role, body).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_are_listed_and_only_operators_acknowledge_them() {
    // A plant loaded at 1.5× its limits raises violations (its hour means stay over the limits, so the alert stays
    // raised while the test acknowledges it); alerts need one bad observation here.
    let rest = format!(
        "[alert]\nraise_after = 1\n\n{}",
        stations(60, &[("BN_KCNTS_NUOC01", "via = \"direct\", load = 1.5")])
    );
    let d = Daemon::start(&http_section(), &rest).await;
    let raised = support::eventually(std::time::Duration::from_secs(60), || async {
        let (_, body) = get(
            &d,
            "/api/alerts?station=BN_KCNTS_NUOC01&state=raised&kind=violation",
            Some("viewer"),
        )
        .await;
        body["alerts"].as_array().is_some_and(|a| !a.is_empty())
    })
    .await;
    assert!(raised, "no alert raised for the overloaded plant");
    let (_, body) = get(
        &d,
        "/api/alerts?station=BN_KCNTS_NUOC01&state=raised&kind=violation",
        Some("viewer"),
    )
    .await;
    let alert = &body["alerts"][0];
    let id = alert["id"].as_i64().unwrap().to_string();
    assert_eq!(alert["station"], "BN_KCNTS_NUOC01");
    assert!(alert["detail"]["ratio"].as_f64().unwrap() > 1.0, "{alert}");

    // Listing: viewer and up; bad filters are 400 with what was expected.
    assert_eq!(get(&d, "/api/alerts", None).await.0, 401);
    let kind = alert["kind"].as_str().unwrap().to_string();
    let (status, body) = get(
        &d,
        &format!("/api/alerts?state=open&kind={kind}&limit=1"),
        Some("viewer"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["alerts"].as_array().unwrap().len(), 1);
    let (status, body) = get(&d, "/api/alerts?state=gone", Some("viewer")).await;
    assert_eq!(
        (status, body["error"].as_str().unwrap()),
        (
            400,
            "state=\"gone\"; expected raised, acknowledged, cleared, withdrawn or open"
        )
    );
    let (status, body) = get(&d, "/api/alerts?kind=flood", Some("viewer")).await;
    assert_eq!(status, 400, "{body}");
    // The plant's open alerts are counted in /api/stations.
    let (_, st) = get(&d, "/api/stations", Some("viewer")).await;
    let ts = st["stations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "BN_KCNTS_NUOC01")
        .unwrap();
    assert!(ts["open_alerts"].as_i64().unwrap() >= 1, "{ts}");

    // Acknowledging: 401 without a token, 403 for a viewer, 200 for an operator (once), with an audit row.
    let comment =
        r#"{"comment": "Đã báo nhà máy kiểm tra bể xử lý / plant asked to check the basin"}"#;
    assert_eq!(post_ack(&d, &id, None, comment).await.0, 401);
    let (status, body) = post_ack(&d, &id, Some("viewer"), comment).await;
    assert_eq!(status, 403);
    assert_eq!(
        body["error"],
        "this needs the operator role; viewer-1 has viewer"
    );
    let (status, body) = post_ack(&d, &id, Some("operator"), "{}").await;
    assert_eq!(status, 422, "{body}");
    let (status, body) = post_ack(&d, &id, Some("operator"), r#"{"comment": "  "}"#).await;
    assert_eq!(
        (status, body["error"].as_str().unwrap()),
        (400, "comment must be 1 to 2,000 characters")
    );
    let (status, body) = post_ack(&d, &id, Some("operator"), comment).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], "acknowledged");
    assert_eq!(body["acked_by"], "operator-1");
    let (status, body) = post_ack(&d, &id, Some("admin"), comment).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(
        post_ack(&d, "999999", Some("operator"), comment).await.0,
        404
    );
    assert_eq!(post_ack(&d, "abc", Some("operator"), comment).await.0, 400);
    let (_, audit) = get(&d, "/api/audit", Some("auditor")).await;
    let rows = audit["audit"].as_array().unwrap();
    assert_eq!(
        rows.len(),
        1,
        "only the accepted acknowledgement is a state change: {audit}"
    );
    assert_eq!(rows[0]["who"], "operator-1");
    assert_eq!(rows[0]["role"], "operator");
    assert_eq!(rows[0]["action"], format!("POST /api/alerts/{id}/ack"));
    assert_eq!(
        rows[0]["detail"],
        "Đã báo nhà máy kiểm tra bể xử lý / plant asked to check the basin"
    );
    // Alert counters in /metrics.
    let text = reqwest::Client::new()
        .get(format!("{}/metrics", d.http))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.lines().any(|l| l
            .starts_with(&format!("quantrac_alerts_raised_total{{kind=\"{kind}\"}} "))
            && !l.ends_with(" 0")),
        "{text}"
    );
    assert!(text.contains("quantrac_alert_notifications_delivered_total{channel_type=\"webhook\"}"));
}
