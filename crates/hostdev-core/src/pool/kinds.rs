//! What a pool needs from each kind of device, asked through the kind seam
//! ([`crate::kind::DeviceKind`]): which members exist and how many more each
//! can take, the next device's id, and how a device is made, removed,
//! checked and named to libvirt. Every kernel step is the kind's own core
//! operation (`Host`, `Vgpus`, `Vdpas`), so callouts, readiness waits and
//! error sentences are the same as for a device made by hand.
//!
//! Owns: picking the pool's kind. Must not: touch the state database or
//! choose between members (mod.rs does both), or hold a kind's logic (its
//! module's `seam.rs` does).

use crate::kind::DeviceKind;
pub(crate) use crate::kind::Member;
use crate::Interfaces;
use crate::{CoreError, Devices};
use hostdev_api::Kind;
use hostdev_model::pool::{PoolDef, PoolKind};
use hostdev_model::Uuid;
use std::collections::BTreeSet;

/// The pool's kind word.
pub(crate) fn kind_of(def: &PoolDef) -> Kind {
    match def.kind {
        PoolKind::Mdev { .. } => Kind::Mdev,
        PoolKind::Vgpu { .. } => Kind::Vgpu,
        PoolKind::Vdpa { .. } => Kind::Vdpa,
    }
}

impl<K: Interfaces> Devices<K> {
    /// The kind whose devices `def` hands out.
    fn of(&self, def: &PoolDef) -> &dyn DeviceKind {
        self.kind(kind_of(def))
    }

    /// The members of `def` present now, by name.
    pub(crate) fn members(&self, def: &PoolDef) -> Result<Vec<Member>, CoreError> {
        self.of(def).members(def)
    }

    /// The id the next device on `member` gets (see
    /// [`DeviceKind::next_id`]).
    pub(crate) fn next_id(
        &self,
        def: &PoolDef,
        member: &Member,
        taken: &BTreeSet<String>,
        asked: Option<Uuid>,
    ) -> Result<Option<String>, CoreError> {
        self.of(def).next_id(def, member, taken, asked)
    }

    /// Creates one device on `member` (transient: removed at release) named
    /// `id`; a vDPA device with `config` where given (a migration's source
    /// config), else the template's for its slot.
    pub(crate) fn create_on(
        &self,
        def: &PoolDef,
        member: &Member,
        id: &str,
        config: Option<&hostdev_model::vdpa::CreateConfig>,
    ) -> Result<(), CoreError> {
        self.of(def).create_on(def, member, id, config)
    }

    /// Removes a device made on demand; a device already gone is not an error.
    pub(crate) fn remove_made(
        &self,
        def: &PoolDef,
        id: &str,
        member: &str,
    ) -> Result<(), CoreError> {
        let k = self.of(def);
        if !k.exists(id, member)? {
            return Ok(());
        }
        k.remove(id)
    }

    /// Whether the device on `member` exists in the kernel now (for a VF:
    /// has a type; only its PF's VFs are read).
    pub(crate) fn device_exists(
        &self,
        def: &PoolDef,
        id: &str,
        member: &str,
    ) -> Result<bool, CoreError> {
        self.of(def).exists(id, member)
    }

    /// Makes one pre-created device on `member`: a persistent definition
    /// (auto start, restored like any other) and the running device.
    pub(crate) fn precreate_on(
        &self,
        def: &PoolDef,
        member: &Member,
        id: &str,
    ) -> Result<(), CoreError> {
        self.of(def).precreate_on(def, member, id)
    }

    /// Removes a pre-created device and its definition.
    pub(crate) fn discard_precreated(
        &self,
        def: &PoolDef,
        id: &str,
        member: &str,
    ) -> Result<(), CoreError> {
        self.remove_made(def, id, member)?;
        self.of(def).undefine_quietly(id)
    }

    /// Whether a pre-created device's definition still exists.
    pub(crate) fn precreated_defined(&self, def: &PoolDef, id: &str) -> Result<bool, CoreError> {
        self.of(def).defined(id)
    }

    /// Starts a pre-created device whose definition exists but which is not
    /// running (after a reboot without the udev rule, or a hand-made stop).
    pub(crate) fn restart_precreated(&self, def: &PoolDef, id: &str) -> Result<(), CoreError> {
        self.of(def).restart(id)
    }

    /// The libvirt element that hands the device to a domain.
    pub(crate) fn libvirt_element(&self, def: &PoolDef, id: &str, member: &str) -> String {
        self.of(def).libvirt_element(def, id, member)
    }
}
