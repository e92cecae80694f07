//! The kiosk's side of the replica: connections, the models, the core calls.
//! [`Backend`] is synchronous; [`Worker`] runs it on its own thread so the
//! UI never waits on SQLite, and hands each [`Reply`] to a callback (the
//! controller's, which moves it into the event loop).

use std::path::{Path, PathBuf};
use std::sync::mpsc;

use aisle_core::identify::member_code;
use aisle_core::keys;
use aisle_core::kiosk::{self, KioskConfig, KioskModels, ScanOutcome};
use aisle_core::offers::engine::OfferBook;
use aisle_core::offers::model::{self, RedeemModel};
use aisle_core::recommend::{artifact, serve};
use anyhow::{Context, Result};
use rusqlite::Connection;

/// The kiosk's clock: wall time, or a pinned start (the demo data's last
/// day) that then runs at wall speed. Every core call gets its time here.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    /// Unix seconds at `started`.
    base_secs: i64,
    started: std::time::Instant,
}

impl Clock {
    pub fn wall() -> Self {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        Self::pinned(now)
    }

    pub fn pinned(base_secs: i64) -> Self {
        Clock {
            base_secs,
            started: std::time::Instant::now(),
        }
    }

    pub fn now_secs(&self) -> u64 {
        (self.base_secs + self.started.elapsed().as_secs() as i64).max(0) as u64
    }

    /// Store-local `YYYY-MM-DD HH:MM:SS` (the replica's convention).
    pub fn now(&self) -> String {
        aisle_core::dates::timestamp_string(self.now_secs() as i64)
    }
}

/// What the kiosk is started with.
#[derive(Debug, Clone)]
pub struct BackendConfig {
    pub db: PathBuf,
    pub kiosk: KioskConfig,
    pub clock: Clock,
    /// Offer demo members on the attract screen.
    pub demo: bool,
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

/// The replica and the models, loaded once.
#[derive(Debug)]
pub struct Backend {
    conn: Connection,
    config: BackendConfig,
    served: serve::Served,
    offers: Option<RedeemModel>,
    book: Option<OfferBook>,
}

impl Backend {
    pub fn open(config: BackendConfig) -> Result<Self> {
        if !config.db.is_file() {
            anyhow::bail!(
                "no replica at {}: run `aisle demo` (or `aisle sync`) first",
                config.db.display()
            );
        }
        let conn = aisle_core::replica::open_writer(&config.db)
            .with_context(|| format!("opening {}", config.db.display()))?;
        let served = serve::Served::new(
            artifact::load_newest(&conn)
                .context("the replica holds no recommendation model: run `aisle train`")?
                .artifact
                .model,
        );
        let offers = model::load_newest(&conn)?.map(|loaded| loaded.model);
        if offers.is_none() {
            tracing::warn!(
                "no offer model in the replica: no new coupons are issued (run `aisle offers train`)"
            );
        }
        let mut backend = Backend {
            conn,
            config,
            served,
            offers,
            book: None,
        };
        backend.refresh_book()?;
        Ok(backend)
    }

    pub fn db(&self) -> &Path {
        &self.config.db
    }

    pub fn clock(&self) -> Clock {
        self.config.clock
    }

    /// The offer book for today (reloaded when the day changes).
    fn refresh_book(&mut self) -> Result<()> {
        let today = self.config.clock.now()[..10].to_owned();
        if self.book.as_ref().is_none_or(|b| b.day != today) {
            self.book = Some(OfferBook::load(
                &self.conn,
                self.config.kiosk.store_id,
                &today,
            )?);
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
                let now_secs = self.config.clock.now_secs();
                match keys::demo_signing_key(&self.conn, member_id)? {
                    Some(key) => {
                        let code = member_code::encode(
                            member_id,
                            &key,
                            now_secs,
                            &self.config.kiosk.codes,
                        );
                        self.scan(&code)
                    }
                    None => Ok(Reply::Failed(format!("member {member_id} has no demo key"))),
                }
            }
            Job::SendToApp { serial, member_id } => {
                let now = self.config.clock.now();
                match aisle_core::edits::coupon_sent_to_app(
                    &mut self.conn,
                    &serial,
                    member_id,
                    &now,
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
        let models = KioskModels {
            served: &self.served,
            offers: self.offers.as_ref(),
            book: self.book.as_ref(),
        };
        let now_secs = self.config.clock.now_secs();
        let now = aisle_core::dates::timestamp_string(now_secs as i64);
        let outcome = kiosk::on_scan(
            &mut self.conn,
            &models,
            &self.config.kiosk,
            text,
            &now,
            now_secs,
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
        let lists = serve::recommend(
            &self.conn,
            &self.served,
            &serve::Request {
                member_id: None,
                store_id: self.config.kiosk.store_id,
                now: self.config.clock.now(),
                k: 6,
                public_screen: true,
                shown: Vec::new(),
            },
            &self.config.kiosk.serve,
        )?;
        let mut picks = lists.buy_again;
        for pick in lists.discover {
            if !picks.iter().any(|p| p.product_id == pick.product_id) {
                picks.push(pick);
            }
        }
        Ok(picks)
    }

    /// Provisioned and the last sync failed or is older than ten minutes, by
    /// the wall clock (sync times are wall times, even when the kiosk's
    /// clock is pinned to the demo data's days).
    fn offline(&self) -> Result<bool> {
        Ok(aisle_core::sync::status(&self.conn)?.offline(Clock::wall().now_secs() as i64, 600))
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
