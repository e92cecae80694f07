//! `aisle offers` and `aisle eval offers` on the embedded demo replica: the
//! evaluation's table and its baselines, a stored model, a member's ranked
//! offers, a campaign's batch scores, and clear errors.

use crate::ok;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn aisle(home: &Path, db: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_aisle"));
    cmd.current_dir(home)
        .env("HOME", home)
        .env_remove("XDG_DATA_HOME")
        .env_remove("AISLE_DB")
        .env_remove("RUST_LOG")
        .arg("--db")
        .arg(db);
    cmd
}

fn failed(output: &Output) -> String {
    assert!(!output.status.success(), "succeeded: {output:?}");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The demo replica, without the offer model the demo trains.
fn demo(home: &Path) -> PathBuf {
    let db = home.join("demo.db");
    let mut conn = aisle_core::replica::open_writer(&db).expect("replica");
    let options = aisle_core::import::ImportOptions::default();
    aisle_core::import::in_transaction(&mut conn, |tx| {
        aisle_core::import::completejourney::import(
            tx,
            &aisle_core::demo::source(),
            &options,
            &mut aisle_core::import::NoProgress,
        )
    })
    .expect("import");
    db
}

#[test]
fn eval_offers_reports_every_campaign_against_three_baselines() {
    let home = tempfile::tempdir().expect("tempdir");
    let db = demo(home.path());
    let json = ok(aisle(home.path(), &db)
        .args(["eval", "offers", "--train-until", "2017-07-01", "--json"])
        .output()
        .expect("run"));
    let report: serde_json::Value = serde_json::from_str(&json).expect("json");
    let campaigns = report["campaigns"].as_array().expect("campaigns");
    let ids: Vec<i64> = campaigns
        .iter()
        .map(|c| c["campaign_id"].as_i64().expect("id"))
        .collect();
    assert_eq!(
        ids,
        [11, 12, 13, 14, 15, 16, 17],
        "campaigns starting after the date, inside the data"
    );
    // The model learned only from campaigns that started before the date.
    let learned: Vec<i64> = report["model"]["campaigns"]
        .as_array()
        .expect("model campaigns")
        .iter()
        .map(|c| c.as_i64().expect("id"))
        .collect();
    assert!(
        learned.contains(&8) && !learned.contains(&11),
        "{learned:?}"
    );
    let overall = report["overall"].as_array().expect("overall");
    assert_eq!(overall.len(), 4, "model and three baselines");
    let auc = |i: usize| overall[i]["auc"].as_f64().expect("auc");
    let lift = |i: usize| overall[i]["lift_top10"].as_f64().expect("lift");
    assert_eq!(
        (auc(1), lift(1)),
        (0.5, 1.0),
        "random: all tied, the exact expectation"
    );
    assert!(
        auc(0) > 0.7 && auc(0) > auc(3),
        "model AUC {} vs spend {}",
        auc(0),
        auc(3)
    );
    // Campaign 13 (160 targets, 39 redeemers in the demo) has figures for every method.
    let c13 = &campaigns[2];
    assert_eq!(
        (c13["targets"].as_i64(), c13["redeemers"].as_i64()),
        (Some(160), Some(39))
    );
    assert!(
        c13["figures"]
            .as_array()
            .expect("figures")
            .iter()
            .all(|f| f.is_object())
    );

    let text = ok(aisle(home.path(), &db)
        .args(["eval", "offers", "--train-until", "2017-07-01"])
        .output()
        .expect("run"));
    for needle in [
        "baseline: redeemed a coupon before",
        "baseline: total spend",
        "lift@10%",
        "Type A",
    ] {
        assert!(text.contains(needle), "{needle} in {text}");
    }
}

#[test]
fn train_rank_and_score() {
    let home = tempfile::tempdir().expect("tempdir");
    let db = demo(home.path());
    let run = |args: &[&str]| aisle(home.path(), &db).args(args).output().expect("run");

    let err = failed(&run(&[
        "offers",
        "rank",
        "--member",
        "1",
        "--now",
        "2017-10-29 12:00:00",
    ]));
    assert!(
        err.contains("no offer model") && err.contains("aisle offers train"),
        "{err}"
    );
    let err = failed(&run(&[
        "offers",
        "score",
        "--campaign",
        "13",
        "--out",
        "x.csv",
    ]));
    assert!(err.contains("no offer model"), "{err}");

    let text = ok(run(&["offers", "train"]));
    assert!(
        text.contains("offer model #1") && text.contains("before 2017-10-30"),
        "{text}"
    );

    // A member campaign 13 targets, on a day it runs: its coupon, with a reason.
    let conn = aisle_core::replica::open_reader(&db).expect("reader");
    let member: i64 = conn
        .query_row(
            "SELECT t.member_id FROM campaign_targets t JOIN members m USING (member_id)
             WHERE t.campaign_id = 13 AND m.consent_personalization = 1 ORDER BY t.member_id LIMIT 1",
            [],
            |row| row.get(0),
        )
        .expect("a target");
    let json = ok(run(&[
        "offers",
        "rank",
        "--member",
        &member.to_string(),
        "--now",
        "2017-08-20 10:00:00",
        "--json",
    ]));
    let decision: serde_json::Value = serde_json::from_str(&json).expect("json");
    let ranked = decision["ranked"].as_array().expect("ranked");
    assert!(
        ranked.iter().any(|r| r["campaign_id"] == 13),
        "campaign 13's coupon for its target: {json}"
    );
    for r in ranked {
        let p = r["p_redeem"].as_f64().expect("p");
        assert!(p > 0.0 && p < 1.0);
        assert!(!r["reason_text"].as_str().expect("reason").is_empty());
    }
    let text = ok(run(&[
        "offers",
        "rank",
        "--member",
        &member.to_string(),
        "--now",
        "2017-08-20 10:00:00",
        "--why",
    ]));
    assert!(
        text.contains("not offered") && text.contains("(not_targeted)"),
        "{text}"
    );
    let err = failed(&run(&[
        "offers",
        "rank",
        "--member",
        "999999",
        "--store",
        "1",
        "--now",
        "2017-08-20 10:00:00",
    ]));
    assert!(
        err.contains("member 999999 is not in this replica"),
        "{err}"
    );
    let err = failed(&run(&[
        "offers",
        "rank",
        "--member",
        "1",
        "--now",
        "yesterday",
    ]));
    assert!(err.contains("not a time"), "{err}");

    // Batch scores: one row per target, household ids, probabilities.
    let csv = home.path().join("scores.csv");
    ok(run(&[
        "offers",
        "score",
        "--campaign",
        "13",
        "--out",
        csv.to_str().expect("utf8"),
    ]));
    let body = std::fs::read_to_string(&csv).expect("csv");
    let mut lines = body.lines();
    assert_eq!(lines.next(), Some("household_id,score"));
    let rows: Vec<(String, f64)> = lines
        .map(|l| {
            let (id, score) = l.split_once(',').expect("two columns");
            (id.to_owned(), score.parse().expect("a number"))
        })
        .collect();
    assert_eq!(rows.len(), 160, "every target of campaign 13");
    let households: std::collections::HashSet<String> = conn
        .prepare("SELECT external_id FROM member_external_ids WHERE source = 'completejourney'")
        .expect("sql")
        .query_map([], |row| row.get(0))
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("ids");
    assert!(
        rows.iter()
            .all(|(id, s)| households.contains(id) && *s > 0.0 && *s < 1.0)
    );
    assert!(
        rows.iter()
            .map(|(_, s)| s.to_bits())
            .collect::<std::collections::HashSet<_>>()
            .len()
            > 20,
        "scores differ between households"
    );
    assert!(!home.path().join("scores.csv.partial").exists());
    let err = failed(&run(&[
        "offers",
        "score",
        "--campaign",
        "4242",
        "--out",
        "x.csv",
    ]));
    assert!(
        err.contains("campaign 4242 is not in this replica"),
        "{err}"
    );
    let err = failed(
        &aisle(home.path(), &db)
            .args(["eval", "offers", "--train-until", "July"])
            .output()
            .expect("run"),
    );
    assert!(err.contains("not a day"), "{err}");
    let err = failed(
        &aisle(home.path(), &db)
            .args(["eval", "offers", "--train-until", "2030-01-01"])
            .output()
            .expect("run"),
    );
    assert!(err.contains("no campaign"), "{err}");
}
