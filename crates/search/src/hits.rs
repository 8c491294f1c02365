//! The results of a search, read as they are sent: an index answers with where its hits are, and their stored
//! answers are read a batch at a time while the response streams, so a listing of the whole catalogue never
//! holds the catalogue in memory.

use std::ops::Range;

use crate::{Hit, Result};

/// The hits of one search, in order.
pub trait Hits: Send + Sync {
    fn len(&self) -> usize;

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The hits in `range` (clamped to the hits there are), in order, with their answers. May read from disk:
    /// call it on a blocking thread.
    fn read(&self, range: Range<usize>) -> Result<Vec<Hit>>;

    /// Every hit.
    fn read_all(&self) -> Result<Vec<Hit>> {
        self.read(0..self.len())
    }
}

/// Hits already in memory (an OpenSearch answer, or answers corrected from the database).
#[derive(Debug, Default)]
pub struct ReadyHits(pub Vec<Hit>);

impl Hits for ReadyHits {
    fn len(&self) -> usize {
        self.0.len()
    }

    fn read(&self, range: Range<usize>) -> Result<Vec<Hit>> {
        let end = range.end.min(self.0.len());
        Ok(self.0.get(range.start.min(end)..end).unwrap_or_default().to_vec())
    }
}

#[cfg(test)]
mod tests {
    use conductor_core::PackageId;

    use super::*;

    #[test]
    fn ranges_are_clamped_to_the_hits() {
        let owner = conductor_core::UserId::from_email("ada@example.test");
        let hit = |n: usize| Hit {
            id: PackageId::parse(&format!("{owner}:p{n}")).unwrap(),
            answer: format!("{{\"n\":{n}}}"),
        };
        let hits = ReadyHits((0..5).map(hit).collect());
        assert_eq!(hits.read(1..3).unwrap(), [hit(1), hit(2)]);
        assert_eq!(hits.read(4..100).unwrap(), [hit(4)]);
        assert!(hits.read(7..9).unwrap().is_empty());
        assert_eq!(hits.read_all().unwrap().len(), 5);
    }
}
