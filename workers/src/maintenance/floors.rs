//! The floor raiser: moves each lane's claim floor up to its lowest claimable row, so that
//! claims skip the entries of rows claimed since (bosun_queue::claim_floors says what a
//! floor is). Without it claims stay correct and start where the floors were last left; with
//! the vacuum horizon held back, that is where they walk from.
//!
//! Each lane is raised in a statement (and transaction) of its own: commits into a lane wait
//! for its raise to end, so a raise holds up no other lane's.

use bosun_queue::{
    claim_floors::{claim_floor_advance, claim_floor_lanes},
    Client,
};
use tracing::debug;

use super::service::Service;

/// The floor raiser service.
#[derive(Debug, Clone)]
pub struct FloorRaiser {
    client: Client,
}

impl FloorRaiser {
    /// A raiser on `client`'s database.
    pub fn new(client: Client) -> Self {
        FloorRaiser { client }
    }

    /// Raise every lane's floor; returns how many moved.
    ///
    /// # Errors
    /// [`bosun_queue::Error::Database`] if a call fails; lanes raised before stay raised.
    pub async fn run_once(&self) -> bosun_queue::Result<u64> {
        let db = self.client.db();
        let mut moved = 0;
        for lane in claim_floor_lanes(db).await? {
            if claim_floor_advance(db, &lane).await? == Some(true) {
                moved += 1;
            }
        }
        Ok(moved)
    }
}

impl Service for FloorRaiser {
    type Report = u64;

    fn name(&self) -> &'static str {
        "floor raiser"
    }

    async fn run_once(&self) -> bosun_queue::Result<u64> {
        FloorRaiser::run_once(self).await
    }

    fn report(&self, moved: &u64) {
        debug!(moved, "raised claim floors");
    }
}
