//! How close the nearest stored passage is to a question, as a cosine similarity: the agent's test for "the
//! notes probably answer this", made before the model is asked anything.

use arrow_array::Float32Array;
use lancedb::Table;
use lancedb::query::{QueryBase, Select};

use crate::store::{StoreError, collect, column};

/// LanceDB's default metric is the squared Euclidean distance. The stored vectors and the query are
/// L2-normalised, so it converts exactly: |a - b|² = 2 - 2 cos(a, b).
fn cosine_from_squared_l2(distance: f32) -> f32 {
    1.0 - distance / 2.0
}

/// The cosine similarity of the passage nearest to `vector` among those meeting `filter`; `None` when there is
/// none.
pub async fn nearest(table: &Table, vector: &[f32], filter: Option<&str>) -> Result<Option<f32>, StoreError> {
    let mut query = table.query().nearest_to(vector)?.limit(1).select(Select::columns(&["_distance"]));
    if let Some(filter) = filter {
        query = query.only_if(filter);
    }
    for batch in collect(query).await? {
        let distances = column::<Float32Array>(&batch, "_distance")?;
        if !distances.is_empty() {
            return Ok(Some(cosine_from_squared_l2(distances.value(0))));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn squared_distances_of_unit_vectors_map_to_cosines() {
        assert_eq!(cosine_from_squared_l2(0.0), 1.0);
        assert_eq!(cosine_from_squared_l2(2.0), 0.0);
        assert_eq!(cosine_from_squared_l2(4.0), -1.0);
    }
}
