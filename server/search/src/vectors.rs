//! One embedding space in memory: every vector in a contiguous matrix for an exact scan,
//! and an HNSW graph (`hnsw_rs`) once the space is large enough that the scan costs more
//! than the graph walk.
//!
//! Vectors are keyed by document id (ids only grow), so the graph's data ids are document
//! ids and a saved graph stays meaningful across restarts. HNSW cannot delete: removed
//! documents stay in the graph and are filtered out of results; when a quarter of the
//! graph is dead it is rebuilt. Building runs on its own thread from a snapshot; until it
//! finishes, searches scan exactly, and vectors added meanwhile are inserted into the new
//! graph before it is swapped in.
//!
//! A built graph is saved (`save`: hnsw_rs's dump, written beside and renamed into place)
//! so a restart loads it (`load`) instead of building again; `adopt` then checks it
//! against the stored vectors: points whose document is gone count as dead, stored
//! vectors it lacks are inserted. A graph is saved again at shutdown when points were
//! inserted since; one that lacks half of the space is rebuilt in the background instead.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use hnsw_rs::anndists::dist::distances::Distance;
use hnsw_rs::api::AnnT;
use hnsw_rs::hnsw::Hnsw;
use hnsw_rs::hnswio::HnswIo;
use reelforge_core::error::{Error, Result};
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
    /// Points whose document has been removed since they were inserted.
    dead: usize,
    /// Points inserted since the graph was saved (`None`: it is not saved).
    unsaved: Option<usize>,
}

impl Graph {
    pub fn points(&self) -> usize {
        self.hnsw.get_nb_point()
    }

    /// Marks it saved as it is now.
    pub fn saved(&mut self) {
        self.unsaved = Some(0);
    }
}

#[derive(Default)]
pub struct VectorSpace {
    pub dims: usize,
    /// Row i of `matrix` holds the vector of document `row_id[i]`.
    row_id: Vec<u64>,
    id_row: HashMap<u64, usize>,
    matrix: Vec<f32>,
    graph: Option<Graph>,
    /// A build thread is running.
    pub building: bool,
}

/// What a build starts from: the rows at one moment.
pub struct Snapshot {
    rows: Vec<(u64, Vec<f32>)>,
    config: AnnConfig,
}

impl VectorSpace {
    pub fn len(&self) -> usize {
        self.row_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.row_id.is_empty()
    }

    pub fn has_graph(&self) -> bool {
        self.graph.is_some()
    }

    pub fn vector(&self, id: u64) -> Option<&[f32]> {
        let row = *self.id_row.get(&id)?;
        Some(&self.matrix[row * self.dims..(row + 1) * self.dims])
    }

    /// Checks that `vector` fits this space.
    pub fn check(&self, vector: &[f32]) -> std::result::Result<(), String> {
        if self.dims != 0 && vector.len() != self.dims {
            return Err(format!(
                "a {}-dimensional vector cannot join an index of {} dimensions",
                vector.len(),
                self.dims
            ));
        }
        Ok(())
    }

    pub fn push(&mut self, id: u64, vector: &[f32]) -> std::result::Result<(), String> {
        self.check(vector)?;
        if self.dims == 0 {
            self.dims = vector.len();
        }
        self.id_row.insert(id, self.row_id.len());
        self.row_id.push(id);
        self.matrix.extend_from_slice(vector);
        if let Some(g) = &mut self.graph {
            g.hnsw.insert_slice((vector, id as usize));
            if let Some(n) = &mut g.unsaved {
                *n += 1;
            }
        }
        Ok(())
    }

    pub fn remove(&mut self, id: u64) {
        let Some(row) = self.id_row.remove(&id) else {
            return;
        };
        let last = self.row_id.len() - 1;
        let d = self.dims;
        if row != last {
            let moved = self.row_id[last];
            self.row_id[row] = moved;
            self.matrix.copy_within(last * d..(last + 1) * d, row * d);
            self.id_row.insert(moved, row);
        }
        self.row_id.pop();
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
        let stale = self.graph.as_ref().is_some_and(|g| g.dead * 4 > g.points());
        if self.graph.is_some() && !stale {
            return None;
        }
        self.building = true;
        let rows = self
            .row_id
            .iter()
            .enumerate()
            .map(|(row, &id)| {
                (
                    id,
                    self.matrix[row * self.dims..(row + 1) * self.dims].to_vec(),
                )
            })
            .collect();
        Some(Snapshot { rows, config })
    }

    /// Swaps in a graph built from `snapshot`'s rows, after inserting the rows added
    /// since (ids only grow, so they are the ids above the snapshot's highest).
    pub fn install(&mut self, built: Graph, newest_in_snapshot: Option<u64>) {
        let mut built = built;
        for (row, &id) in self.row_id.iter().enumerate() {
            if newest_in_snapshot.is_none_or(|n| id > n) {
                let v = &self.matrix[row * self.dims..(row + 1) * self.dims];
                built.hnsw.insert_slice((v, id as usize));
                if let Some(n) = &mut built.unsaved {
                    *n += 1;
                }
            }
        }
        built.dead = built.points().saturating_sub(self.len());
        self.graph = Some(built);
        self.building = false;
    }

    /// Takes a saved graph loaded at open, checked against the stored vectors: its points
    /// whose document is gone count as dead, and the vectors it lacks are inserted. A graph
    /// of other dimensions, or one that lacks half of the space, is refused (the space
    /// then builds afresh). Returns how many vectors were inserted.
    pub fn adopt(&mut self, loaded: Graph) -> std::result::Result<usize, String> {
        let mut graph = loaded;
        let data_dims = graph.hnsw.get_point_indexation().get_data_dimension();
        if self.dims == 0 || data_dims != self.dims {
            return Err(format!(
                "the saved graph has {data_dims}-dimensional points; the space has {}",
                self.dims
            ));
        }
        let mut in_graph: HashSet<u64> = HashSet::with_capacity(graph.points());
        for point in graph.hnsw.get_point_indexation() {
            in_graph.insert(point.get_origin_id() as u64);
        }
        let missing: Vec<usize> = (0..self.len())
            .filter(|&row| !in_graph.contains(&self.row_id[row]))
            .collect();
        if missing.len() * 2 > self.len() {
            return Err(format!(
                "the saved graph lacks {} of {} vectors",
                missing.len(),
                self.len()
            ));
        }
        let live = in_graph
            .iter()
            .filter(|id| self.id_row.contains_key(id))
            .count();
        let data: Vec<(&[f32], usize)> = missing
            .iter()
            .map(|&row| {
                (
                    &self.matrix[row * self.dims..(row + 1) * self.dims],
                    self.row_id[row] as usize,
                )
            })
            .collect();
        graph.hnsw.parallel_insert_slice(&data);
        graph.dead = in_graph.len() - live;
        graph.unsaved = Some(missing.len());
        self.graph = Some(graph);
        Ok(missing.len())
    }

    /// The graph, when it has points that were inserted since it was saved.
    pub fn unsaved_graph(&mut self) -> Option<&mut Graph> {
        self.graph
            .as_mut()
            .filter(|g| g.unsaved.is_some_and(|n| n > 0))
    }

    /// The `limit` nearest live rows to `query` among documents `keep` accepts, by cosine.
    /// Uses the graph when there is one and it finds enough; scans exactly otherwise
    /// (a very selective filter leaves the graph walk short of results).
    pub fn nearest(
        &self,
        query: &[f32],
        keep: &dyn Fn(u64) -> bool,
        limit: usize,
        ef_search: usize,
    ) -> Vec<(u64, f32)> {
        if self.dims == 0 || query.len() != self.dims || limit == 0 {
            return Vec::new();
        }
        if let Some(g) = &self.graph {
            let filter = |id: &usize| {
                let id = *id as u64;
                self.id_row.contains_key(&id) && keep(id)
            };
            let ef = ef_search.max(limit * 2);
            let found = g.hnsw.search_filter(query, limit, ef, Some(&filter));
            if found.len() >= limit.min(self.len()) {
                let mut out: Vec<(u64, f32)> = found
                    .into_iter()
                    .filter_map(|n| {
                        let id = n.d_id as u64;
                        Some((id, dot(query, self.vector(id)?)))
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
        keep: &dyn Fn(u64) -> bool,
        limit: usize,
    ) -> Vec<(u64, f32)> {
        if self.dims == 0 || query.len() != self.dims || limit == 0 {
            return Vec::new();
        }
        let mut best: Vec<(u64, f32)> = Vec::with_capacity(limit + 1);
        for (row, &id) in self.row_id.iter().enumerate() {
            let v = &self.matrix[row * self.dims..(row + 1) * self.dims];
            let score = dot(query, v);
            if best.len() == limit && best.last().is_some_and(|l| score <= l.1) {
                continue;
            }
            if !keep(id) {
                continue;
            }
            let at = best.partition_point(|b| b.1 >= score);
            best.insert(at, (id, score));
            best.truncate(limit);
        }
        best
    }
}

impl Snapshot {
    pub fn newest(&self) -> Option<u64> {
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
            .map(|(id, v)| (v.as_slice(), *id as usize))
            .collect();
        hnsw.parallel_insert_slice(&data);
        Graph {
            hnsw,
            dead: 0,
            unsaved: None,
        }
    }
}

/// The files hnsw_rs writes for a graph named `graph` in a directory.
const BASENAME: &str = "graph";

fn io_error(what: &str, path: &Path, e: impl std::fmt::Display) -> Error {
    Error::internal(format!("{what} {}: {e}", path.display()))
}

/// Saves `graph` as `dir/name`: dumped into `dir/name.new`, synced, then renamed into
/// place (the previous save kept as `name.old` until then), so a crash leaves a whole
/// save or the previous one, never a torn one.
pub fn save(graph: &Graph, dir: &Path, name: &str) -> Result<()> {
    let fresh = dir.join(format!("{name}.new"));
    let current = dir.join(name);
    let old = dir.join(format!("{name}.old"));
    let _ = std::fs::remove_dir_all(&fresh);
    std::fs::create_dir_all(&fresh).map_err(|e| io_error("create", &fresh, e))?;
    graph
        .hnsw
        .file_dump(&fresh, BASENAME)
        .map_err(|e| io_error("save the HNSW graph in", &fresh, e))?;
    for suffix in ["hnsw.graph", "hnsw.data"] {
        let file = fresh.join(format!("{BASENAME}.{suffix}"));
        std::fs::File::open(&file)
            .and_then(|f| f.sync_all())
            .map_err(|e| io_error("sync", &file, e))?;
    }
    let _ = std::fs::remove_dir_all(&old);
    if current.exists() {
        std::fs::rename(&current, &old).map_err(|e| io_error("move aside", &current, e))?;
    }
    std::fs::rename(&fresh, &current).map_err(|e| io_error("move into place", &fresh, e))?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    let _ = std::fs::remove_dir_all(&old);
    Ok(())
}

fn save_path(dir: &Path, name: &str) -> Option<PathBuf> {
    let candidates: [PathBuf; 2] = [dir.join(name), dir.join(format!("{name}.old"))];
    candidates
        .into_iter()
        .find(|p| p.join(format!("{BASENAME}.hnsw.graph")).exists())
}

/// Loads the graph saved as `dir/name` (or the previous save, when a crash came between
/// the two renames). `None` when there is none or it cannot be read (logged): the space
/// then builds afresh.
pub fn load(dir: &Path, name: &str) -> Option<Graph> {
    let path = save_path(dir, name)?;
    // hnsw_rs ties a loaded graph's lifetime to its loader and asserts (panics) on some
    // malformed files; the loader holds only paths here, so it is leaked (once per open),
    // and a panic is caught and reported as an unreadable save.
    let loaded = std::panic::catch_unwind(|| {
        let io: &'static mut HnswIo = Box::leak(Box::new(HnswIo::new(&path, BASENAME)));
        io.load_hnsw::<f32, UnitDot>()
    });
    match loaded {
        Ok(Ok(hnsw)) => Some(Graph {
            hnsw,
            dead: 0,
            unsaved: Some(0),
        }),
        Ok(Err(e)) => {
            tracing::warn!(path = %path.display(), "the saved HNSW graph cannot be read ({e}); building it again");
            None
        }
        Err(_) => {
            tracing::warn!(path = %path.display(), "the saved HNSW graph is malformed; building it again");
            None
        }
    }
}
