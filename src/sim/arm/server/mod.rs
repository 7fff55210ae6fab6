//! HTTP surface of the ARM simulator: the shared [`Sim`] and its router.
//!
//! - [`routes`]: the router (admin API, Entra ID endpoints, ARM), request ids and counters, and
//!   the generic ARM request flow: authenticate, throttle, authorize, check api-version,
//!   inject faults, then dispatch under the state lock.
//! - [`paths`]: what an ARM path points at ([`paths::Target`]) and the query helpers.
//! - [`handlers`]: the generic ARM handlers — read, list (paged), create/update, delete, with
//!   their long-running-operation headers — plus resource groups and a gallery's share action.
//! - [`entra`]: the Entra ID token and OpenID configuration endpoints.

mod entra;
mod handlers;
mod paths;
mod routes;

use std::sync::{Mutex, MutexGuard, atomic::AtomicU64};

pub use routes::router;

use super::{
    faults::{Counters, Faults},
    identity::Signer,
    lro,
    store::{Persist, State},
    throttle::Buckets,
    world::{self, World},
};

pub struct Sim {
    pub world: World,
    pub endpoint: String,
    pub speed: f64,
    pub signer: Signer,
    state: Mutex<State>,
    pub faults: Mutex<Faults>,
    pub counters: Mutex<Counters>,
    pub throttle: Mutex<Buckets>,
    persist: Option<Persist>,
    save_seq: AtomicU64,
}

pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Sim {
    pub fn new(
        world: World,
        endpoint: String,
        speed: f64,
        signer: Signer,
        persist: Option<Persist>,
    ) -> anyhow::Result<Self> {
        let loaded = match &persist {
            Some(p) => p.load()?,
            None => None,
        };
        let fresh = loaded.is_none();
        let sim = Self {
            state: Mutex::new(loaded.unwrap_or_default()),
            throttle: Mutex::new(Buckets::new(world.throttling)),
            world,
            endpoint,
            speed,
            signer,
            faults: Mutex::default(),
            counters: Mutex::default(),
            persist,
            save_seq: AtomicU64::new(0),
        };
        if fresh {
            sim.reset();
        }
        Ok(sim)
    }

    /// The seeded world, default settings, no faults, no counters, the world's throttling
    /// limits with every bucket full.
    pub fn reset(&self) {
        let mut seeded = world::seed(&self.world, now_ms());
        seeded.settings.delete_block_ms = ((2000.0 / self.speed) as i64).max(200);
        seeded.settings.soft_delete_retention_ms =
            (crate::sim::arm::store::SOFT_DELETE_RETENTION_MS as f64 / self.speed) as i64;
        let mut state = self.state.lock().expect("state lock");
        *state = seeded;
        self.save(&state);
        drop(state);
        *self.faults.lock().expect("faults lock") = Faults::default();
        *self.counters.lock().expect("counters lock") = Counters::default();
        *self.throttle.lock().expect("throttle lock") = Buckets::new(self.world.throttling);
    }

    /// The state with every due operation completed.
    pub fn lock_state(&self) -> MutexGuard<'_, State> {
        let mut state = self.state.lock().expect("state lock");
        if lro::advance(&mut state, now_ms()) {
            self.save(&state);
        }
        state
    }

    /// Persists the state when `--state-dir` was given (called after each mutation).
    pub fn save(&self, state: &State) {
        if let Some(p) = &self.persist {
            let seq = self
                .save_seq
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
                + 1;
            match serde_json::to_vec(state) {
                Ok(bytes) => p.write(seq, &bytes),
                Err(e) => tracing::error!("sim arm: serialising state: {e}"),
            }
        }
    }

    fn home_tenant(&self, sub: &str) -> String {
        self.world
            .tenant_of(sub)
            .unwrap_or(&self.world.tenants[0].id)
            .to_string()
    }
}
