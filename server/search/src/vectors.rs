//! One embedding space in memory: every vector in a contiguous matrix for an exact scan,
//! and an HNSW graph (`hnsw_rs`) once the space is large enough that the scan costs more
//! than the graph walk.
//!
//! Vectors are keyed by the index's document slot (a dense number handed out in id order,
//! never reused while the process runs), so the graph's data ids are slots. HNSW cannot
//! delete: removed slots stay in the graph and are filtered out of results; when a quarter
//! of the graph is dead it is rebuilt. Building runs on its own thread from a snapshot;
//! until it finishes, searches scan exactly, and vectors added meanwhile are inserted into
//! the new graph before it is swapped in.

use std::collections::HashMap;

use hnsw_rs::anndists::dist::distances::Distance;
use hnsw_rs::hnsw::Hnsw;
use reelforge_core::vector::dot;

/// When to build a graph and how.
#[derive(Debug, Clone, Copy)]
pub struct AnnConfig {
    /// Vectors in a space before a graph is built (0: never).
    pub threshold: usize,
    /// Links per node (HNSW's M).
    pub links: usize,
    pub ef_construction: usize,
    /// Candidates explored per search, at least (raised to twice the results asked for).
    pub ef_search: usize,
}

impl Default for AnnConfig {
    fn default() -> Self {
        AnnConfig {
            // Measured with `bench search` on this 2-core machine (384-d, top-50): the
            // exact scan costs ~1.0-1.4 ms at 10k and ~10.5 ms at 100k (linear); a graph
            // search ~2.4-4.4 ms at either size. They cross at about 30k.
            threshold: 30_000,
            links: 16,
            ef_construction: 100,
            ef_search: 96,
        }
    }
}

/// 1 - dot product of unit vectors, with the 8-lane dot product (hnsw_rs's own `DistDot`
/// sums sequentially and asserts when rounding puts the dot product a hair above 1).
#[derive(Clone, Copy, Default)]
pub struct UnitDot;

impl Distance<f32> for UnitDot {
    fn eval(&self, a: &[f32], b: &[f32]) -> f32 {
        (1.0 - dot(a, b)).max(0.0)
    }
}

pub struct Graph {
    hnsw: Hnsw<'static, f32, UnitDot>,
    /// Points whose slot has been removed since they were inserted.
    dead: usize,
}

#[derive(Default)]
pub struct VectorSpace {
    pub dims: usize,
    /// Row i of `matrix` holds the vector of slot `row_slot[i]`.
    row_slot: Vec<u32>,
    slot_row: HashMap<u32, usize>,
    matrix: Vec<f32>,
    graph: Option<Graph>,
    /// A build thread is running.
    pub building: bool,
}

/// What a build starts from: the rows at one moment.
pub struct Snapshot {
    rows: Vec<(u32, Vec<f32>)>,
    config: AnnConfig,
}

impl VectorSpace {
    pub fn len(&self) -> usize {
        self.row_slot.len()
    }

    pub fn is_empty(&self) -> bool {
        self.row_slot.is_empty()
    }

    pub fn has_graph(&self) -> bool {
        self.graph.is_some()
    }

    pub fn vector(&self, slot: u32) -> Option<&[f32]> {
        let row = *self.slot_row.get(&slot)?;
        Some(&self.matrix[row * self.dims..(row + 1) * self.dims])
    }

    /// Checks that `vector` fits this space.
    pub fn check(&self, vector: &[f32]) -> Result<(), String> {
        if self.dims != 0 && vector.len() != self.dims {
            return Err(format!(
                "a {}-dimensional vector cannot join an index of {} dimensions",
                vector.len(),
                self.dims
            ));
        }
        Ok(())
    }

    pub fn push(&mut self, slot: u32, vector: &[f32]) -> Result<(), String> {
        self.check(vector)?;
        if self.dims == 0 {
            self.dims = vector.len();
        }
        self.slot_row.insert(slot, self.row_slot.len());
        self.row_slot.push(slot);
        self.matrix.extend_from_slice(vector);
        if let Some(g) = &mut self.graph {
            g.hnsw.insert_slice((vector, slot as usize));
        }
        Ok(())
    }

    pub fn remove(&mut self, slot: u32) {
        let Some(row) = self.slot_row.remove(&slot) else {
            return;
        };
        let last = self.row_slot.len() - 1;
        let d = self.dims;
        if row != last {
            let moved = self.row_slot[last];
            self.row_slot[row] = moved;
            self.matrix.copy_within(last * d..(last + 1) * d, row * d);
            self.slot_row.insert(moved, row);
        }
        self.row_slot.pop();
        self.matrix.truncate(last * d);
        if let Some(g) = &mut self.graph {
            g.dead += 1;
        }
    }

    /// A snapshot to build a graph from, when the space needs a (new) one and none is
    /// being built; marks the space as building.
    pub fn wants_build(&mut self, config: AnnConfig) -> Option<Snapshot> {
        if self.building || config.threshold == 0 || self.len() < config.threshold {
            return None;
        }
        let stale = self
            .graph
            .as_ref()
            .is_some_and(|g| g.dead * 4 > g.hnsw.get_nb_point());
        if self.graph.is_some() && !stale {
            return None;
        }
        self.building = true;
        let rows = self
            .row_slot
            .iter()
            .enumerate()
            .map(|(row, &slot)| {
                (
                    slot,
                    self.matrix[row * self.dims..(row + 1) * self.dims].to_vec(),
                )
            })
            .collect();
        Some(Snapshot { rows, config })
    }

    /// Swaps in a graph built from `snapshot`'s rows, after inserting the rows added
    /// since (slots only grow, so they are the slots above the snapshot's highest).
    pub fn install(&mut self, built: Graph, newest_in_snapshot: Option<u32>) {
        let mut built = built;
        for (row, &slot) in self.row_slot.iter().enumerate() {
            if newest_in_snapshot.is_none_or(|n| slot > n) {
                let v = &self.matrix[row * self.dims..(row + 1) * self.dims];
                built.hnsw.insert_slice((v, slot as usize));
            }
        }
        built.dead = built.hnsw.get_nb_point().saturating_sub(self.len());
        self.graph = Some(built);
        self.building = false;
    }

    /// The `limit` nearest live rows to `query` among slots `keep` accepts, by cosine.
    /// Uses the graph when there is one and it finds enough; scans exactly otherwise
    /// (a very selective filter leaves the graph walk short of results).
    pub fn nearest(
        &self,
        query: &[f32],
        keep: &dyn Fn(u32) -> bool,
        limit: usize,
        ef_search: usize,
    ) -> Vec<(u32, f32)> {
        if self.dims == 0 || query.len() != self.dims || limit == 0 {
            return Vec::new();
        }
        if let Some(g) = &self.graph {
            let filter = |id: &usize| {
                let slot = *id as u32;
                self.slot_row.contains_key(&slot) && keep(slot)
            };
            let ef = ef_search.max(limit * 2);
            let found = g.hnsw.search_filter(query, limit, ef, Some(&filter));
            if found.len() >= limit.min(self.len()) {
                let mut out: Vec<(u32, f32)> = found
                    .into_iter()
                    .filter_map(|n| {
                        let slot = n.d_id as u32;
                        Some((slot, dot(query, self.vector(slot)?)))
                    })
                    .collect();
                out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
                return out;
            }
        }
        self.exact(query, keep, limit)
    }

    /// Exact top-`limit` by cosine (vectors are unit length, so a dot product).
    pub fn exact(
        &self,
        query: &[f32],
        keep: &dyn Fn(u32) -> bool,
        limit: usize,
    ) -> Vec<(u32, f32)> {
        if self.dims == 0 || query.len() != self.dims || limit == 0 {
            return Vec::new();
        }
        let mut best: Vec<(u32, f32)> = Vec::with_capacity(limit + 1);
        for (row, &slot) in self.row_slot.iter().enumerate() {
            let v = &self.matrix[row * self.dims..(row + 1) * self.dims];
            let score = dot(query, v);
            if best.len() == limit && best.last().is_some_and(|l| score <= l.1) {
                continue;
            }
            if !keep(slot) {
                continue;
            }
            let at = best.partition_point(|b| b.1 >= score);
            best.insert(at, (slot, score));
            best.truncate(limit);
        }
        best
    }
}

impl Snapshot {
    pub fn newest(&self) -> Option<u32> {
        self.rows.iter().map(|r| r.0).max()
    }

    /// Builds the graph (rayon-parallel inserts); runs without any lock held.
    pub fn build(&self) -> Graph {
        let config = self.config;
        let hnsw = Hnsw::new(
            config.links,
            self.rows.len().max(1),
            16,
            config.ef_construction,
            UnitDot,
        );
        let data: Vec<(&[f32], usize)> = self
            .rows
            .iter()
            .map(|(slot, v)| (v.as_slice(), *slot as usize))
            .collect();
        hnsw.parallel_insert_slice(&data);
        Graph { hnsw, dead: 0 }
    }
}
