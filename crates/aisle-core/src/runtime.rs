//! One store's runtime, the layer every app over a replica shares (the
//! kiosk, the associate tablet, the till endpoint, the CLI): which store the
//! replica serves, the clock, the models served from the replica, and
//! whether the store is offline.
//!
//! - [`choose_store`] is the one rule for the store: the provisioned
//!   credentials' store, else the store given (`--store`), else the demo's
//!   (the showcase member's home store); a store given that contradicts the
//!   provisioning is an error.
//! - [`Clock`] is the one source of time: the wall clock in production, a
//!   pinned demo day that then runs (`--now`, `AISLE_NOW`), or a stepped
//!   clock that moves only when a test says so; it gives the store's time,
//!   the wall time sync is judged by, and a monotonic instant for idle
//!   timeouts.
//! - [`StoreRuntime::models`] serves the newest valid recommendation and
//!   offer models: before each request one indexed look-up per model tells
//!   whether sync stored a newer one, which is then decoded once and served
//!   from that request on; a newer one that does not decode is refused with
//!   a warning and the previous one stays. No model is a valid state: picks
//!   come from the store's bestsellers and no coupon is chosen by a model.
//!
//! Replica reads only: nothing here talks to HQ (sync writes what this reads).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use rusqlite::Connection;

use crate::offers::model::{self as offer_model, RedeemModel};
use crate::recommend::artifact::{self, ArtifactError};
use crate::recommend::serve::{Bestsellers, Ranking, Served};
use crate::time::{Day, Timestamp};

/// A last sync older than this (seconds) makes a provisioned store offline.
pub const STALE_AFTER_SECS: i64 = 600;

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("this replica is provisioned for store {provisioned}: it cannot serve store {given}")]
    StoreConflict { given: i64, provisioned: i64 },
    #[error("this replica is not provisioned for a store and holds no demo store: pass --store ID")]
    NoStore,
    #[error(transparent)]
    BadTime(#[from] crate::time::TimeError),
    #[error(transparent)]
    Sync(#[from] crate::sync::SyncError),
    #[error(transparent)]
    Artifact(#[from] ArtifactError),
    #[error(transparent)]
    OfferModel(#[from] offer_model::ModelError),
    #[error(transparent)]
    Db(#[from] rusqlite::Error),
}

/// The rule, given what the replica says: its provisioned store, the store
/// the operator named, the demo's store.
pub fn decide_store(
    provisioned: Option<i64>,
    given: Option<i64>,
    demo: Option<i64>,
) -> Result<i64, RuntimeError> {
    match (provisioned, given) {
        (Some(provisioned), Some(given)) if given != provisioned => {
            Err(RuntimeError::StoreConflict { given, provisioned })
        }
        (Some(provisioned), _) => Ok(provisioned),
        (None, Some(given)) => Ok(given),
        (None, None) => demo.ok_or(RuntimeError::NoStore),
    }
}

/// The store this replica serves, `given` the store an operator named (if any).
pub fn choose_store(conn: &Connection, given: Option<i64>) -> Result<i64, RuntimeError> {
    let provisioned = crate::sync::Enrolment::load(conn)?.map(|c| c.store_id);
    let demo = match (provisioned, given) {
        (None, None) => demo_store(conn)?,
        _ => None,
    };
    decide_store(provisioned, given, demo)
}

/// An unprovisioned replica's store (a demo's): the showcase member's home store.
pub fn demo_store(conn: &Connection) -> rusqlite::Result<Option<i64>> {
    let Some(member) = crate::demo::showcase_member(conn)? else {
        return Ok(None);
    };
    conn.query_row(
        "SELECT home_store_id FROM members WHERE member_id = ?1",
        [member],
        |row| row.get(0),
    )
}

/// The one source of time of an app. Clones share a stepped clock's steps.
#[derive(Debug, Clone)]
pub struct Clock {
    kind: ClockKind,
}

#[derive(Debug, Clone)]
enum ClockKind {
    Wall {
        origin: Instant,
    },
    /// Unix seconds `base_secs` at `origin`, then real time.
    Pinned {
        base_secs: i64,
        origin: Instant,
    },
    /// Unix seconds `base_secs` plus the milliseconds stepped.
    Stepped {
        base_secs: i64,
        stepped_ms: Arc<AtomicU64>,
    },
}

/// Unix seconds now, by the system's clock (the one place it is read).
fn system_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn parse_time(text: &str) -> Result<i64, RuntimeError> {
    Ok(Timestamp::parse(text)?.unix())
}

impl Clock {
    /// Real time.
    pub fn wall() -> Self {
        Clock {
            kind: ClockKind::Wall {
                origin: Instant::now(),
            },
        }
    }

    /// Starts at `base_secs` (Unix seconds), then runs in real time: the
    /// demo's day. Sync is still judged by the wall clock.
    pub fn pinned(base_secs: i64) -> Self {
        Clock {
            kind: ClockKind::Pinned {
                base_secs,
                origin: Instant::now(),
            },
        }
    }

    /// What `--now` / `AISLE_NOW` say: pinned at that store-local time
    /// (`YYYY-MM-DD HH:MM:SS`), else the wall clock.
    pub fn pinned_or_wall(now: Option<&str>) -> Result<Self, RuntimeError> {
        match now {
            Some(text) => Ok(Self::pinned(parse_time(text)?)),
            None => Ok(Self::wall()),
        }
    }

    /// At `base_secs` (Unix seconds) until [`Clock::advance`] moves it: tests.
    pub fn stepped(base_secs: i64) -> Self {
        Clock {
            kind: ClockKind::Stepped {
                base_secs,
                stepped_ms: Arc::new(AtomicU64::new(0)),
            },
        }
    }

    /// A stepped clock at a store-local time (`YYYY-MM-DD HH:MM:SS`).
    pub fn stepped_at(now: &str) -> Result<Self, RuntimeError> {
        Ok(Self::stepped(parse_time(now)?))
    }

    /// Moves a stepped clock (and every clone of it) on by `by`; the wall
    /// and pinned clocks follow real time and ignore this.
    pub fn advance(&self, by: Duration) {
        if let ClockKind::Stepped { stepped_ms, .. } = &self.kind {
            let ms = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
            stepped_ms.fetch_add(ms, Ordering::SeqCst);
        }
    }

    /// Milliseconds since the clock started, never going back: for idle
    /// timeouts.
    pub fn monotonic_ms(&self) -> u64 {
        match &self.kind {
            ClockKind::Wall { origin } | ClockKind::Pinned { origin, .. } => {
                u64::try_from(origin.elapsed().as_millis()).unwrap_or(u64::MAX)
            }
            ClockKind::Stepped { stepped_ms, .. } => stepped_ms.load(Ordering::SeqCst),
        }
    }

    /// The store's time, Unix seconds: what every decision is taken at.
    pub fn now_secs(&self) -> i64 {
        match &self.kind {
            ClockKind::Wall { .. } => system_secs(),
            ClockKind::Pinned { base_secs, .. } | ClockKind::Stepped { base_secs, .. } => {
                let elapsed = i64::try_from(self.monotonic_ms() / 1000).unwrap_or(i64::MAX);
                base_secs.saturating_add(elapsed)
            }
        }
    }

    /// The store's time: what every decision is taken at.
    pub fn now(&self) -> Timestamp {
        Timestamp::from_unix(self.now_secs())
    }

    /// The store's day.
    pub fn today(&self) -> Day {
        self.now().day()
    }

    /// Real time as HQ, sync and members' phones see it (Unix seconds): the
    /// wall clock, under a pinned demo day too; a stepped clock's own time.
    pub fn wall_secs(&self) -> i64 {
        match &self.kind {
            ClockKind::Wall { .. } | ClockKind::Pinned { .. } => system_secs(),
            ClockKind::Stepped { .. } => self.now_secs(),
        }
    }
}

/// The models one request is served with (cheap to clone: shared).
#[derive(Debug, Clone, Default)]
pub struct Models {
    /// The newest recommendation model that decodes, and its artifact id.
    pub recommend: Option<(i64, Arc<Served>)>,
    /// The newest intact offer model, and its id; `None`: no coupon is chosen
    /// by a model (issued ones still show).
    pub offers: Option<(i64, Arc<RedeemModel>)>,
    /// Without a recommendation model: the store's bestsellers today.
    pub bestsellers: Option<Arc<Bestsellers>>,
}

static NO_BESTSELLERS: Bestsellers = Bestsellers::NONE;

impl Models {
    /// What picks are ranked with: the model, else the bestsellers.
    pub fn ranking(&self) -> Ranking<'_> {
        match (&self.recommend, &self.bestsellers) {
            (Some((_, served)), _) => Ranking::Model(served),
            (None, Some(bestsellers)) => Ranking::Bestsellers(bestsellers),
            (None, None) => Ranking::Bestsellers(&NO_BESTSELLERS),
        }
    }

    pub fn served(&self) -> Option<&Served> {
        self.recommend.as_ref().map(|(_, served)| served.as_ref())
    }

    pub fn offer_model(&self) -> Option<&RedeemModel> {
        self.offers.as_ref().map(|(_, model)| model.as_ref())
    }
}

/// One kind of model: the newest row id looked at, and the model served.
#[derive(Debug)]
struct Slot<T> {
    seen: Option<i64>,
    held: Option<(i64, Arc<T>)>,
}

impl<T> Default for Slot<T> {
    fn default() -> Self {
        Slot {
            seen: None,
            held: None,
        }
    }
}

impl<T> Slot<T> {
    /// Brings the slot up to `newest` (the newest row id now): `load(floor)`
    /// decodes the newest valid model above `floor`, if any.
    fn refresh<E>(
        &mut self,
        newest: Option<i64>,
        kind: &str,
        load: impl FnOnce(Option<i64>) -> Result<Option<(i64, T)>, E>,
    ) -> Result<(), E> {
        if newest == self.seen {
            return Ok(());
        }
        let held_id = self.held.as_ref().map(|(id, _)| *id);
        // Rows above the model held are newer; fewer rows (a replica put
        // back from a backup) are read again from the newest.
        let floor = held_id.filter(|held| newest.is_some_and(|newest| newest >= *held));
        if floor.is_none() {
            self.held = None;
        }
        if newest != floor {
            match load(floor)? {
                Some((id, model)) => {
                    tracing::info!(kind, id, "serving a newer model from the replica");
                    self.held = Some((id, Arc::new(model)));
                }
                None if floor.is_some() => {
                    tracing::warn!(
                        kind,
                        newest = ?newest,
                        serving = ?floor,
                        "the newer model does not decode: serving the previous one"
                    );
                }
                None => tracing::warn!(kind, newest = ?newest, "no model in the replica decodes"),
            }
        }
        self.seen = newest;
        Ok(())
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What a store serves with: its id, its clock, its models.
#[derive(Debug)]
pub struct StoreRuntime {
    store_id: i64,
    clock: Clock,
    recommend: Mutex<Slot<Served>>,
    offers: Mutex<Slot<RedeemModel>>,
    /// The bestsellers of one day, computed only while there is no model.
    bestsellers: Mutex<Option<(Day, Arc<Bestsellers>)>>,
}

impl StoreRuntime {
    /// The runtime of the store [`choose_store`] picks on `conn`'s replica.
    /// No model is read yet: the first [`StoreRuntime::models`] does.
    pub fn open(
        conn: &Connection,
        given_store: Option<i64>,
        clock: Clock,
    ) -> Result<Self, RuntimeError> {
        let store_id = choose_store(conn, given_store)?;
        Ok(StoreRuntime {
            store_id,
            clock,
            recommend: Mutex::default(),
            offers: Mutex::default(),
            bestsellers: Mutex::default(),
        })
    }

    pub fn store_id(&self) -> i64 {
        self.store_id
    }

    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// The store's time.
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// The models to serve a request with, newer ones picked up from the
    /// replica `conn` reads (two indexed look-ups when nothing changed).
    pub fn models(&self, conn: &Connection) -> Result<Models, RuntimeError> {
        let recommend = {
            let mut slot = lock(&self.recommend);
            slot.refresh(artifact::newest_id(conn)?, "recommend", |floor| {
                match artifact::load_newest_above(conn, floor) {
                    Ok(loaded) => Ok(Some((
                        loaded.artifact_id,
                        Served::new(loaded.artifact.model),
                    ))),
                    Err(ArtifactError::Missing(why)) => {
                        if let Some(why) = why {
                            tracing::warn!(error = %why, "recommendation model refused");
                        }
                        Ok(None)
                    }
                    Err(other) => Err(RuntimeError::from(other)),
                }
            })?;
            slot.held.clone()
        };
        let offers = {
            let mut slot = lock(&self.offers);
            slot.refresh(offer_model::newest_id(conn)?, "offers", |floor| {
                Ok::<_, RuntimeError>(
                    offer_model::load_newest_above(conn, floor)?
                        .map(|loaded| (loaded.model_id, loaded.model)),
                )
            })?;
            slot.held.clone()
        };
        let bestsellers = match recommend {
            Some(_) => None,
            None => Some(self.bestsellers(conn)?),
        };
        Ok(Models {
            recommend,
            offers,
            bestsellers,
        })
    }

    /// Today's bestsellers at the store, counted once a day.
    fn bestsellers(&self, conn: &Connection) -> Result<Arc<Bestsellers>, RuntimeError> {
        let now = self.clock.now();
        let today = now.day();
        let mut cached = lock(&self.bestsellers);
        if let Some((day, bestsellers)) = cached.as_ref()
            && *day == today
        {
            return Ok(Arc::clone(bestsellers));
        }
        let bestsellers = Arc::new(Bestsellers::load(conn, self.store_id, now)?);
        *cached = Some((today, Arc::clone(&bestsellers)));
        Ok(bestsellers)
    }

    /// Whether screens should say "offline" given the sync status: see
    /// [`crate::sync::Status::offline`], judged by the clock's wall time.
    pub fn is_offline(&self, status: &crate::sync::Status) -> bool {
        status.offline(self.clock.wall_secs(), STALE_AFTER_SECS)
    }

    /// Whether the store is offline, by the replica's sync status.
    pub fn offline(&self, conn: &Connection) -> Result<bool, RuntimeError> {
        Ok(self.is_offline(&crate::sync::status(conn)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recommend::artifact::Artifact;
    use crate::recommend::model::Model;
    use crate::time::lit::{day, ts};

    fn replica(dir: &std::path::Path) -> Connection {
        let conn = crate::replica::open_writer(&dir.join("r.db")).expect("replica");
        conn.execute_batch(
            "INSERT INTO stores (store_id, name) VALUES (1, 'Here'), (2, 'There');
             INSERT INTO products (product_id, name) VALUES (10, 'Milk'), (20, 'Bread');
             INSERT INTO store_products (store_id, product_id, price_cents, stock_qty, updated_at) VALUES
                 (2, 10, 100, 5, '2026-01-01'), (2, 20, 200, 5, '2026-01-01');
             INSERT INTO members (member_id, home_store_id, consent_personalization, updated_at)
                 VALUES (7, 2, 1, '2026-01-01');
             INSERT INTO baskets (basket_id, member_id, store_id, purchased_at)
                 VALUES (1, 7, 2, '2026-03-01 10:00:00');
             INSERT INTO purchase_lines (basket_id, line_no, product_id, quantity, sales_cents)
                 VALUES (1, 1, 10, 1, 100);",
        )
        .expect("rows");
        conn
    }

    fn provision(conn: &Connection, store_id: i64) {
        for (key, value) in [
            ("sync.hq_url", "https://127.0.0.1:9".to_owned()),
            ("sync.device_id", "kiosk-1".to_owned()),
            ("sync.store_id", store_id.to_string()),
            ("sync.hq_public_key", "cd".repeat(32)),
        ] {
            crate::replica::set_meta(conn, key, &value).expect("meta");
        }
        crate::replica::set_secret(conn, crate::vault::HQ_SECRET, &"ab".repeat(32))
            .expect("secret");
    }

    fn artifact(products: Vec<i64>) -> Artifact {
        let n = products.len();
        Artifact {
            trained_until: "2026-03-02".into(),
            created_at: "2026-03-02 06:00:00".into(),
            seed: 1,
            model: Model {
                products,
                item_kind: vec![0; n],
                kinds: vec!["FOOD".into()],
                kind_top: vec![(0..n as u32).collect()],
                kind_share: vec![1.0; n],
                popularity: vec![1.0; n],
                recent_popularity: vec![1.0; n],
                popular: (0..n as u32).collect(),
                neighbors: crate::recommend::model::Neighbors::from_lists(&vec![vec![]; n]),
                shopper_neighbors: crate::recommend::model::Neighbors::from_lists(&vec![vec![]; n]),
                repeat_rate: vec![0.5; n],
                repeat_interval: vec![7.0; n],
                new_buyers: vec![0.0; n],
                ..Model::default()
            },
        }
    }

    #[test]
    fn the_store_is_the_provisioned_one_else_the_given_one_else_the_demos() {
        let check = |provisioned, given, demo, expect: Option<i64>| {
            let decided = decide_store(provisioned, given, demo).ok();
            assert_eq!(decided, expect, "{provisioned:?} {given:?} {demo:?}");
        };
        check(Some(3), None, Some(2), Some(3));
        check(Some(3), Some(3), Some(2), Some(3));
        check(None, Some(4), Some(2), Some(4));
        check(None, None, Some(2), Some(2));
        check(None, None, None, None);
        let conflict = decide_store(Some(3), Some(4), None).expect_err("conflict");
        assert!(
            matches!(
                conflict,
                RuntimeError::StoreConflict {
                    given: 4,
                    provisioned: 3
                }
            ),
            "{conflict:?}"
        );
        assert_eq!(
            conflict.to_string(),
            "this replica is provisioned for store 3: it cannot serve store 4"
        );
        assert!(
            decide_store(None, None, None)
                .expect_err("none")
                .to_string()
                .contains("--store")
        );
    }

    #[test]
    fn a_replica_chooses_its_store_by_the_rule() {
        let dir = tempfile::tempdir().expect("tempdir");
        let conn = replica(dir.path());
        assert_eq!(
            choose_store(&conn, None).expect("demo"),
            2,
            "the showcase member's home store"
        );
        assert_eq!(choose_store(&conn, Some(1)).expect("given"), 1);
        provision(&conn, 1);
        assert_eq!(choose_store(&conn, None).expect("provisioned"), 1);
        assert_eq!(choose_store(&conn, Some(1)).expect("the same"), 1);
        assert!(matches!(
            choose_store(&conn, Some(2)),
            Err(RuntimeError::StoreConflict {
                given: 2,
                provisioned: 1
            })
        ));
        let runtime = StoreRuntime::open(&conn, None, Clock::wall()).expect("runtime");
        assert_eq!(runtime.store_id(), 1);
        // A kiosk's process is not given the HQ secret (only sync's is): it
        // still knows its store and its sync status; sync is told plainly.
        crate::vault::Vault::of(&conn)
            .expect("vault")
            .remove(crate::vault::HQ_SECRET)
            .expect("forget");
        assert_eq!(choose_store(&conn, None).expect("without the secret"), 1);
        assert_eq!(
            crate::sync::status(&conn).expect("status").store_id,
            Some(1)
        );
        let err = crate::sync::Credentials::load(&conn).expect_err("sync needs it");
        assert!(err.to_string().contains("holds no HQ secret"), "{err}");
    }

    #[test]
    fn a_stepped_clock_moves_only_when_told_and_clones_share_its_steps() {
        let clock = Clock::stepped_at("2026-03-05 12:00:00").expect("time");
        let shared = clock.clone();
        assert_eq!(clock.now(), ts("2026-03-05 12:00:00"));
        assert_eq!(clock.monotonic_ms(), 0);
        shared.advance(Duration::from_millis(1_500));
        assert_eq!(clock.monotonic_ms(), 1_500);
        assert_eq!(clock.now(), ts("2026-03-05 12:00:01"));
        shared.advance(Duration::from_secs(12 * 3600));
        assert_eq!(clock.today(), day("2026-03-06"));
        assert_eq!(clock.wall_secs(), clock.now_secs(), "its own time for sync");
        assert!(matches!(
            Clock::stepped_at("yesterday"),
            Err(RuntimeError::BadTime(_))
        ));
    }

    #[test]
    fn a_pinned_clock_starts_at_its_day_and_judges_sync_by_the_wall() {
        let pinned = Clock::pinned_or_wall(Some("2017-10-20 12:00:00")).expect("pinned");
        let start = crate::dates::seconds_of("2017-10-20 12:00:00").expect("time");
        assert!((start..start + 5).contains(&pinned.now_secs()));
        let wall = Clock::pinned_or_wall(None).expect("wall");
        assert!((pinned.wall_secs() - wall.now_secs()).abs() < 5);
        assert!(wall.now_secs() > start);
        let before = wall.monotonic_ms();
        wall.advance(Duration::from_secs(3600));
        assert!(
            wall.monotonic_ms() < before + 5_000,
            "real time ignores steps"
        );
        assert!(Clock::pinned_or_wall(Some("2017-13-45")).is_err());
    }

    #[test]
    fn the_models_of_a_replica_without_any_are_none_and_bestsellers_rank() {
        let dir = tempfile::tempdir().expect("tempdir");
        let conn = replica(dir.path());
        let clock = Clock::stepped_at("2026-03-05 12:00:00").expect("time");
        let runtime = StoreRuntime::open(&conn, None, clock).expect("runtime");
        let models = runtime.models(&conn).expect("models");
        assert!(models.recommend.is_none() && models.offers.is_none());
        match models.ranking() {
            Ranking::Bestsellers(bestsellers) => {
                assert_eq!(bestsellers.here, vec![(10, 1.0)]);
            }
            Ranking::Model(_) => panic!("no model"),
        }
    }

    #[test]
    fn a_newer_model_stored_after_start_is_served_from_the_next_request() {
        let dir = tempfile::tempdir().expect("tempdir");
        let conn = replica(dir.path());
        let runtime = StoreRuntime::open(&conn, None, Clock::stepped(0)).expect("runtime");
        assert!(runtime.models(&conn).expect("models").recommend.is_none());
        let first = artifact::store(&conn, &artifact(vec![10])).expect("store");
        let models = runtime.models(&conn).expect("models");
        let (id, served) = models.recommend.clone().expect("picked up");
        assert_eq!((id, served.model.products.clone()), (first, vec![10]));
        assert!(models.bestsellers.is_none());
        // Nothing new: the same decoded model, shared.
        let again = runtime.models(&conn).expect("models");
        assert!(Arc::ptr_eq(&served, &again.recommend.expect("held").1));
        // Sync stores a newer one (through another connection, as sync does).
        let writer = crate::replica::open_writer(&dir.path().join("r.db")).expect("writer");
        let second = artifact::store(&writer, &artifact(vec![10, 20])).expect("store");
        let (id, served) = runtime
            .models(&conn)
            .expect("models")
            .recommend
            .expect("model");
        assert_eq!((id, served.model.products.len()), (second, 2));
        // A newer one that does not decode: the previous one stays.
        writer
            .execute(
                "INSERT INTO model_artifacts (kind, format_version, created_at, trained_until, sha256, size_bytes, bytes)
                 VALUES ('recommend', 3, '2026-03-03', '2026-03-03', '00', 4, x'00010203')",
                [],
            )
            .expect("broken artifact");
        let (id, _) = runtime
            .models(&conn)
            .expect("models")
            .recommend
            .expect("model");
        assert_eq!(id, second, "the broken newest is refused");
    }

    #[test]
    fn a_newer_offer_model_is_picked_up_and_a_damaged_one_refused() {
        use crate::offers::features::FEATURES;
        let dir = tempfile::tempdir().expect("tempdir");
        let conn = replica(dir.path());
        let runtime = StoreRuntime::open(&conn, None, Clock::stepped(0)).expect("runtime");
        assert!(runtime.models(&conn).expect("models").offers.is_none());
        let model = RedeemModel {
            format_version: offer_model::FORMAT_VERSION,
            trained_until: "2026-03-01".into(),
            features: FEATURES.iter().map(|f| (*f).to_owned()).collect(),
            mean: vec![0.0; FEATURES.len()],
            scale: vec![1.0; FEATURES.len()],
            weights: vec![0.5; FEATURES.len()],
            intercept: -1.0,
            type_offsets: Default::default(),
            examples: 10,
            positives: 2,
            campaigns: vec![1],
        };
        let id = offer_model::store(&conn, &model, ts("2026-03-02 06:00:00")).expect("store");
        let models = runtime.models(&conn).expect("models");
        assert_eq!(models.offers.as_ref().map(|(id, _)| *id), Some(id));
        assert_eq!(models.offer_model(), Some(&model));
        conn.execute(
            "INSERT INTO offer_models (format_version, created_at, trained_until, sha256, body)
             VALUES (1, '2026-03-03', '2026-03-03', 'bad', '{}')",
            [],
        )
        .expect("damaged model");
        let models = runtime.models(&conn).expect("models");
        assert_eq!(models.offers.map(|(id, _)| id), Some(id));
    }

    #[test]
    fn a_provisioned_store_is_offline_when_its_last_sync_is_stale_by_the_clock() {
        let dir = tempfile::tempdir().expect("tempdir");
        let conn = replica(dir.path());
        let clock = Clock::stepped_at("2026-03-05 12:00:00").expect("time");
        let demo = StoreRuntime::open(&conn, None, clock.clone()).expect("runtime");
        assert!(!demo.offline(&conn).expect("status"), "a demo never is");
        provision(&conn, 2);
        conn.execute(
            "INSERT INTO sync_state (partition, last_success_at) VALUES ('store', '2026-03-05 11:59:00')",
            [],
        )
        .expect("sync state");
        let runtime = StoreRuntime::open(&conn, None, clock.clone()).expect("runtime");
        assert!(!runtime.offline(&conn).expect("status"));
        clock.advance(Duration::from_secs(600));
        assert!(runtime.offline(&conn).expect("status"), "11 minutes since");
    }
}
