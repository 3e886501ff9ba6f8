//! Groups of accounts and laptops, and each group's policy layer (see
//! [`protocol::layers`]). Role and year groups come from the register;
//! `accounts:NAME` and `devices:NAME` groups are lists kept here. A
//! layer is saved only if it makes no tie with another of its rank.

use protocol::UnixMillis;
use protocol::layers::{GroupAup, GroupLayers, Layer, Overrides, Term};

use super::StoreError;

/// What the console keeps of groups and layers.
pub trait GroupStore {
    /// Every group's layer, by group name.
    ///
    /// # Errors
    /// A storage failure, or a stored layer that no longer reads.
    fn layers(&self) -> Result<Vec<Layer>, StoreError>;
    /// Raised at every change of a layer or a member list.
    ///
    /// # Errors
    /// A storage failure.
    fn layers_version(&self) -> Result<u64, StoreError>;
    /// Sets (or, with `None`, removes) a group's layer, with its audit
    /// line naming `who` (the actor and where from). Refused, naming the
    /// tie, if it would tie with another layer of its rank.
    ///
    /// # Errors
    /// [`StoreError::Refused`] for a tie; a storage failure.
    fn set_layer(
        &self,
        group: &str,
        overrides: Option<&Overrides>,
        who: (&str, &str),
        now: UnixMillis,
    ) -> Result<(), StoreError>;
    /// The accounts or laptops in an `accounts:` or `devices:` group.
    ///
    /// # Errors
    /// A storage failure.
    fn group_members(&self, group: &str) -> Result<Vec<String>, StoreError>;
    /// Replaces the members of an `accounts:` or `devices:` group, with
    /// its audit line; refused if the new members would make a tie.
    ///
    /// # Errors
    /// [`StoreError::Refused`] for a tie; a storage failure.
    fn set_group_members(
        &self,
        group: &str,
        members: &[String],
        who: (&str, &str),
        now: UnixMillis,
    ) -> Result<(), StoreError>;
    /// Year groups' own AUPs in force (the latest version of each that
    /// was not withdrawn), by group.
    ///
    /// # Errors
    /// A storage failure.
    fn group_aups(&self) -> Result<Vec<GroupAup>, StoreError>;
    /// Publishes a year group's own AUP as its next version (an empty
    /// text withdraws it: its pupils are shown the pupils' AUP again),
    /// with its audit line; laptops are sent it with the layers. Returns
    /// the version.
    ///
    /// # Errors
    /// [`StoreError::Refused`] for a group that is not a year group; a
    /// storage failure.
    fn publish_group_aup(
        &self,
        group: &str,
        markdown: &str,
        who: (&str, &str),
        now: UnixMillis,
    ) -> Result<u32, StoreError>;
    /// The school's terms, first first.
    ///
    /// # Errors
    /// A storage failure.
    fn terms(&self) -> Result<Vec<Term>, StoreError>;
    /// Replaces the school's terms, with its audit line; refused if two
    /// overlap. Laptops are sent them with the layers.
    ///
    /// # Errors
    /// [`StoreError::Refused`] for terms that overlap; a storage failure.
    fn set_terms(
        &self,
        terms: &[Term],
        who: (&str, &str),
        now: UnixMillis,
    ) -> Result<(), StoreError>;
    /// Every group there is, with how many accounts (or laptops) are in
    /// it: role and year groups from the register, `accounts:` and
    /// `devices:` lists. By name.
    ///
    /// # Errors
    /// A storage failure.
    fn known_groups(&self) -> Result<Vec<(String, u64)>, StoreError>;
    /// The groups of kind role, year and accounts an account is in.
    ///
    /// # Errors
    /// A storage failure.
    fn account_groups(&self, account: &str) -> Result<Vec<String>, StoreError>;
    /// The `devices:` groups a laptop is in.
    ///
    /// # Errors
    /// A storage failure.
    fn device_groups(&self, device: &str) -> Result<Vec<String>, StoreError>;
    /// Everything one laptop needs to apply the layers for anyone who
    /// logs in to it: every layer, every known account's groups, and the
    /// laptop's own groups.
    ///
    /// # Errors
    /// A storage failure.
    fn layers_for_device(&self, device: &str) -> Result<GroupLayers, StoreError>;
}
