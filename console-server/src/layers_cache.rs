//! The policy layers as every laptop is sent them, read from the store
//! once per layers version (see [`crate::store::groups`]).

use std::sync::{Arc, Mutex};

use protocol::layers::GroupLayers;

use crate::store::{Store, StoreError};

/// The layers as every laptop is sent them (no laptop's own groups),
/// read from the store once per layers version rather than once per
/// laptop: a reconnect storm of a thousand laptops reads the register
/// once.
#[derive(Default)]
pub struct LayersCache(Mutex<Option<Arc<GroupLayers>>>);

impl LayersCache {
    /// The layers of the store's current version, with `device`'s own
    /// groups.
    pub fn for_device(&self, store: &dyn Store, device: &str) -> Result<GroupLayers, StoreError> {
        let current = store.layers_version()?;
        let cached = self
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .filter(|c| c.version == current);
        let base = match cached {
            Some(c) => c,
            None => {
                // "" is in no laptop group: the layers without any.
                let fresh = Arc::new(store.layers_for_device("")?);
                let mut slot = self.0.lock().unwrap_or_else(|p| p.into_inner());
                if slot.as_ref().is_none_or(|c| c.version <= fresh.version) {
                    *slot = Some(fresh.clone());
                }
                fresh
            }
        };
        let mut layers = (*base).clone();
        layers.device_groups = store.device_groups(device)?;
        Ok(layers)
    }
}

#[cfg(test)]
mod tests {
    use protocol::layers::Overrides;
    use protocol::{Policy, UnixMillis};

    use super::*;
    use crate::store::groups::GroupStore;
    use crate::store::images::FsImageStore;
    use crate::store::sql_store::SqlStore;

    #[test]
    fn each_laptop_gets_its_own_groups_and_a_change_is_read_afresh() {
        let dir = tempfile::tempdir().unwrap();
        let images = Arc::new(FsImageStore::open(&dir.path().join("images")).unwrap());
        let s = SqlStore::open(&dir.path().join("c.db"), images, Policy::baseline).unwrap();
        let (who, now) = (("it", "cli"), UnixMillis(1_800_000_000_000));
        s.set_group_members("devices:library", &["d1".into()], who, now)
            .unwrap();
        let cache = LayersCache::default();
        let d1 = cache.for_device(&s, "d1").unwrap();
        let d2 = cache.for_device(&s, "d2").unwrap();
        assert_eq!(d1.device_groups, vec!["devices:library".to_owned()]);
        assert!(d2.device_groups.is_empty());
        assert_eq!(d1.version, d2.version);
        assert_eq!(d1, s.layers_for_device("d1").unwrap());
        let layer = Overrides {
            min_severity: Some(4),
            ..Overrides::default()
        };
        s.set_layer("devices:library", Some(&layer), who, now)
            .unwrap();
        let after = cache.for_device(&s, "d1").unwrap();
        assert!(after.version > d1.version);
        assert_eq!(after, s.layers_for_device("d1").unwrap());
        assert_eq!(after.layers.len(), 1);
    }
}
