//! proptest strategies for foreign types used in messages.

use proptest::prelude::*;
use uuid::Uuid;

pub fn uuid() -> impl Strategy<Value = Uuid> {
    any::<u128>().prop_map(Uuid::from_u128)
}

/// Finite load averages: NaN is never equal to itself, so it cannot take
/// part in a round-trip equality check (and no OS reports one).
pub fn load() -> impl Strategy<Value = [f32; 3]> {
    [0.0f32..1000.0, 0.0f32..1000.0, 0.0f32..1000.0]
}

pub fn uuids() -> impl Strategy<Value = Vec<Uuid>> {
    proptest::collection::vec(uuid(), 0..50)
}
