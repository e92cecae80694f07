//! The till endpoint over real HTTP on an ephemeral loopback port, against a
//! real replica file.

use std::path::Path;
use std::sync::{Arc, Barrier};

use aisle_core::offers::coupon::Channel;
use aisle_core::offers::ledger::{self, IssueRequest, IssuedCoupon};
use aisle_proto::ApiError;
use aisle_till::{CouponAnswer, paths};
use serde_json::json;

/// 2026-06-01 12:00:00 UTC.
const T0: u64 = 1_780_315_200;

/// The till's clock: a minute after the coupons are issued.
fn clock() -> aisle_core::runtime::Clock {
    aisle_core::runtime::Clock::stepped(T0 as i64 + 60)
}

fn replica(path: &Path) {
    let conn = aisle_core::replica::open_writer(path).expect("replica");
    conn.execute_batch(
        "INSERT INTO stores (store_id, name) VALUES (1, 'Here');
         INSERT INTO campaigns (campaign_id, name, starts_on, ends_on) VALUES (1, 'S', '2026-01-01', '2026-12-31');
         INSERT INTO coupons (coupon_id, code, campaign_id, description, discount_cents) VALUES (10, 'C10', 1, '3.00 off coffee', 300);
         INSERT INTO members (member_id, updated_at) VALUES (7, '2026-01-01'), (8, '2026-01-01');",
    )
    .expect("catalog");
}

fn issue(path: &Path, member_id: i64) -> IssuedCoupon {
    let conn = aisle_core::replica::open_writer(path).expect("writer");
    ledger::issue(
        &conn,
        &IssueRequest {
            coupon_id: 10,
            member_id,
            store_id: 1,
            channel: Channel::Kiosk,
            issued_at: T0,
            expires_at: T0 + 86_400,
        },
    )
    .expect("issue")
}

struct Running {
    url: String,
    runtime: tokio::runtime::Runtime,
    shutdown: tokio::sync::oneshot::Sender<()>,
    served: tokio::task::JoinHandle<anyhow::Result<()>>,
}

fn start(path: &Path) -> Running {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let mut config = aisle_till::Config::new(path.to_owned());
    config.store_id = Some(1);
    config.clock = clock();
    let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = runtime.spawn(aisle_till::serve(listener, config, async {
        stopped.await.ok();
    }));
    Running {
        url,
        runtime,
        shutdown,
        served,
    }
}

fn post(url: &str, path: &str, body: &serde_json::Value) -> (u16, Result<CouponAnswer, ApiError>) {
    let response = reqwest::blocking::Client::new()
        .post(format!("{url}{path}"))
        .json(body)
        .send()
        .expect("request");
    let status = response.status().as_u16();
    let text = response.text().expect("body");
    let parsed = if status == 200 {
        Ok(serde_json::from_str(&text).expect("answer"))
    } else {
        Err(serde_json::from_str(&text).unwrap_or_else(|_| panic!("not an ApiError: {text}")))
    };
    (status, parsed)
}

fn refusal(answer: (u16, Result<CouponAnswer, ApiError>)) -> (u16, String) {
    match answer {
        (status, Err(error)) => (status, error.code),
        (status, Ok(ok)) => panic!("{status}: accepted {ok:?}"),
    }
}

#[test]
fn a_pos_checks_and_redeems_over_http_and_each_refusal_has_its_code_and_status() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("replica.db");
    replica(&db);
    let coupon = issue(&db, 7);
    let running = start(&db);
    let url = &running.url;

    let (status, checked) = post(
        url,
        paths::CHECK,
        &json!({ "code": coupon.token, "member_id": 7 }),
    );
    let checked = checked.expect("valid");
    assert_eq!(status, 200);
    assert_eq!(checked.redemption_id, None);
    assert_eq!(checked.description.as_deref(), Some("3.00 off coffee"));
    assert_eq!(checked.discount_cents, Some(300));
    assert_eq!(checked.serial, coupon.serial);

    assert_eq!(
        refusal(post(
            url,
            paths::REDEEM,
            &json!({ "code": coupon.numeric_code, "member_id": 8 })
        )),
        (403, "wrong_member".into())
    );
    let (status, redeemed) = post(
        url,
        paths::REDEEM,
        &json!({ "code": coupon.token, "member_id": 7, "till_id": "pos-3" }),
    );
    assert_eq!(status, 200);
    assert!(redeemed.expect("redeemed").redemption_id.is_some());
    assert_eq!(
        refusal(post(
            url,
            paths::REDEEM,
            &json!({ "code": coupon.numeric_code, "member_id": 7 })
        )),
        (409, "already_redeemed".into())
    );
    assert_eq!(
        refusal(post(
            url,
            paths::CHECK,
            &json!({ "code": coupon.token, "member_id": 7 })
        )),
        (409, "already_redeemed".into())
    );
    assert_eq!(
        refusal(post(
            url,
            paths::REDEEM,
            &json!({ "code": "hello", "member_id": 7 })
        )),
        (400, "malformed".into())
    );
    assert_eq!(
        refusal(post(
            url,
            paths::REDEEM,
            &json!({ "code": aisle_core::offers::coupon::numeric_code("1234567890123456"), "member_id": 7 })
        )),
        (404, "unknown_serial".into())
    );
    let other = issue(&db, 7);
    assert_eq!(
        refusal(post(url, paths::REDEEM, &json!({ "code": other.token }))),
        (403, "member_required".into())
    );
    assert_eq!(
        refusal(post(url, paths::REDEEM, &json!({ "member_id": 7 }))),
        (400, "bad_request".into())
    );

    // Eight tills post the same coupon at once: exactly one redeems it.
    let fresh = issue(&db, 8);
    let barrier = Arc::new(Barrier::new(8));
    let statuses: Vec<u16> = (0..8)
        .map(|till| {
            let (url, barrier, token) = (url.clone(), barrier.clone(), fresh.token.clone());
            std::thread::spawn(move || {
                barrier.wait();
                post(
                    &url,
                    paths::REDEEM,
                    &json!({ "code": token, "member_id": 8, "till_id": format!("pos-{till}") }),
                )
                .0
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|h| h.join().expect("till"))
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 409).count(),
        7,
        "{statuses:?}"
    );

    // Graceful shutdown: the server stops cleanly.
    running.shutdown.send(()).ok();
    running
        .runtime
        .block_on(running.served)
        .expect("join")
        .expect("served");
    let conn = aisle_core::replica::connect(&db).expect("replica");
    let (redemptions, events, till): (i64, i64, String) = conn
        .query_row(
            "SELECT (SELECT count(*) FROM coupon_redemptions),
                    (SELECT count(*) FROM outbox WHERE kind = 'coupon_redeemed'),
                    (SELECT till_id FROM coupon_redemptions ORDER BY redemption_id LIMIT 1)",
            [],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .expect("counts");
    assert_eq!((redemptions, events, till.as_str()), (2, 2, "pos-3"));
}

#[test]
fn the_endpoint_listens_on_loopback_only_unless_told() {
    assert!(
        aisle_till::check_listen_address(&"127.0.0.1:8787".parse().expect("addr"), false).is_ok()
    );
    assert!(aisle_till::check_listen_address(&"[::1]:8787".parse().expect("addr"), false).is_ok());
    assert!(
        aisle_till::check_listen_address(&"0.0.0.0:8787".parse().expect("addr"), false).is_err()
    );
    assert!(aisle_till::check_listen_address(&"0.0.0.0:8787".parse().expect("addr"), true).is_ok());
    let dir = tempfile::tempdir().expect("tempdir");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_aisle-till"))
        .arg("--db")
        .arg(dir.path().join("r.db"))
        .args(["--listen", "0.0.0.0:0", "--store", "1"])
        .output()
        .expect("run aisle-till");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("not a loopback address"), "{stderr}");
    assert!(
        !dir.path().join("r.db").exists(),
        "refused before touching the replica"
    );
}
