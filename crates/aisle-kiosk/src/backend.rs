//! The kiosk's side of the replica: the connection, the store's runtime
//! (store, clock, models picked up as sync brings them), the core calls.
//! [`Backend`] is synchronous; [`Worker`] runs it on its own thread so the
//! UI never waits on SQLite, and hands each [`Reply`] to a callback (the
//! controller's, which moves it into the event loop).

use std::path::{Path, PathBuf};
use std::sync::mpsc;

use aisle_core::identify::member_code;
use aisle_core::keys;
use aisle_core::kiosk::{self, KioskConfig, KioskModels, ScanOutcome};
use aisle_core::offers::engine::OfferBook;
use aisle_core::recommend::serve;
use aisle_core::runtime::{Clock, StoreRuntime};
use anyhow::{Context, Result};
use rusqlite::Connection;

/// What the kiosk is started with.
#[derive(Debug, Clone)]
pub struct BackendConfig {
    pub db: PathBuf,
    /// The store named at start (`--store`); the runtime's rule decides
    /// (a provisioned replica serves its own store).
    pub store: Option<i64>,
    /// Every core call gets its time here (the demo pins its day).
    pub clock: Clock,
    /// Seconds without a touch before the screen returns to attract.
    pub idle_secs: u64,
    /// Offer demo members on the attract screen.
    pub demo: bool,
    /// What the screen never shows (words of departments, categories and
    /// types); `None`: `serve::PUBLIC_SCREEN_EXCLUDED`.
    pub public_excluded: Option<Vec<String>>,
}

/// Work for the backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Job {
    /// A confirmed scan (camera, wedge, or a demo member's generated code).
    Scan(String),
    /// A demo member tapped: their app's current code, then as a scan.
    DemoMember(i64),
    SendToApp {
        serial: String,
        member_id: i64,
    },
    /// The popular strip and the offline banner.
    Refresh,
}

/// What comes back.
#[derive(Debug, Clone)]
pub enum Reply {
    Scanned(ScanOutcome),
    Sent {
        serial: String,
    },
    Refreshed {
        popular: Vec<serve::Pick>,
        offline: bool,
        demo_members: Vec<(i64, String)>,
    },
    Failed(String),
}

/// The replica and the store's runtime.
#[derive(Debug)]
pub struct Backend {
    conn: Connection,
    config: BackendConfig,
    kiosk: KioskConfig,
    runtime: StoreRuntime,
    book: Option<OfferBook>,
}

impl Backend {
    /// Opens the replica (which may hold no model yet: picks are then the
    /// store's bestsellers, and a model is served as soon as sync brings one).
    pub fn open(config: BackendConfig) -> Result<Self> {
        if !config.db.is_file() {
            anyhow::bail!(
                "no replica at {}: run `aisle demo` (or `aisle sync`) first",
                config.db.display()
            );
        }
        let conn = aisle_core::replica::open_writer(&config.db)
            .with_context(|| format!("opening {}", config.db.display()))?;
        let runtime = StoreRuntime::open(&conn, config.store, config.clock.clone())?;
        // Decoded now rather than at the first scan.
        let models = runtime.models(&conn)?;
        if models.recommend.is_none() {
            tracing::warn!("no recommendation model yet: popular picks until sync brings one");
        }
        if models.offers.is_none() {
            tracing::warn!("no offer model yet: no new coupons until sync brings one");
        }
        let mut kiosk = KioskConfig::new(runtime.store_id());
        kiosk.idle_secs = config.idle_secs;
        if let Some(words) = &config.public_excluded {
            kiosk.serve.public_excluded.clone_from(words);
        }
        let mut backend = Backend {
            conn,
            config,
            kiosk,
            runtime,
            book: None,
        };
        backend.refresh_book()?;
        Ok(backend)
    }

    pub fn db(&self) -> &Path {
        &self.config.db
    }

    pub fn clock(&self) -> &Clock {
        self.runtime.clock()
    }

    /// The store this kiosk serves.
    pub fn store_id(&self) -> i64 {
        self.runtime.store_id()
    }

    /// The offer book for today (reloaded when the day changes).
    fn refresh_book(&mut self) -> Result<()> {
        let today = self.runtime.clock().today();
        if self.book.as_ref().is_none_or(|b| b.day != today) {
            self.book = Some(OfferBook::load(&self.conn, self.kiosk.store_id, today)?);
        }
        Ok(())
    }

    pub fn run(&mut self, job: Job) -> Reply {
        match self.try_run(job) {
            Ok(reply) => reply,
            Err(error) => {
                tracing::error!(error = format!("{error:#}"), "kiosk job failed");
                Reply::Failed(format!("{error:#}"))
            }
        }
    }

    fn try_run(&mut self, job: Job) -> Result<Reply> {
        match job {
            Job::Scan(text) => self.scan(&text),
            Job::DemoMember(member_id) => {
                let now_secs = u64::try_from(self.runtime.clock().now_secs()).unwrap_or(0);
                match keys::demo_signing_key(&self.conn, member_id)? {
                    Some(key) => {
                        let code =
                            member_code::encode(member_id, &key, now_secs, &self.kiosk.codes);
                        self.scan(&code)
                    }
                    None => Ok(Reply::Failed(format!("member {member_id} has no demo key"))),
                }
            }
            Job::SendToApp { serial, member_id } => {
                let now = self.runtime.now();
                match aisle_core::edits::coupon_sent_to_app(
                    &mut self.conn,
                    &serial,
                    member_id,
                    now,
                )? {
                    Some(_) => Ok(Reply::Sent { serial }),
                    None => Ok(Reply::Failed(format!(
                        "coupon {serial} is not this member's"
                    ))),
                }
            }
            Job::Refresh => {
                self.refresh_book()?;
                Ok(Reply::Refreshed {
                    popular: self.popular()?,
                    offline: self.offline()?,
                    demo_members: if self.config.demo {
                        self.demo_members()?
                    } else {
                        Vec::new()
                    },
                })
            }
        }
    }

    fn scan(&mut self, text: &str) -> Result<Reply> {
        self.refresh_book()?;
        // Before each scan: a model sync stored since the last one is served from now on.
        let models = self.runtime.models(&self.conn)?;
        let scan_models = KioskModels {
            ranking: models.ranking(),
            offers: models.offer_model(),
            book: self.book.as_ref(),
        };
        let now = self.runtime.clock().now();
        let outcome = kiosk::on_scan(
            &mut self.conn,
            &scan_models,
            &self.kiosk,
            text,
            now,
            u64::try_from(now.unix()).unwrap_or(0),
        )?;
        // Written after the core committed: what this line names is in the replica and the outbox.
        if let ScanOutcome::Welcome(welcome) = &outcome {
            let serials: Vec<&str> = welcome.coupons.iter().map(|c| c.serial.as_str()).collect();
            tracing::info!(
                member_id = welcome.welcome.member_id,
                issued = welcome.issued,
                coupons = serials.join(","),
                "welcome committed"
            );
        }
        Ok(Reply::Scanned(outcome))
    }

    /// Non-personal picks for the attract screen.
    fn popular(&self) -> Result<Vec<serve::Pick>> {
        let models = self.runtime.models(&self.conn)?;
        let lists = models.ranking().lists(
            &self.conn,
            &serve::Request {
                member_id: None,
                store_id: self.kiosk.store_id,
                now: self.runtime.now(),
                k: 6,
                public_screen: true,
                shown: Vec::new(),
            },
            &self.kiosk.serve,
        )?;
        let mut picks = lists.buy_again;
        for pick in lists.discover {
            if !picks.iter().any(|p| p.product_id == pick.product_id) {
                picks.push(pick);
            }
        }
        Ok(picks)
    }

    /// Provisioned and the last sync failed or is stale (judged by the
    /// runtime: sync times are wall times, even under the demo's pinned day).
    fn offline(&self) -> Result<bool> {
        Ok(self.runtime.offline(&self.conn)?)
    }

    /// Demo members with their demo keys: the showcase member first, then
    /// one without personalization consent.
    fn demo_members(&self) -> Result<Vec<(i64, String)>> {
        let mut members = Vec::new();
        if let Some(id) = aisle_core::demo::showcase_member(&self.conn)? {
            members.push(id);
        }
        let others: Vec<i64> = self
            .conn
            .prepare(
                "SELECT member_id FROM members WHERE erased_at IS NULL AND given_name IS NOT NULL
                 ORDER BY consent_personalization, member_id LIMIT 3",
            )?
            .query_map([], |row| row.get(0))?
            .collect::<Result<_, _>>()?;
        for id in others {
            if !members.contains(&id) && members.len() < 3 {
                members.push(id);
            }
        }
        let mut named = Vec::new();
        for id in members {
            if keys::demo_signing_key(&self.conn, id)?.is_none() {
                continue;
            }
            let name: Option<String> = self.conn.query_row(
                "SELECT given_name FROM members WHERE member_id = ?1",
                [id],
                |row| row.get(0),
            )?;
            named.push((id, name.unwrap_or_else(|| format!("Member {id}"))));
        }
        Ok(named)
    }
}

/// The backend on its own thread.
#[derive(Debug)]
pub struct Worker {
    jobs: mpsc::Sender<Job>,
}

impl Worker {
    /// Starts the thread; every reply goes to `reply` (on the worker thread).
    pub fn start(mut backend: Backend, reply: impl Fn(Reply) + Send + 'static) -> Self {
        let (jobs, queue) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("kiosk-backend".into())
            .spawn(move || {
                for job in queue {
                    reply(backend.run(job));
                }
            })
            .expect("spawning the kiosk's backend thread");
        Worker { jobs }
    }

    /// A handle other threads (the camera's) submit with.
    pub fn sender(&self) -> mpsc::Sender<Job> {
        self.jobs.clone()
    }

    pub fn submit(&self, job: Job) {
        if self.jobs.send(job).is_err() {
            tracing::error!("the kiosk's backend thread has stopped");
        }
    }
}
