//! The serving path: for a member (or nobody) at a store, now, the "Buy again"
//! and "Discover" lists with reasons, and "often bought together" for a product.
//!
//! A function of (replica read view, model, request with `now`): it reads the
//! member's consent and history and the store's catalog through `&Connection`,
//! and decides nothing from the clock or the environment. Steps:
//! candidates -> scoring -> business filters (active and in stock here;
//! personalization consent; categories excluded on public screens;
//! items already shown this session) -> diversity (at most N per kind) ->
//! fallback (store bestsellers, then overall bestsellers) to fill short lists.
//!
//! A replica HQ has sent no model yet is served too: [`Ranking::Bestsellers`]
//! ranks what sells at the store by the replica's newest baskets, with the
//! same business filters, and nothing personal.

use crate::time::Timestamp;
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use super::history::{Trip, day_of};
use super::model::{Model, Scored, member_stats};
use crate::consent;
use crate::rng::{IdMap, IdSet};

/// Rules a retailer sets.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Never shown on a public screen: matched case-insensitively against a
    /// product's department, category and type.
    pub public_excluded: Vec<String>,
    /// Never recommended anywhere (not merchandise: fuel, coupons, fees).
    pub never: Vec<String>,
    /// At most this many items of one kind (product type) per list.
    pub per_kind: usize,
    /// Only items in stock at the store (a kiosk, a tablet); off for a batch
    /// export that has no store at hand.
    pub require_stock: bool,
}

impl Policy {
    /// For offline evaluation and batch exports: the model's own ranking,
    /// with only the rules that hold everywhere (active products, consent,
    /// items already shown). Stock, diversity and screen rules belong to a
    /// store's screen, not to a household's list.
    pub fn batch() -> Self {
        Self {
            public_excluded: Vec::new(),
            never: Vec::new(),
            per_kind: usize::MAX,
            require_stock: false,
        }
    }
}

/// What a public screen (the kiosk) never shows, under a member's name or
/// on the attract screen: words matched case-insensitively within a
/// product's department, category and type (docs/OFFERS.md, "Public
/// screens"). Chosen from Complete Journey's catalog: alcohol and tobacco,
/// and the health items a passer-by should not see suggested to someone
/// (family planning and pregnancy tests, incontinence, feminine hygiene,
/// the pharmacy and home health care, laxatives, antacids, diet aids,
/// smoking cessation).
pub const PUBLIC_SCREEN_EXCLUDED: &[&str] = &[
    "SPIRITS",
    "BEER",
    "WINE",
    "LIQUOR",
    "TOBACCO",
    "CIGAR",
    "CIGARETTE",
    "FAMILY PLANNING",
    "PREGNANCY",
    "CONTRACEPT",
    "CONDOM",
    "INCONTINENCE",
    "FEMININE HYGIENE",
    "PHARMACY",
    "HOME HEALTH CARE",
    "LAXATIVE",
    "ANTACID",
    "DIETARY AID",
    "RESTRICTED DIET",
    "SMOKING CESSATION",
];

impl Policy {
    /// Whether a product with these labels (department, category and type,
    /// upper case) may be shown on a public screen.
    pub fn public(&self, labels: &str) -> bool {
        let labels = labels.to_uppercase();
        !self
            .public_excluded
            .iter()
            .any(|word| labels.contains(&word.to_uppercase()))
    }
}

impl Default for Policy {
    fn default() -> Self {
        let words = |list: &[&str]| list.iter().map(|w| (*w).to_owned()).collect();
        Self {
            public_excluded: words(PUBLIC_SCREEN_EXCLUDED),
            never: words(&[
                "COUPON",
                "FUEL",
                "GASOLINE",
                "KIOSK-GAS",
                "CNTRL/STORE SUP",
                "POSTAL",
                "CHARITABLE",
            ]),
            per_kind: 2,
            require_stock: true,
        }
    }
}

/// What is asked.
#[derive(Debug, Clone)]
pub struct Request {
    pub member_id: Option<i64>,
    pub store_id: i64,
    /// `YYYY-MM-DD HH:MM:SS`, store-local; history after it is ignored.
    pub now: Timestamp,
    pub k: usize,
    /// A kiosk screen others can see.
    pub public_screen: bool,
    /// Products already shown in this session.
    pub shown: Vec<i64>,
}

/// Why an item is on a list, in words a shopper understands.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Reason {
    /// "You buy this about every 14 days"
    Cycle { every_days: u32 },
    /// "You have bought this 5 times"
    Bought { times: u32 },
    /// "Often bought with Greek yogurt"
    BoughtWith { product_id: i64, name: String },
    /// "Popular at this store"
    PopularHere,
    /// "Popular with shoppers"
    Popular,
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reason::Cycle { every_days } if *every_days <= 8 => {
                write!(f, "you buy this every week or so")
            }
            Reason::Cycle { every_days } => write!(f, "you buy this about every {every_days} days"),
            Reason::Bought { times: 1 } => write!(f, "you bought this before"),
            Reason::Bought { times } => write!(f, "you have bought this {times} times"),
            Reason::BoughtWith { name, .. } => write!(f, "often bought with {name}"),
            Reason::PopularHere => write!(f, "popular at this store"),
            Reason::Popular => write!(f, "popular with shoppers"),
        }
    }
}

/// One recommended product, ready for a screen.
#[derive(Debug, Clone, Serialize)]
pub struct Pick {
    pub product_id: i64,
    pub name: String,
    pub department: Option<String>,
    pub price_cents: Option<i64>,
    pub location: Option<String>,
    pub reason: Reason,
    pub score: f64,
}

/// The answer for a member or an anonymous shopper.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Lists {
    pub buy_again: Vec<Pick>,
    pub discover: Vec<Pick>,
    /// False when the lists are not personal (anonymous, no consent, unknown, erased, no history).
    pub personal: bool,
    /// Why they are not personal, for the screen.
    pub notice: Option<String>,
    /// The same as a stable code screens translate: `anonymous`,
    /// `unknown_member`, `personalization_off`, `no_history`.
    pub notice_code: Option<&'static str>,
}

/// A model ready to serve: the artifact's model and its product index.
#[derive(Debug, Clone)]
pub struct Served {
    pub model: Model,
    pub index: IdMap<i64, u32>,
}

impl Served {
    pub fn new(model: Model) -> Self {
        let index = model
            .products
            .iter()
            .enumerate()
            .map(|(idx, id)| (*id, idx as u32))
            .collect();
        Self { model, index }
    }
}

struct ProductInfo {
    name: String,
    department: Option<String>,
    labels: String,
    kind: String,
    active: bool,
    price_cents: Option<i64>,
    stock_qty: Option<i64>,
    location: Option<String>,
}

fn product_info(
    conn: &Connection,
    product_id: i64,
    store_id: i64,
) -> rusqlite::Result<Option<ProductInfo>> {
    // Two primary-key look-ups rather than one join: the join, with the store as
    // a bound parameter, was re-prepared by SQLite on every call (STAT4 build),
    // a third of the serving time.
    let product = conn
        .prepare_cached(
            "SELECT name, department,
                    upper(coalesce(department, '') || ' ' || coalesce(category, '') || ' ' || coalesce(product_type, '')),
                    coalesce(product_type, category, department, ''), active
             FROM products WHERE product_id = ?1",
        )?
        .query_row([product_id], |row| {
            Ok(ProductInfo {
                name: row.get(0)?,
                department: row.get(1)?,
                labels: row.get(2)?,
                kind: row.get(3)?,
                active: row.get(4)?,
                price_cents: None,
                stock_qty: None,
                location: None,
            })
        })
        .optional()?;
    let Some(mut product) = product else {
        return Ok(None);
    };
    let shelf: Option<(i64, i64, Option<String>)> = conn
        .prepare_cached("SELECT price_cents, stock_qty, location FROM store_products WHERE store_id = ?1 AND product_id = ?2")?
        .query_row([store_id, product_id], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .optional()?;
    if let Some((price_cents, stock_qty, location)) = shelf {
        product.price_cents = Some(price_cents);
        product.stock_qty = Some(stock_qty);
        product.location = location;
    }
    Ok(Some(product))
}

/// The member's trips before `now`, in the model's item space.
pub fn member_trips(
    conn: &Connection,
    served: &Served,
    member_id: i64,
    now: Timestamp,
) -> rusqlite::Result<Vec<Trip>> {
    let mut stmt = conn.prepare_cached(
        "SELECT b.basket_id, b.store_id, b.purchased_at, l.product_id
         FROM baskets AS b JOIN purchase_lines AS l ON l.basket_id = b.basket_id
         WHERE b.member_id = ?1 AND b.purchased_at < ?2
         ORDER BY b.purchased_at, b.basket_id",
    )?;
    let mut rows = stmt.query(params![member_id, now])?;
    let mut trips: Vec<Trip> = Vec::new();
    let mut current = None;
    while let Some(row) = rows.next()? {
        let basket_id: i64 = row.get(0)?;
        if current != Some(basket_id) {
            current = Some(basket_id);
            let at: String = row.get(2)?;
            trips.push(Trip {
                day: day_of(&at).unwrap_or_default(),
                store_id: row.get(1)?,
                items: Vec::new(),
            });
        }
        if let (Some(item), Some(trip)) =
            (served.index.get(&row.get::<_, i64>(3)?), trips.last_mut())
        {
            trip.items.push(*item);
        }
    }
    for trip in &mut trips {
        trip.items.sort_unstable();
        trip.items.dedup();
    }
    trips.retain(|t| !t.items.is_empty());
    Ok(trips)
}

/// The store of most of the member's baskets before `now` (ties: lowest id).
pub fn usual_store(
    conn: &Connection,
    member_id: i64,
    now: Timestamp,
) -> rusqlite::Result<Option<i64>> {
    conn.prepare_cached(
        "SELECT store_id FROM baskets WHERE member_id = ?1 AND purchased_at < ?2 || ''
         GROUP BY store_id ORDER BY count(*) DESC, store_id LIMIT 1",
    )?
    .query_row(params![member_id, now], |row| row.get(0))
    .optional()
}

/// Filters, diversity and the list being filled, for one list.
struct Filler<'a> {
    conn: &'a Connection,
    policy: &'a Policy,
    request: &'a Request,
    taken: IdSet<i64>,
    per_kind: IdMap<String, usize>,
    list: Vec<Pick>,
}

impl<'a> Filler<'a> {
    fn new(conn: &'a Connection, policy: &'a Policy, request: &'a Request) -> Self {
        Self {
            conn,
            policy,
            request,
            taken: IdSet::default(),
            per_kind: IdMap::default(),
            list: Vec::new(),
        }
    }

    /// Adds `product_id` if it passes every rule; true when added.
    fn offer(&mut self, product_id: i64, reason: Reason, score: f64) -> rusqlite::Result<bool> {
        if self.list.len() >= self.request.k
            || self.taken.contains(&product_id)
            || self.request.shown.contains(&product_id)
        {
            return Ok(false);
        }
        let Some(info) = product_info(self.conn, product_id, self.request.store_id)? else {
            return Ok(false);
        };
        let matches = |words: &[String]| {
            words
                .iter()
                .any(|w| info.labels.contains(&w.to_uppercase()))
        };
        let in_stock = !self.policy.require_stock || info.stock_qty.is_some_and(|qty| qty > 0);
        if !info.active || !in_stock || matches(&self.policy.never) {
            return Ok(false);
        }
        if self.request.public_screen && !self.policy.public(&info.labels) {
            return Ok(false);
        }
        // Two catalog entries with one name (sizes the catalog does not tell apart) look like a repeat.
        if self.policy.per_kind < usize::MAX && self.list.iter().any(|pick| pick.name == info.name)
        {
            return Ok(false);
        }
        let count = self.per_kind.entry(info.kind.clone()).or_default();
        if *count >= self.policy.per_kind {
            return Ok(false);
        }
        *count += 1;
        self.taken.insert(product_id);
        self.list.push(Pick {
            product_id,
            name: info.name,
            department: info.department,
            price_cents: info.price_cents,
            location: info.location,
            reason,
            score,
        });
        Ok(true)
    }

    fn full(&self) -> bool {
        self.list.len() >= self.request.k
    }
}

/// How far down the overall bestseller list a fallback looks (the store's own
/// list, at most a thousand items it sells, is walked whole): bounded, so a
/// store with little in stock costs a few hundred look-ups, not the catalog.
const FALLBACK_DEPTH: usize = 300;

/// Store bestsellers, then overall bestsellers, into `filler`, skipping `exclude` items.
fn fill_popular(
    filler: &mut Filler<'_>,
    model: &Model,
    store_id: i64,
    exclude: &IdSet<u32>,
) -> rusqlite::Result<()> {
    let store_top: &[(u32, f32)] = model
        .store_popularity
        .binary_search_by_key(&store_id, |(id, _)| *id)
        .map_or(&[], |idx| model.store_popularity[idx].1.as_slice());
    for (item, share) in store_top {
        if filler.full() {
            return Ok(());
        }
        if !exclude.contains(item) {
            // Fallback scores stay below any model probability, so merged lists keep them last.
            filler.offer(
                model.products[*item as usize],
                Reason::PopularHere,
                1e-6 * f64::from(*share),
            )?;
        }
    }
    for (rank, item) in model.popular.iter().enumerate() {
        if filler.full() || rank >= FALLBACK_DEPTH {
            break;
        }
        if !exclude.contains(item) {
            filler.offer(
                model.products[*item as usize],
                Reason::Popular,
                1e-9 / (rank + 1) as f64,
            )?;
        }
    }
    Ok(())
}

fn product_name(conn: &Connection, product_id: i64) -> rusqlite::Result<String> {
    Ok(conn
        .prepare_cached("SELECT name FROM products WHERE product_id = ?1")?
        .query_row([product_id], |row| row.get(0))
        .optional()?
        .unwrap_or_else(|| format!("product {product_id}")))
}

/// The sentence for a notice code (screens that translate use the code).
fn notice_text(code: &str) -> String {
    match code {
        "anonymous" => "Popular picks at this store",
        "unknown_member" => "We don't know this card yet: here is what's popular at this store",
        "personalization_off" => {
            "Personal picks are off for your account: here is what's popular at this store"
        }
        "no_model" => {
            "Popular picks at this store: personal picks come with this store's first model"
        }
        _ => "Welcome! Once you shop with us, picks will be chosen for you",
    }
    .to_owned()
}

/// Both lists for `request`.
pub fn recommend(
    conn: &Connection,
    served: &Served,
    request: &Request,
    policy: &Policy,
) -> rusqlite::Result<Lists> {
    let model = &served.model;
    let now_day = i32::try_from(request.now.day().days()).unwrap_or(model.as_of_day);
    let (mut buy_again, mut discover) = (
        Filler::new(conn, policy, request),
        Filler::new(conn, policy, request),
    );

    let consents = match request.member_id {
        Some(member_id) => consent::load(conn, member_id)?,
        None => None,
    };
    let personalize = consents.is_some_and(|facts| consent::may_personalize(&facts));
    let trips = match request.member_id {
        Some(member_id) if personalize => member_trips(conn, served, member_id, request.now)?,
        _ => Vec::new(),
    };
    let notice_code = match (request.member_id, consents) {
        (None, _) => Some("anonymous"),
        (Some(_), None) => Some("unknown_member"),
        (Some(_), Some(_)) if !personalize => Some("personalization_off"),
        (Some(_), Some(_)) if trips.is_empty() => Some("no_history"),
        _ => None,
    };
    let notice = notice_code.map(notice_text);
    let personal = notice.is_none();
    let bought: IdSet<u32> = trips.iter().flat_map(|t| t.items.iter().copied()).collect();
    if personal {
        let stats = member_stats(&trips, model.decay);
        let scored: Vec<Scored> = model.score_with(&trips, &stats, request.store_id, now_day);
        for candidate in scored {
            if buy_again.full() && discover.full() {
                break;
            }
            let product_id = model.products[candidate.item as usize];
            if candidate.repeat {
                if buy_again.full() {
                    continue;
                }
                let stat = stats.get(&candidate.item).copied().unwrap_or_default();
                let reason = if stat.trips >= 3 && stat.last_day > stat.first_day {
                    let every =
                        f64::from(stat.last_day - stat.first_day) / f64::from(stat.trips - 1);
                    Reason::Cycle {
                        every_days: every.round().max(1.0) as u32,
                    }
                } else {
                    Reason::Bought { times: stat.trips }
                };
                buy_again.offer(product_id, reason, candidate.probability)?;
            } else {
                if discover.full() {
                    continue;
                }
                // The member's item most specifically linked to this one: the highest
                // co-purchase similarity among items they bought more than once.
                let because = bought
                    .iter()
                    .filter(|own| stats.get(own).is_some_and(|s| s.trips >= 2))
                    .filter_map(|own| {
                        model
                            .neighbors
                            .of(*own)
                            .find(|(n, _)| *n == candidate.item)
                            .map(|(_, sim)| (*own, f64::from(sim)))
                    })
                    .max_by(|a, b| a.1.total_cmp(&b.1).then(b.0.cmp(&a.0)));
                let reason = match because {
                    Some((own, _)) => {
                        let own_id = model.products[own as usize];
                        Reason::BoughtWith {
                            product_id: own_id,
                            name: product_name(conn, own_id)?,
                        }
                    }
                    None => Reason::Popular,
                };
                discover.offer(product_id, reason, candidate.probability)?;
            }
        }
    }
    // Fallbacks: a personal Discover is topped up with bestsellers the member has not bought;
    // a non-personal answer is bestsellers only, in Discover.
    fill_popular(&mut discover, model, request.store_id, &bought)?;
    Ok(Lists {
        buy_again: buy_again.list,
        discover: discover.list,
        personal,
        notice,
        notice_code,
    })
}

/// "Often bought together" with `product_id`, in stock at the store.
pub fn bought_together(
    conn: &Connection,
    served: &Served,
    product_id: i64,
    request: &Request,
    policy: &Policy,
) -> rusqlite::Result<Vec<Pick>> {
    let mut filler = Filler::new(conn, policy, request);
    filler.taken.insert(product_id);
    if let Some(item) = served.index.get(&product_id) {
        let name = product_name(conn, product_id)?;
        for (neighbor, similarity) in served.model.neighbors.of(*item) {
            let reason = Reason::BoughtWith {
                product_id,
                name: name.clone(),
            };
            filler.offer(
                served.model.products[neighbor as usize],
                reason,
                f64::from(similarity),
            )?;
        }
    }
    if filler.list.is_empty() {
        fill_popular(
            &mut filler,
            &served.model,
            request.store_id,
            &IdSet::default(),
        )?;
    }
    Ok(filler.list)
}

/// One household's list for a batch export or an evaluation: the serving path
/// with [`Policy::batch`], at the member's usual store before `now`, the two
/// lists merged by probability for [`List::Blended`](super::model::List::Blended).
pub fn batch_list(
    conn: &Connection,
    served: &Served,
    member_id: i64,
    now: Timestamp,
    k: usize,
    list: super::model::List,
) -> rusqlite::Result<Vec<Pick>> {
    let store_id = usual_store(conn, member_id, now)?.unwrap_or_default();
    let request = Request {
        member_id: Some(member_id),
        store_id,
        now,
        k,
        public_screen: false,
        shown: Vec::new(),
    };
    let lists = recommend(conn, served, &request, &Policy::batch())?;
    Ok(match list {
        super::model::List::BuyAgain => lists.buy_again,
        super::model::List::Discover => lists.discover,
        super::model::List::Blended => {
            let mut all: Vec<Pick> = lists.buy_again.into_iter().chain(lists.discover).collect();
            all.sort_by(|a, b| {
                b.score
                    .total_cmp(&a.score)
                    .then(a.product_id.cmp(&b.product_id))
            });
            all.truncate(k);
            all
        }
    })
}

/// How many of the replica's newest baskets (by id) before `now`
/// [`Bestsellers`] are counted over: bounded, so a large replica costs the
/// same as a small one.
const BESTSELLER_BASKETS: i64 = 20_000;

/// What sells, read from the replica's newest baskets: what serving ranks
/// by while the replica holds no model (a store HQ has not sent one yet).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Bestsellers {
    /// At the store: (product, share of its counted baskets holding it), most first.
    pub here: Vec<(i64, f32)>,
    /// Over every store's counted baskets, most first.
    pub overall: Vec<i64>,
}

impl Bestsellers {
    /// None at all (a replica without baskets).
    pub const NONE: Bestsellers = Bestsellers {
        here: Vec::new(),
        overall: Vec::new(),
    };

    /// Counts the newest baskets before `now` (store-local `YYYY-MM-DD
    /// HH:MM:SS`) at `store_id`, and at every store.
    pub fn load(conn: &Connection, store_id: i64, now: Timestamp) -> rusqlite::Result<Self> {
        let counted = |store: Option<i64>, limit: usize| -> rusqlite::Result<Vec<(i64, f32)>> {
            let mut stmt = conn.prepare_cached(
                "WITH recent AS (
                     SELECT basket_id FROM baskets
                     WHERE (?1 IS NULL OR store_id = ?1) AND purchased_at < ?2
                     ORDER BY basket_id DESC LIMIT ?3)
                 SELECT l.product_id, count(DISTINCT l.basket_id) AS n,
                        (SELECT count(*) FROM recent)
                 FROM recent JOIN purchase_lines AS l USING (basket_id)
                 GROUP BY l.product_id ORDER BY n DESC, l.product_id LIMIT ?4",
            )?;
            let rows = stmt.query_map(
                params![
                    store,
                    now,
                    BESTSELLER_BASKETS,
                    i64::try_from(limit).unwrap_or(i64::MAX)
                ],
                |row| {
                    let (n, baskets): (i64, i64) = (row.get(1)?, row.get(2)?);
                    Ok((row.get(0)?, n as f32 / baskets.max(1) as f32))
                },
            )?;
            rows.collect()
        };
        Ok(Bestsellers {
            here: counted(Some(store_id), 1_000)?,
            overall: counted(None, FALLBACK_DEPTH)?
                .into_iter()
                .map(|(product_id, _)| product_id)
                .collect(),
        })
    }
}

/// What picks are ranked with: a model, or (no model in the replica yet)
/// the store's bestsellers, which make nothing personal.
#[derive(Debug, Clone, Copy)]
pub enum Ranking<'a> {
    Model(&'a Served),
    Bestsellers(&'a Bestsellers),
}

impl<'a> From<&'a Served> for Ranking<'a> {
    fn from(served: &'a Served) -> Self {
        Ranking::Model(served)
    }
}

impl<'a> From<&'a Bestsellers> for Ranking<'a> {
    fn from(bestsellers: &'a Bestsellers) -> Self {
        Ranking::Bestsellers(bestsellers)
    }
}

impl Ranking<'_> {
    /// Both lists for `request`: [`recommend`] with a model; without one,
    /// the store's bestsellers in Discover, not personal (`no_model` for a
    /// member who would otherwise get personal picks).
    pub fn lists(
        self,
        conn: &Connection,
        request: &Request,
        policy: &Policy,
    ) -> rusqlite::Result<Lists> {
        let bestsellers = match self {
            Ranking::Model(served) => return recommend(conn, served, request, policy),
            Ranking::Bestsellers(bestsellers) => bestsellers,
        };
        let consent: Option<(bool, bool)> = match request.member_id {
            Some(member_id) => conn
                .prepare_cached("SELECT consent_personalization, erased_at IS NOT NULL FROM members WHERE member_id = ?1")?
                .query_row([member_id], |row| Ok((row.get(0)?, row.get(1)?)))
                .optional()?,
            None => None,
        };
        let notice_code = match (request.member_id, consent) {
            (None, _) => "anonymous",
            (Some(_), None) => "unknown_member",
            (Some(_), Some((true, false))) => "no_model",
            (Some(_), Some(_)) => "personalization_off",
        };
        let mut discover = Filler::new(conn, policy, request);
        for (product_id, share) in &bestsellers.here {
            if discover.full() {
                break;
            }
            discover.offer(*product_id, Reason::PopularHere, 1e-6 * f64::from(*share))?;
        }
        for (rank, product_id) in bestsellers.overall.iter().enumerate() {
            if discover.full() {
                break;
            }
            discover.offer(*product_id, Reason::Popular, 1e-9 / (rank + 1) as f64)?;
        }
        Ok(Lists {
            buy_again: Vec::new(),
            discover: discover.list,
            personal: false,
            notice: Some(notice_text(notice_code)),
            notice_code: Some(notice_code),
        })
    }

    /// "Often bought together" with `product_id`: [`bought_together`] with a
    /// model; none without one (co-purchases are the model's).
    pub fn bought_together(
        self,
        conn: &Connection,
        product_id: i64,
        request: &Request,
        policy: &Policy,
    ) -> rusqlite::Result<Vec<Pick>> {
        match self {
            Ranking::Model(served) => bought_together(conn, served, product_id, request, policy),
            Ranking::Bestsellers(_) => Ok(Vec::new()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::lit::ts;

    /// Store 1 sells products 10 (in two baskets) and 11 (in one); store 2
    /// sells 12; a basket after `now` is not counted.
    fn replica(dir: &std::path::Path) -> Connection {
        let conn = crate::replica::open_writer(&dir.join("r.db")).expect("replica");
        conn.execute_batch(
            "INSERT INTO stores (store_id, name) VALUES (1, 'Here'), (2, 'There');
             INSERT INTO products (product_id, name, department) VALUES
                 (10, 'Milk', 'DAIRY'), (11, 'Bread', 'BAKERY'), (12, 'Tea', 'GROCERY'), (13, 'Jam', 'GROCERY');
             INSERT INTO store_products (store_id, product_id, price_cents, stock_qty, updated_at) VALUES
                 (1, 10, 100, 5, '2026-01-01'), (1, 11, 200, 5, '2026-01-01'),
                 (1, 12, 300, 5, '2026-01-01'), (1, 13, 400, 5, '2026-01-01');
             INSERT INTO members (member_id, consent_personalization, updated_at) VALUES
                 (7, 1, '2026-01-01'), (8, 0, '2026-01-01');
             INSERT INTO baskets (basket_id, member_id, store_id, purchased_at) VALUES
                 (1, 7, 1, '2026-03-01 10:00:00'), (2, NULL, 1, '2026-03-02 10:00:00'),
                 (3, NULL, 2, '2026-03-02 11:00:00'), (4, NULL, 1, '2026-03-09 10:00:00');
             INSERT INTO purchase_lines (basket_id, line_no, product_id, quantity, sales_cents) VALUES
                 (1, 1, 10, 1, 100), (1, 2, 11, 1, 200), (2, 1, 10, 1, 100),
                 (3, 1, 12, 1, 300), (4, 1, 13, 1, 400);",
        )
        .expect("rows");
        conn
    }

    fn request(member_id: Option<i64>) -> Request {
        Request {
            member_id,
            store_id: 1,
            now: ts("2026-03-05 12:00:00"),
            k: 4,
            public_screen: true,
            shown: Vec::new(),
        }
    }

    #[test]
    fn without_a_model_the_stores_bestsellers_are_served_and_nothing_is_personal() {
        let dir = tempfile::tempdir().expect("tempdir");
        let conn = replica(dir.path());
        let bestsellers = Bestsellers::load(&conn, 1, ts("2026-03-05 12:00:00")).expect("load");
        assert_eq!(bestsellers.here, vec![(10, 1.0), (11, 0.5)]);
        assert_eq!(
            bestsellers.overall,
            vec![10, 11, 12],
            "not basket 4, bought later"
        );
        let ranking = Ranking::from(&bestsellers);
        let policy = Policy::default();
        let lists = ranking
            .lists(&conn, &request(Some(7)), &policy)
            .expect("lists");
        let picks: Vec<(i64, Reason)> = lists
            .discover
            .iter()
            .map(|p| (p.product_id, p.reason.clone()))
            .collect();
        assert_eq!(
            picks,
            vec![
                (10, Reason::PopularHere),
                (11, Reason::PopularHere),
                (12, Reason::Popular)
            ]
        );
        assert!(lists.buy_again.is_empty() && !lists.personal);
        assert_eq!(lists.notice_code, Some("no_model"));
        let code = |member| {
            ranking
                .lists(&conn, &request(member), &policy)
                .expect("lists")
                .notice_code
        };
        assert_eq!(code(None), Some("anonymous"));
        assert_eq!(code(Some(8)), Some("personalization_off"));
        assert_eq!(code(Some(99)), Some("unknown_member"));
        let together = ranking
            .bought_together(&conn, 10, &request(None), &policy)
            .expect("together");
        assert!(together.is_empty(), "co-purchases need a model");
        let nothing = Ranking::Bestsellers(&Bestsellers::NONE)
            .lists(&conn, &request(None), &policy)
            .expect("lists");
        assert!(nothing.discover.is_empty());
    }
}
